"""`nmm-demo` command line, in-process: `--help` and bad flags, without running the demo."""

from __future__ import annotations

import pytest

from nmm_demo.cli import main


def test_demo_cli_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "nmm-demo" in out
    assert "--train-size" in out or "--train_size" in out


def test_demo_cli_unknown_argument_fails(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code not in (0, None)
    assert "unrecognized arguments" in capsys.readouterr().err


def test_demo_cli_unknown_flag_fails(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--no-such-flag"])
    assert exc.value.code not in (0, None)
