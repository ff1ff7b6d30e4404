"""`nmm-demo` command line, in-process: bad flags, without running the demo.

`--help` and a stray word are checked with the other programs in tests/workspace/test_cli_contract.py.
"""

from __future__ import annotations

import pytest

from nmm_demo.cli import main


def test_demo_cli_unknown_flag_fails(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--no-such-flag"])
    assert exc.value.code not in (0, None)
