"""Run folders (`<root>/<stamp>-<command>-<name>/`) and JSONL logs (the atomic writers live in `files`)."""

from __future__ import annotations

import json
import os
import re
import socket
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from nmm_core.errors import DataError, NmmError
from nmm_core.files import _fsync_dir, _json_default, atomic_write_json, make_folder, os_error, remove_leftovers

# The atomic writers' old home: many modules import them from here.
from nmm_core.files import atomic_replace_dir as atomic_replace_dir
from nmm_core.files import atomic_write_bytes as atomic_write_bytes
from nmm_core.files import atomic_write_text as atomic_write_text

INCOMPLETE_SUFFIX = ".incomplete"
STATUS_FILE = "status.json"
STATES = ("running", "complete", "failed", "interrupted")  # interrupted: Ctrl-C; --resume continues it
_STAMP_FORMAT = "%Y%m%d-%H%M%S"
_STAMP_RE = re.compile(r"^\d{8}-\d{6}-")


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def jsonl_line(record: Any) -> str:
    """`record` as one JSON line, newline included."""
    return json.dumps(record, ensure_ascii=False, default=_json_default) + "\n"


def append_jsonl(path: str | Path, record: Any) -> None:
    """Append one JSON line to `path` and flush it."""
    line = jsonl_line(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        # A crash may have left a partial last line; cut it so the next record does not
        # glue onto it and turn a detectable truncation into corruption mid-file.
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                head = f.read()
                f.truncate(head.rfind(b"\n") + 1)
        f.write(line.encode("utf-8"))
        f.flush()


def read_jsonl(path: str | Path) -> list[Any]:
    """Read a JSONL file, skipping only a truncated last line; raise DataError on other damage."""
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    # After split, the last piece is b"" when the file ends with a newline, else an unfinished line.
    last = lines.pop()
    records = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            records.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: line {number} is not valid JSON ({e})") from None
    if last.strip():
        try:
            records.append(json.loads(last.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass  # a write cut short by a crash; everything before it is intact
    return records


def sanitize_name(text: str) -> str:
    """Turn `text` into a safe folder-name part: [A-Za-z0-9._-], no leading/trailing punctuation."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-.")
    return cleaned[:80] or "run"


# The command-line program running now (`nmm-charts`), recorded in each run's status so that a
# domain's `runs` lists its own runs; set by `cli.run_cli`, None when called as a library.
PROGRAM: ContextVar[str | None] = ContextVar("nmm_program", default=None)
VERB: ContextVar[str | None] = ContextVar("nmm_verb", default=None)  # its words for the command (`vqa train`)


def read_status(folder: str | Path) -> dict[str, Any]:
    """A run folder's parsed `status.json`, or {} where it cannot be read (listing, pre-flight checks)."""
    try:
        data = json.loads((Path(folder) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunDir:
    """One run's output folder; named `X.incomplete` until `complete()` renames it to `X`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._completed = False

    @classmethod
    def create(cls, root: str | Path, command: str, name: str, resumes: bool = True) -> RunDir:
        """Make `<root>/<stamp>-<command>-<name>.incomplete/` and mark it running (`resumes`: False for a run
        that keeps nothing --resume could continue, so that `runs --clean-failed` removes it once stopped)."""
        root = make_folder(root, "--output-dir")
        stamp = datetime.now().strftime(_STAMP_FORMAT)
        base = f"{stamp}-{sanitize_name(command)}-{sanitize_name(name)}"
        for n in range(1, 10_000):
            final = root / (base if n == 1 else f"{base}-{n}")
            if final.exists():
                continue
            path = final.with_name(final.name + INCOMPLETE_SUFFIX)
            try:
                # Not exist_ok: two processes starting in the same second get two folders.
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:  # a read-only disk that still lists the folder as writable
                raise os_error(root, "--output-dir", exc) from None
            break
        else:
            raise NmmError(f"cannot create a run folder for {base!r} in {root}")
        run = cls(path)
        status = {"state": "running", "command": command, "name": name,
                  "started": _now_iso(), "pid": os.getpid(), "host": socket.gethostname()}
        if PROGRAM.get() is not None:
            status["program"] = PROGRAM.get()
        if VERB.get() is not None:
            status["verb"] = VERB.get()  # so that --resume from another program can name the command to use
        if not resumes:
            status["resumes"] = False
        atomic_write_json(run.file(STATUS_FILE), status)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run folder (final or `.incomplete` path), e.g. for `--resume`."""
        path = Path(path)
        if not path.exists():
            if path.name.endswith(INCOMPLETE_SUFFIX):
                alt = path.with_name(path.name[: -len(INCOMPLETE_SUFFIX)])
            else:
                alt = path.with_name(path.name + INCOMPLETE_SUFFIX)
            if alt.exists():
                path = alt
        status_path = path / STATUS_FILE
        if not path.is_dir() or not status_path.is_file():
            raise NmmError(f"not a run folder: {path} (no {STATUS_FILE})")
        run = cls(path)
        state = run.status.get("state")
        if state not in STATES:
            raise NmmError(f"not a run folder: {status_path} has no valid 'state' (got {state!r})")
        run._completed = state == "complete" and not run.incomplete
        return run

    @property
    def incomplete(self) -> bool:
        """True while the folder still carries the `.incomplete` suffix."""
        return self.path.name.endswith(INCOMPLETE_SUFFIX)

    @property
    def final_path(self) -> Path:
        """The folder's name once complete."""
        if self.incomplete:
            return self.path.with_name(self.path.name[: -len(INCOMPLETE_SUFFIX)])
        return self.path

    @property
    def status(self) -> dict[str, Any]:
        """The parsed `status.json`."""
        try:
            data = json.loads(self.file(STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise NmmError(f"cannot read {self.file(STATUS_FILE)}: {e}") from None
        if not isinstance(data, dict):
            raise NmmError(f"{self.file(STATUS_FILE)}: expected a JSON object")
        return data

    def final(self, path: str | Path) -> Path:
        """Where `path`, inside this run, will be once the run is complete (and renamed)."""
        return self.final_path / Path(path).relative_to(self.path)

    def file(self, name: str) -> Path:
        """Path of `name` inside the run folder (valid until `complete()` renames it)."""
        return self.path / name

    def subdir(self, name: str) -> Path:
        """Create (if needed) and return a sub-folder such as `adapter` or `checkpoints`."""
        path = self.file(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def set_state(self, state: str, **extra: Any) -> None:
        """Rewrite `status.json` with `state` and extra keys, keeping the earlier ones."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r} (valid: {', '.join(STATES)})")
        status = self.status
        status.update(extra)
        status.update(state=state, updated=_now_iso(), pid=os.getpid(), host=socket.gethostname())
        atomic_write_json(self.file(STATUS_FILE), status)

    def reopen(self) -> None:
        """Mark a run that is being continued (`--resume`) running again, a completed one too."""
        self._completed = False
        remove_leftovers(self.path)  # what the interrupted process was writing is written again
        self.set_state("running")

    def complete(self, **summary: Any) -> Path:
        """Mark the run complete and rename `X.incomplete` to `X`; returns the new path."""
        final = self.final_path
        if final != self.path and final.exists():
            raise NmmError(f"cannot complete run: {final} already exists")
        extra: dict[str, Any] = {"finished": _now_iso()}
        if summary:
            extra["summary"] = summary
        remove_leftovers(self.path)
        # Status first: a crash before the rename leaves the `.incomplete` name, still the marker.
        self.set_state("complete", **extra)
        if final != self.path:
            os.rename(self.path, final)
            _fsync_dir(final.parent)
            self.path = final
        self._completed = True
        return self.path

    def fail(self, error: BaseException | str) -> None:
        """Mark the run failed with the error's message (interrupted, for Ctrl-C); the folder keeps its
        `.incomplete` name."""
        if isinstance(error, KeyboardInterrupt):
            error.run_folder = getattr(error, "run_folder", self.path)  # the CLI names it: the folder to resume
            self.set_state("interrupted", stopped_by="KeyboardInterrupt", finished=_now_iso())
            return
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            message = str(error)
        self.set_state("failed", error=message, finished=_now_iso())

    def __enter__(self) -> RunDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None and not self._completed:
            try:
                self.fail(exc)
            except (OSError, NmmError):
                pass  # the original exception matters more than a status we could not write
        return False

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def latest_run(
    root: str | Path, command: str | None = None, *, include_incomplete: bool = False
) -> Path | None:
    """Newest run folder under `root` (optionally for one command); complete ones unless asked."""
    root = Path(root)
    if not root.is_dir():
        return None
    wanted = f"{sanitize_name(command)}-" if command is not None else None
    candidates = []
    for path in root.iterdir():
        name = path.name
        if not _STAMP_RE.match(name) or not (path / STATUS_FILE).is_file():
            continue
        if name.endswith(INCOMPLETE_SUFFIX) and not include_incomplete:
            continue
        if wanted is not None and not name[16:].startswith(wanted):
            continue
        candidates.append(path)
    # The stamp sorts chronologically; the full name breaks same-second ties deterministically.
    return max(candidates, key=lambda p: (p.name[:15], p.name), default=None)
