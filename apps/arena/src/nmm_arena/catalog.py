"""The pairs being judged: pair files (or a folder of them) read through `nmm_core.pairs`.

Each pair gets a short opaque key, stable across restarts: a hash of its file's path relative
to `--pairs` and its `pair_id`. Two runs of the same task share pair_ids; the key keeps them apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from nmm_core.errors import DataError
from nmm_core.pairs import Pair, read_pairs

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
    """Every loaded pair by key, in file order."""

    entries: dict[str, Entry]

    def __len__(self) -> int:
        return len(self.entries)

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


def pair_files(root: Path) -> list[Path]:
    """`root` itself when a file; else every `pairs*.jsonl` under it, sorted."""
    if root.is_file():
        return [root]
    if root.is_dir():
        return sorted(p for p in root.rglob("pairs*.jsonl") if p.is_file())
    raise DataError(f"--pairs {root}: no such file or folder")


def load_catalog(root: str | Path) -> Catalog:
    """Read every pair file under `root`; an empty result is an error."""
    root = Path(root)
    files = pair_files(root)
    if not files:
        raise DataError(f"--pairs {root}: no pairs*.jsonl file in this folder")
    entries: dict[str, Entry] = {}
    for file in files:
        source = file.name if root.is_file() else file.relative_to(root).as_posix()
        folder = file.parent.resolve()
        for pair in read_pairs(file):
            key = pair_key(source, pair.pair_id)
            entries[key] = Entry(key, pair, folder, source)
    if not entries:
        raise DataError(f"--pairs {root}: the pair file(s) hold no pairs")
    return Catalog(entries)
