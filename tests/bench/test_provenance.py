"""Every result file records the commit it measured, whether the tree was dirty, nmm's version and the date."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata

import pytest

from nmm_bench import provenance as prov
from nmm_bench.cli import main
from nmm_core.errors import ConfigError


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "code.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return root


def test_clean_tree_records_its_commit_and_version(repo):
    out = prov.provenance("full", repo=repo)
    assert out["commit"] == _git(repo, "rev-parse", "HEAD").strip() and len(out["commit"]) == 40
    assert out["dirty"] is False and out["commit_source"] == "git"
    assert out["nmm_version"] == metadata.version("nmm-core")
    assert out["date"].startswith("20") and out["date"].endswith("+00:00")


def test_dirty_tree_is_refused_at_full_size_unless_allowed(repo):
    (repo / "code.py").write_text("x = 2\n")
    (repo / "new.py").write_text("")
    assert prov.provenance("smoke", repo=repo)["dirty"] is True  # smoke runs, and says so
    with pytest.raises(ConfigError, match="dirty tree .*--allow-dirty"):
        prov.provenance("full", repo=repo)
    out = prov.provenance("full", repo=repo, allow_dirty=True)
    assert out["dirty"] is True and out["allowed_dirty"] == "--allow-dirty"
    assert sorted(out["dirty_paths"]) == ["code.py", "new.py"]


def test_earlier_result_files_do_not_make_the_tree_dirty(repo):
    (repo / "benchmarks" / "results" / "generation-full-x.json").write_text("{}")
    assert prov.provenance("full", repo=repo)["dirty"] is False


def test_tree_without_git_takes_the_commit_from_the_flag_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(prov.COMMIT_ENV, raising=False)
    with pytest.raises(ConfigError, match="--commit or NMM_COMMIT"):
        prov.provenance("full", repo=tmp_path)
    assert prov.provenance("smoke", repo=tmp_path)["commit"] == "unknown"
    out = prov.provenance("full", repo=tmp_path, commit="abc1234")
    assert (out["commit"], out["commit_source"], out["dirty"]) == ("abc1234", "--commit", "unknown")
    monkeypatch.setenv(prov.COMMIT_ENV, "def5678")
    out = prov.provenance("full", repo=tmp_path)
    assert (out["commit"], out["commit_source"], out["dirty"]) == ("def5678", "NMM_COMMIT", "unknown")


def test_nmm_bench_refuses_a_dirty_full_run_before_measuring(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prov, "REPO", repo)
    (repo / "code.py").write_text("x = 3\n")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["generation", "--size", "full", "--out", str(out)]) == 2
    assert "dirty tree" in capsys.readouterr().err and not list(out.iterdir())


def test_smoke_result_file_carries_provenance_and_ends_with_its_summary(repo, tmp_path, monkeypatch):
    from nmm_bench.harness import Result, Row

    monkeypatch.setattr(prov, "REPO", repo)
    result = Result("x", "smoke", "a", {}, [Row("a", 2.0, "u"), Row("b", 3.0, "u")], summary={"ratio": 1.5})
    path = result.write(prov.provenance("smoke"), tmp_path)
    data = json.loads(path.read_text())
    assert data["provenance"]["commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert data["versions"]["nmm-core"] == metadata.version("nmm-core")
    assert list(data)[-1] == "summary" and data["summary"] == {"ratio": 1.5}


def test_committed_results_all_say_what_they_measured():
    for path in sorted(prov.REPO.joinpath("benchmarks", "results").glob("*.json")):
        origin = json.loads(path.read_text())["provenance"]
        assert len(origin["commit"]) >= 7 and origin["dirty"] in (True, False, "unknown"), path.name
        assert origin["nmm_version"] and origin["date"][:2] == "20", path.name
