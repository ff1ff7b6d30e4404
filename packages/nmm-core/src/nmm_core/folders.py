"""Output folders named on the command line: made with a one-line error, written whole or not at all."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nmm_core.errors import ConfigError, Interrupted


def _file_in_the_way(path: Path) -> Path | None:
    """`path` or the nearest of its parents that exists as something other than a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def folder_problem(path: str | Path, flag: str) -> ConfigError | None:
    """Why `path` cannot be (or hold) an output folder, as an error naming `flag`; None if it can."""
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker == path:
        return ConfigError(f"{flag} {path}: is a file, not a folder")
    if blocker is not None:
        return ConfigError(f"{flag} {path}: {blocker} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return ConfigError(f"{flag} {path}: {existing} is not writable (read-only or no permission)")
    return None


def os_error(path: str | Path, flag: str, exc: OSError) -> ConfigError:
    """An OSError met while making `path` as one line naming `flag` and the path."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ConfigError(f"{flag} {path}: not writable ({exc.strerror})")
    return folder_problem(path, flag) or ConfigError(f"{flag} {path}: cannot create it ({exc.strerror or exc})")


def make_folder(path: str | Path, flag: str) -> Path:
    """`mkdir -p path`, or a ConfigError naming `flag`: a file in the way, a read-only disk."""
    path = Path(path)
    problem = folder_problem(path, flag)
    if problem is not None:
        raise problem
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(path, flag, exc) from None
    return path


@contextmanager
def interrupt_leaves_nothing(where: str | Path) -> Iterator[None]:
    """Ctrl-C inside is an `Interrupted` error saying nothing was written to `where` (no --resume here)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"nothing was written to {where}; run the command again") from None


def write_folder(out: str | Path, build: Callable[[Path], object], *, marker: str, flag: str = "--out") -> Path:
    """Build into a temporary sibling and swap it in: an interrupted or failed build leaves no folder.

    An existing folder is replaced only if it is empty or an earlier build (it holds `marker`).
    """
    from nmm_core.runs import atomic_replace_dir

    out = Path(out)
    problem = folder_problem(out, flag)
    if problem is not None:
        raise problem
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise ConfigError(f"{flag} {out}: exists and holds other files (no {marker}); choose a new or empty folder")
    make_folder(out.parent, flag)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise os_error(out, flag, exc) from None
    try:
        with interrupt_leaves_nothing(out):
            build(tmp)
            atomic_replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def synthesized(out: str, build: Callable[[Path], object], cached: Callable[[], Path], *, marker: str) -> Path:
    """A generated data set: written whole into `out` by `build`, or with no `out` the `cached` one."""
    if out:
        return write_folder(out, build, marker=marker)
    with interrupt_leaves_nothing("the cache"):
        return cached()
