"""`nmm-charts` command line, in-process: `info`, `--help`, an unknown command."""

from __future__ import annotations

import pytest

from nmm_charts import __version__
from nmm_charts.cli import main


def test_charts_cli_info_prints_version_and_domain_dependency(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"nmm-charts {__version__}" in out
    assert "nmm-core" in out
    # the domain's own dependency, listed with its installed version
    rows = [line.split() for line in out.splitlines()]
    [row] = [r for r in rows if r[:1] == ["matplotlib"]]
    assert row[1] != "MISSING", row


def test_charts_cli_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "nmm-charts" in out and "info" in out


def test_charts_cli_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert f"nmm-charts {__version__}" in capsys.readouterr().out


def test_charts_cli_unknown_command_fails(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code not in (0, None)
    assert "invalid choice" in capsys.readouterr().err


def test_charts_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code not in (0, None)


def test_a_study_preset_missing_offline_is_refused_before_any_data_is_prepared(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from nmm_core.domain import Domain

    def prepare(*args, **kwargs):
        raise AssertionError("the chart data was prepared before the model was checked")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setattr(Domain, "source_of", prepare)
    assert main(["train", "--model", "qwen2-vl-2b", "--output-dir", str(tmp_path / "runs")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: 'Qwen/Qwen2-VL-2B-Instruct' at revision ") and "not in the local" in last
    assert not (tmp_path / "runs").exists()
