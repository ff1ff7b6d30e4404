"""`nmm runs`: run folders listed with their state; `--clean-failed` removes only dead, unfinished ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nmm_core.cli import main
from nmm_core.run_list import human_size, interrupted_line, list_runs
from nmm_core.runs import RunDir


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _set_pid(run: RunDir, pid: int) -> None:
    status = json.loads(run.file("status.json").read_text())
    status["pid"] = pid
    run.file("status.json").write_text(json.dumps(status))


def _four_runs(root: Path) -> dict[str, Path]:
    finished = RunDir.create(root, "train", "tiny-a")
    finished.file("weights.bin").write_bytes(b"x" * 3000)
    finished.complete()
    failed = RunDir.create(root, "eval", "tiny-b")
    failed.fail(ValueError("boom"))
    killed = RunDir.create(root, "train", "tiny-c")
    _set_pid(killed, _dead_pid())  # a process that no longer exists: killed mid-run
    running = RunDir.create(root, "compare", "tiny-d")  # this test's own pid: alive
    return {"finished": finished.path, "failed": failed.path, "interrupted": killed.path,
            "running": running.path}


def test_each_state_is_read_from_status_and_suffix(tmp_path: Path) -> None:
    runs = _four_runs(tmp_path / "runs")
    (tmp_path / "runs" / "not-a-run").mkdir()  # no status.json: not listed
    got = {e.path: (e.state, e.command) for e in list_runs(tmp_path / "runs")}
    assert got == {runs["finished"]: ("finished", "train"), runs["failed"]: ("failed", "eval"),
                   runs["interrupted"]: ("interrupted", "train"), runs["running"]: ("running", "compare")}
    sizes = {e.state: e.size for e in list_runs(tmp_path / "runs")}
    assert sizes["finished"] >= 3000 > sizes["failed"]


def test_clean_failed_says_what_it_removes_and_keeps_finished_and_live_runs(tmp_path: Path, capsys) -> None:
    runs = _four_runs(tmp_path / "runs")
    assert main(["runs", "--runs-dir", str(tmp_path / "runs"), "--clean-failed"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["state", "command", "size", "started", "folder"]
    assert f"removing failed run {runs['failed']}" in out
    assert not runs["failed"].exists()
    # an interrupted run resumes with --resume: kept, and said so
    assert "kept 1 interrupted run(s)" in out and runs["interrupted"].is_dir()
    assert runs["finished"].is_dir() and runs["running"].is_dir()


def test_a_ctrl_c_run_is_interrupted_not_failed(tmp_path: Path, capsys) -> None:
    stopped = RunDir.create(tmp_path / "runs", "train", "tiny-e")
    stopped.fail(KeyboardInterrupt())
    assert stopped.status["state"] == "interrupted" and "error" not in stopped.status
    assert [e.state for e in list_runs(tmp_path / "runs")] == ["interrupted"]
    assert main(["runs", "--runs-dir", str(tmp_path / "runs"), "--clean-failed"]) == 0
    assert stopped.path.is_dir() and "nothing to remove" in capsys.readouterr().out
    assert RunDir.open(stopped.path).status["state"] == "interrupted"  # what --resume opens


def test_a_ctrl_c_run_marked_failed_before_the_interrupted_state_still_lists_as_interrupted(tmp_path: Path) -> None:
    old = RunDir.create(tmp_path / "runs", "train", "tiny-f")
    old.set_state("failed", error="KeyboardInterrupt")
    assert [e.state for e in list_runs(tmp_path / "runs")] == ["interrupted"]


def test_the_interrupt_line_says_what_the_verb_keeps(tmp_path: Path) -> None:
    def stopped(command: str, resume: bool = True) -> Path:
        run = RunDir.create(tmp_path, command, "tiny")
        run.file("config.yaml").write_text("resume: null\n" if resume else "out: x\n")
        run.fail(KeyboardInterrupt())
        return run.path

    train = stopped("train")
    assert interrupted_line(train) == (f"interrupted: {train} has no complete checkpoint yet (it trains again "
                                       f"from step 0); continue with --resume {train}")
    for step, complete in ((4, True), (6, False)):  # checkpoint-6 was cut short while saving
        (train / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (train / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert interrupted_line(train) == (f"interrupted: {train} keeps its last checkpoint, checkpoint-4; "
                                       f"continue with --resume {train}")
    evaluated = stopped("eval")
    (evaluated / ".predictions.answers.jsonl").write_text("{}\n")
    assert interrupted_line(evaluated) == (f"interrupted: {evaluated} keeps its answers so far; "
                                           f"continue with --resume {evaluated}")
    detected = stopped("detect-predict", resume=False)
    assert interrupted_line(detected) == (f"interrupted: {detected} keeps what it wrote so far "
                                          "(this run does not resume: run it again; runs --clean-failed removes it)")
    # it can never resume: --clean-failed removes it, and keeps the resumable ones
    assert main(["runs", "--runs-dir", str(tmp_path), "--clean-failed"]) == 0
    assert not detected.exists() and train.is_dir() and evaluated.is_dir()


def test_a_run_on_another_host_counts_as_running(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "train", "x")
    status = json.loads(run.file("status.json").read_text())
    status.update(pid=_dead_pid(), host="some-other-machine")
    run.file("status.json").write_text(json.dumps(status))
    assert [e.state for e in list_runs(tmp_path)] == ["running"]


def test_listing_only_does_not_remove_and_an_empty_root_says_so(tmp_path: Path, capsys) -> None:
    runs = _four_runs(tmp_path / "runs")
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert all(p.exists() for p in runs.values())
    assert main(["runs", "--runs-dir", str(tmp_path / "none")]) == 0
    assert f"no run folders in {tmp_path / 'none'} (no such folder)" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["runs", "--runs-dir", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip() == f"no run folders in {tmp_path / 'empty'}"


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1536, 3 * 1024**2, 5 * 1024**3)] == [
        "0 B", "1023 B", "1.5 KB", "3.0 MB", "5.0 GB"]


def test_a_domain_s_runs_lists_its_own_runs_and_all_lists_every_program_s(tmp_path: Path, capsys) -> None:
    """Runs made through a CLI record its name; `nmm-charts runs` shows charts' runs and those that
    name no program (made before programs were recorded), and says how many it left out."""
    from nmm_charts.cli import main as charts
    from nmm_connectome.cli import main as connectome
    from nmm_core.runs import PROGRAM

    root = tmp_path / "runs"
    made = {}
    for program, name in (("nmm-charts", "a"), ("nmm-connectome", "b"), (None, "old")):
        token = PROGRAM.set(program)
        try:
            made[name] = RunDir.create(root, "train", name)
        finally:
            PROGRAM.reset(token)
        made[name].complete()
    assert [e.program for e in list_runs(root)] == ["nmm-charts", "nmm-connectome", None]

    assert charts(["runs", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "-train-a" in out and "-train-old" in out and "-train-b" not in out
    assert "1 run(s) of other programs not shown: --all lists them" in out
    assert connectome(["runs", "--runs-dir", str(root), "--all"]) == 0
    out = capsys.readouterr().out
    assert all(f"-train-{n}" in out for n in ("a", "b", "old")) and "not shown" not in out
    assert main(["runs", "--runs-dir", str(root)]) == 0  # core's `nmm runs`: every run
    out = capsys.readouterr().out
    assert all(f"-train-{n}" in out for n in ("a", "b", "old"))


def test_a_run_made_through_a_cli_records_the_program(tmp_path: Path) -> None:
    from nmm_core.cli import run_cli

    made = []
    assert run_cli(lambda: made.append(RunDir.create(tmp_path, "train", "x")), "nmm-toy") == 0
    assert json.loads(made[0].file("status.json").read_text())["program"] == "nmm-toy"
    assert "program" not in json.loads(RunDir.create(tmp_path, "train", "y").file("status.json").read_text())


def test_on_a_terminal_the_interrupt_line_starts_on_its_own_line(capsys, monkeypatch) -> None:
    """A progress bar (or the terminal's ^C) holds the cursor's line: the message starts below it."""
    from nmm_core.cli import run_cli

    def stopped() -> None:
        raise KeyboardInterrupt

    assert run_cli(stopped) == 130
    assert capsys.readouterr().err == "interrupted (no run folder was marked to continue)\n"  # a log: no blank line
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert run_cli(stopped) == 130
    assert capsys.readouterr().err == "\ninterrupted (no run folder was marked to continue)\n"
