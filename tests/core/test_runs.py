"""Run folders, atomic writes and JSONL logs."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from nmm_core import runs
from nmm_core.errors import DataError, NmmError
from nmm_core.runs import (
    RunDir,
    append_jsonl,
    atomic_replace_dir,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    latest_run,
    read_jsonl,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fix_clock(monkeypatch, when: datetime) -> None:
    class Fixed(datetime):
        @classmethod
        def now(cls, tz=None):
            return when

    monkeypatch.setattr(runs, "datetime", Fixed)


# ---- atomic writes ------------------------------------------------------------------------


def test_atomic_writes_content_and_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "c.json", {"z": 1, "a": "é", "p": Path("x/y")})
    atomic_write_text(tmp_path / "a.txt", "again")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "again"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == (
        '{\n  "z": 1,\n  "a": "é",\n  "p": "x/y"\n}\n'
    )
    assert _names(tmp_path) == ["a.txt", "b.bin", "c.json"]


def test_atomic_write_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_crash_while_serialising_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    atomic_write_json(target, {"state": "running"})

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write_json(target, {"state": "complete"})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"state": "running"}
    assert _names(tmp_path) == ["status.json"]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_crash_after_temp_file_created_keeps_old_file_and_cleans_up(tmp_path, monkeypatch, step):
    target = tmp_path / "report.md"
    atomic_write_text(target, "old")

    def boom(*args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr(runs.os, step, boom)
    with pytest.raises(OSError, match="no space left"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["report.md"]


def test_atomic_replace_dir(tmp_path):
    final = tmp_path / "adapter"
    first = tmp_path / "adapter.tmp1"
    first.mkdir()
    (first / "w.bin").write_text("1")
    assert atomic_replace_dir(first, final) == final
    second = tmp_path / "adapter.tmp2"
    second.mkdir()
    (second / "w2.bin").write_text("2")
    atomic_replace_dir(second, final)
    assert _names(final) == ["w2.bin"]
    assert _names(tmp_path) == ["adapter"]
    with pytest.raises(NmmError, match="not a folder"):
        atomic_replace_dir(tmp_path / "missing", final)


# ---- JSONL --------------------------------------------------------------------------------


def test_append_and_read_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"step": 1, "loss": 0.5})
    append_jsonl(path, {"step": 2, "note": "ü"})
    assert read_jsonl(path) == [{"step": 1, "loss": 0.5}, {"step": 2, "note": "ü"}]
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_read_jsonl_skips_only_a_truncated_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1}]
    path.write_bytes(b'{"step": 1}\n{"step": 2}')  # complete record, newline missing
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_read_jsonl_raises_on_corruption_mid_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(path)


def test_append_after_truncation_drops_the_partial_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "lo')
    append_jsonl(path, {"step": 2})
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_bytes(b'{"step": 1, "lo')
    append_jsonl(path, {"step": 1})
    assert read_jsonl(path) == [{"step": 1}]


# ---- RunDir -------------------------------------------------------------------------------


def test_run_lifecycle(tmp_path, monkeypatch):
    _fix_clock(monkeypatch, datetime(2024, 5, 6, 7, 8, 9))
    run = RunDir.create(tmp_path / "runs", "train", "qwen/2b vl")
    assert run.path.name == "20240506-070809-train-qwen-2b-vl.incomplete"
    assert run.path.is_dir()
    status = json.loads(run.file("status.json").read_text())
    assert status["state"] == "running"
    assert status["command"] == "train"
    assert status["pid"] == os.getpid()
    assert datetime.fromisoformat(status["started"]).year == 2024

    atomic_write_text(run.file("report.md"), "# ok\n")
    old = run.path
    new = run.complete(accuracy=0.9)
    assert new == run.path == tmp_path / "runs" / "20240506-070809-train-qwen-2b-vl"
    assert not old.exists()
    assert (new / "report.md").read_text() == "# ok\n"
    status = run.status
    assert status["state"] == "complete"
    assert status["summary"] == {"accuracy": 0.9}
    assert status["started"].startswith("2024-05-06T07:08:09")


def test_same_second_collision_gets_suffix(tmp_path, monkeypatch):
    _fix_clock(monkeypatch, datetime(2024, 5, 6, 7, 8, 9))
    first = RunDir.create(tmp_path, "eval", "tiny")
    second = RunDir.create(tmp_path, "eval", "tiny")
    first.complete()
    third = RunDir.create(tmp_path, "eval", "tiny")
    assert second.path.name == "20240506-070809-eval-tiny-2.incomplete"
    assert third.path.name == "20240506-070809-eval-tiny-3.incomplete"


def test_exception_inside_with_marks_failed(tmp_path):
    with pytest.raises(RuntimeError, match="out of memory"):
        with RunDir.create(tmp_path, "train", "tiny") as run:
            raise RuntimeError("out of memory")
    assert run.path.name.endswith(".incomplete") and run.path.exists()
    status = run.status
    assert status["state"] == "failed"
    assert status["error"] == "RuntimeError: out of memory"


def test_with_does_not_auto_complete(tmp_path):
    with RunDir.create(tmp_path, "train", "tiny") as run:
        pass
    assert run.path.name.endswith(".incomplete")
    assert run.status["state"] == "running"
    with RunDir.create(tmp_path, "train", "other") as run2:
        run2.complete()
    assert not run2.path.name.endswith(".incomplete")
    assert run2.status["state"] == "complete"


def test_fail_and_set_state(tmp_path):
    run = RunDir.create(tmp_path, "train", "tiny")
    run.set_state("running", step=10)
    assert run.status["step"] == 10
    run.fail("stopped by user")
    status = run.status
    assert (status["state"], status["error"], status["step"]) == ("failed", "stopped by user", 10)
    with pytest.raises(ValueError, match="unknown run state"):
        run.set_state("paused")


def test_ctrl_c_inside_with_marks_interrupted_not_failed(tmp_path):
    with pytest.raises(KeyboardInterrupt) as stopped:
        with RunDir.create(tmp_path, "eval", "tiny") as run:
            raise KeyboardInterrupt
    assert (run.status["state"], run.status["stopped_by"]) == ("interrupted", "KeyboardInterrupt")
    assert "error" not in run.status and stopped.value.run_folder == run.path


def test_open_for_resume(tmp_path):
    run = RunDir.create(tmp_path, "train", "tiny")
    run.fail(RuntimeError("killed"))
    final_name = run.path.with_name(run.path.name.removesuffix(".incomplete"))
    for given in (run.path, final_name):
        assert RunDir.open(given).path == run.path
    resumed = RunDir.open(str(run.path))
    resumed.set_state("running", resumed=True)
    assert resumed.status["state"] == "running"
    resumed.complete()
    assert resumed.path == final_name and final_name.is_dir()
    assert RunDir.open(final_name.with_name(final_name.name + ".incomplete")).path == final_name


def test_open_rejects_non_run_folders(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(NmmError, match="not a run folder"):
        RunDir.open(tmp_path / "plain")
    with pytest.raises(NmmError, match="not a run folder"):
        RunDir.open(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "status.json").write_text('{"state": "weird"}')
    with pytest.raises(NmmError, match="no valid 'state'"):
        RunDir.open(bad)


def test_latest_run(tmp_path, monkeypatch):
    assert latest_run(tmp_path / "nothing") is None
    made = {}
    for second, command in enumerate(["train", "eval", "train", "eval"]):
        _fix_clock(monkeypatch, datetime(2024, 1, 1, 0, 0, second))
        made[second] = RunDir.create(tmp_path, command, "tiny")
    made[0].complete()
    made[1].complete()
    (tmp_path / "20990101-000000-train-notarun").mkdir()  # no status.json: ignored
    assert latest_run(tmp_path) == made[1].path
    assert latest_run(tmp_path, "train") == made[0].path
    assert latest_run(tmp_path, "train", include_incomplete=True) == made[2].path
    assert latest_run(tmp_path, include_incomplete=True) == made[3].path
    assert latest_run(tmp_path, "report") is None
    assert re.match(r"^\d{8}-\d{6}-eval-tiny$", made[1].path.name)
