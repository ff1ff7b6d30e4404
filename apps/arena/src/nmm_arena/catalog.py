"""The pairs being judged: pair files (or a folder of them), each line checked by `pairfile`.

Each pair gets a short opaque key, stable across restarts: a hash of its file's path relative
to `--pairs` and its `pair_id`. Two runs of the same task share pair_ids; the key keeps them apart.
In a folder, files inside an unfinished (`.incomplete`) or failed run are left out, with a line
saying so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nmm_arena.pairfile import Problem, read_pair_file
from nmm_core.errors import DataError
from nmm_core.pairs import Pair
from nmm_core.runs import INCOMPLETE_SUFFIX, STATUS_FILE

OnBad = Literal["skip", "stop"]

# Only these are served as images, whatever a pair file names.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}


@dataclass(frozen=True)
class Entry:
    """A pair with where it came from."""

    key: str
    pair: Pair
    folder: Path  # the pair file's folder, resolved; its image must stay inside it
    source: str  # the pair file, relative to --pairs (its name when --pairs is a file)


@dataclass(frozen=True)
class Catalog:
    """Every loaded pair by key, in file order; what was left out and why."""

    entries: dict[str, Entry]
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # pair files left out, with the reason
    keys: list[str] = field(init=False)  # file order, for index -> key in O(1)
    index: dict[str, int] = field(init=False)  # key -> its place in file order

    def __post_init__(self) -> None:
        # frozen: set once here
        object.__setattr__(self, "keys", list(self.entries))
        object.__setattr__(self, "index", {k: i for i, k in enumerate(self.keys)})

    def __len__(self) -> int:
        return len(self.entries)

    def at(self, index: int) -> Entry:
        """The pair at `index` in file order."""
        return self.entries[self.keys[index]]

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def image_path(self, key: str) -> Path | None:
        """The pair's image file, or None when absent, not an image type, or outside its folder."""
        entry = self.entries.get(key)
        if entry is None or not entry.pair.image:
            return None
        try:
            path = (entry.folder / entry.pair.image).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        # resolve() follows symlinks, so a link pointing out of the folder is refused too.
        if not path.is_relative_to(entry.folder) or not path.is_file():
            return None
        if path.suffix.lower() not in IMAGE_TYPES:
            return None
        return path


def pair_key(source: str, pair_id: str) -> str:
    """The stable key of one pair in one file."""
    return hashlib.sha256(f"{source}\0{pair_id}".encode()).hexdigest()[:16]


def _unfinished(folder: Path) -> str | None:
    """Why a run folder's files must not be judged, or None."""
    if folder.name.endswith(INCOMPLETE_SUFFIX):
        return "unfinished run (.incomplete)"
    status = folder / STATUS_FILE
    if status.is_file():
        try:
            state = json.loads(status.read_text(encoding="utf-8")).get("state")
        except (OSError, ValueError, AttributeError):
            return f"unreadable {STATUS_FILE}"
        if state != "complete":
            return f"run state {state!r} in {STATUS_FILE}"
    return None


def pair_files(root: Path) -> tuple[list[Path], list[str]]:
    """`root` itself when a file; else every `pairs*.jsonl` under it, sorted, leaving out those
    inside unfinished or failed runs. Returns (files, one line per file left out)."""
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise DataError(f"--pairs {root}: no such file or folder")
    files, skipped = [], []
    for path in sorted(p for p in root.rglob("pairs*.jsonl") if p.is_file()):
        rel = path.relative_to(root)
        why = next((w for depth in range(len(rel.parts) - 1, 0, -1)
                    if (w := _unfinished(root.joinpath(*rel.parts[:depth])))), None)
        if why:
            skipped.append(f"{rel.as_posix()}: skipped, {why}")
        else:
            files.append(path)
    return files, skipped


def load_catalog(root: str | Path, *, on_bad: OnBad = "skip", say: Callable[[str], None] | None = None) -> Catalog:
    """Read every pair file under `root`, checking each line. A bad line is reported through `say`
    and left out (`on_bad="skip"`) or stops loading with a DataError naming it (`"stop"`)."""
    root = Path(root)
    files, skipped = pair_files(root)
    for line in skipped:
        if say:
            say(line)
    if not files:
        raise DataError(f"--pairs {root}: no pairs*.jsonl file in this folder" + (" outside unfinished or failed runs"
                                                                                  if skipped else ""))
    entries: dict[str, Entry] = {}
    problems: list[Problem] = []
    for file in files:
        source = file.name if root.is_file() else file.relative_to(root).as_posix()
        folder = file.parent.resolve()
        try:
            pairs, bad = read_pair_file(file, str(file))
        except OSError as exc:
            raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from None
        if bad and on_bad == "stop":
            raise DataError(f"{bad[0]} (--on-bad stop; {len(bad)} bad line(s) in this file)")
        for problem in bad:
            if say:
                say(str(problem))
        problems += bad
        for pair in pairs:
            key = pair_key(source, pair.pair_id)
            entries[key] = Entry(key, pair, folder, source)
    if not entries:
        raise DataError(f"--pairs {root}: the pair file(s) hold no valid pairs" +
                        (f" ({len(problems)} bad line(s))" if problems else ""))
    return Catalog(entries, problems, skipped)
