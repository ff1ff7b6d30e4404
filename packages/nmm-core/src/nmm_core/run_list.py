"""`runs`: the run folders under a root with their state, and removing the failed ones."""

from __future__ import annotations

import errno
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nmm_core.runs import INCOMPLETE_SUFFIX, STATUS_FILE, read_status

# What a user sees: the run finished; it raised; it stopped without saying so; it is going now.
RUN_STATES = ("finished", "failed", "interrupted", "running")


@dataclass(frozen=True)
class RunEntry:
    """One run folder as `runs` lists it."""

    path: Path
    state: str
    command: str
    size: int
    started: str
    program: str | None = None  # the CLI that made it (None: recorded before nmm kept it)
    resumes: bool = True  # whether --resume can continue it once stopped


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # it exists, it is only someone else's
    return True


def run_resumes(folder: Path, status: dict) -> bool:
    """Whether --resume can continue the run in `folder`: its command has the flag and the run keeps something."""
    import yaml

    if status.get("resumes") is False:
        return False
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return True  # no readable config (made before runs kept one): keep it
    return not isinstance(config, dict) or "resume" in config


def interrupted_line(folder: Path) -> str:
    """The CLI's last line after Ctrl-C stopped the run in `folder`: what it keeps and how it goes on."""
    from nmm_core.checkpoints import last_checkpoint

    folder, status = Path(folder), read_status(Path(folder))
    checkpoint = last_checkpoint(folder / "checkpoints")
    if status.get("resumes") is False:
        kept = "keeps no checkpoints"
    elif checkpoint is not None:
        kept = f"keeps its last checkpoint, {Path(checkpoint).name}"
    elif "train" in str(status.get("command", "")):
        kept = "has no complete checkpoint yet (it trains again from step 0)"
    elif status.get("command") in ("eval", "compare", "compete") or any(folder.glob("*predictions*.jsonl")):
        kept = "keeps its answers so far"
    else:
        kept = "keeps what it wrote so far"
    if (folder / "config.yaml").is_file() and run_resumes(folder, status):
        return f"interrupted: {folder} {kept}; continue with --resume {folder}"
    return f"interrupted: {folder} {kept} (this run does not resume: run it again; runs --clean-failed removes it)"


def _alive(status: dict) -> bool:
    """Whether the process that wrote `status` may still be running (another host: assume so)."""
    host = status.get("host")
    if host and host != socket.gethostname():
        return True
    pid = status.get("pid")
    return isinstance(pid, int) and pid > 0 and _pid_alive(pid)


def run_state(folder: Path, status: dict) -> str:
    """finished, failed, interrupted or running, from `status.json` and the `.incomplete` suffix."""
    state = status.get("state")
    if not folder.name.endswith(INCOMPLETE_SUFFIX):
        return "finished" if state == "complete" else "interrupted"
    if state == "failed":
        # Ctrl-C, as recorded before runs had the state "interrupted": its checkpoints resume with --resume
        return "interrupted" if str(status.get("error", "")).startswith("KeyboardInterrupt") else "failed"
    if state == "running" and _alive(status):
        return "running"
    return "interrupted"  # killed, or stopped between "complete" and the rename


def _size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                pass
    return total


def _started(folder: Path, status: dict) -> str:
    started = status.get("started")
    if isinstance(started, str) and started:
        return started[:19].replace("T", " ")
    return datetime.fromtimestamp(folder.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")


def list_runs(root: str | Path) -> list[RunEntry]:
    """Every run folder (one holding `status.json`) directly under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    entries = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or not (folder / STATUS_FILE).is_file():
            continue
        status = read_status(folder)
        command = status.get("command") if isinstance(status.get("command"), str) else "?"
        program = status.get("program") if isinstance(status.get("program"), str) else None
        entries.append(RunEntry(folder, run_state(folder, status), command, _size(folder),
                                _started(folder, status), program, run_resumes(folder, status)))
    return sorted(entries, key=lambda e: (e.started, e.path.name))


def human_size(n: int) -> str:
    """`n` bytes as B, KB, MB or GB (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def runs_table(entries: list[RunEntry]) -> str:
    """The runs as an aligned text table (state, command, size, started, folder)."""
    if not entries:
        return "no run folders"
    rows = [("state", "command", "size", "started", "folder")]
    rows += [(e.state, e.command, human_size(e.size), e.started, e.path.name) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
                     for r in rows)


def removable(entries: list[RunEntry]) -> list[RunEntry]:
    """The failed `.incomplete` folders, and the interrupted ones --resume cannot continue; never a finished,
    running or resumable run."""
    return [e for e in entries if (e.state == "failed" or (e.state == "interrupted" and not e.resumes))
            and e.path.name.endswith(INCOMPLETE_SUFFIX)]


def runs_command(runs_dir: str | Path, clean_failed: bool = False, echo: Callable[[str], object] = print,
                 program: str | None = None) -> None:
    """`runs`: echo the table (only `program`'s runs, and those that name no program, when given);
    with `clean_failed`, say which folder goes, then remove it."""
    every = list_runs(runs_dir)
    entries = [e for e in every if program is None or e.program in (None, program)]
    missing = "" if Path(runs_dir).is_dir() else " (no such folder)"
    echo(runs_table(entries) if entries else f"no run folders in {runs_dir}{missing}")
    if len(entries) < len(every):
        echo(f"({len(every) - len(entries)} run(s) of other programs not shown: --all lists them)")
    if not clean_failed:
        return
    doomed = removable(entries)
    if not doomed:
        echo("nothing to remove (no failed .incomplete folders)")
    kept = [e for e in entries if e.state == "interrupted" and e not in doomed]
    if kept:
        echo(f"kept {len(kept)} interrupted run(s): continue one with --resume FOLDER, or delete it by hand")
    for entry in doomed:
        # read again just before removing: a resumed run may have started since the listing
        if run_state(entry.path, read_status(entry.path)) == "running":
            echo(f"keeping {entry.path}: its run started again")
            continue
        echo(f"removing {entry.state} run {entry.path} ({human_size(entry.size)})")
        shutil.rmtree(entry.path)


RUNS_HELP = "list run folders with state, command, size and date"


@dataclass
class RunsConfig:
    """`runs`: list run folders (finished, failed, interrupted, running)."""

    runs_dir: str = field(default="runs", metadata={"help": "folder holding the runs"})
    all: bool = field(default=False, metadata={
        "help": "every program's runs (a domain's `runs` lists its own and those made before programs were recorded)"})
    clean_failed: bool = field(default=False, metadata={
        "help": "remove failed .incomplete folders and interrupted ones that cannot resume (never finished, "
                "running or resumable ones: --resume continues those)"})


def run_runs(cfg: RunsConfig, program: str | None = None) -> None:
    """`runs` with its parsed settings; `program`: a domain CLI's own runs unless `--all`."""
    runs_command(cfg.runs_dir, cfg.clean_failed, program=None if cfg.all else program)


def add_runs_command(subparsers: object) -> None:
    """Mount `runs [--runs-dir DIR] [--clean-failed]` on a CLI's subparsers."""
    from nmm_core.config import add_command

    add_command(subparsers, "runs", RunsConfig, help=RUNS_HELP)
