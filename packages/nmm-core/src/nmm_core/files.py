"""Files and folders written whole or not at all: atomic writers, folders built in a temporary
sibling and renamed into place, output folders named on the command line, and the cache root."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nmm_core.errors import ConfigError, Interrupted, NmmError

# What a write cut short leaves behind: `.name.<hex>.tmp` files (atomic_write_bytes), folders named
# `.name.tmp-<hex>` or `.name.old-<hex>` (atomic_replace_dir) and tempfile.mkdtemp(prefix=".name-").
_LEFTOVER_FILE = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
_LEFTOVER_DIR = re.compile(r"^\..+(\.tmp-[0-9a-f]{8}|\.old-[0-9a-f]{8}|-[a-z0-9_]{8})$")
# Who generated a folder (`{"program": "nmm-charts", "kind": "synthetic"}`): `synthesize --out` replaces only its own
GENERATED_MARKER = "nmm_generated.json"


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a fsynced temp file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with 0o666 lets the umask apply, as a plain open() would (mkstemp forces 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    item = getattr(obj, "item", None)  # numpy / tensor scalars, without importing either
    if callable(item):
        return item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON (key order kept, UTF-8, trailing newline) atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=_json_default)
    atomic_write_text(path, text + "\n")


def atomic_replace_dir(src_tmp_dir: str | Path, final_dir: str | Path) -> Path:
    """Move a finished folder to `final_dir`, replacing an existing one (old moved aside first)."""
    src, final = Path(src_tmp_dir), Path(final_dir)
    if not src.is_dir():
        raise NmmError(f"cannot move {src} into place: not a folder")
    if not final.exists():
        os.rename(src, final)
        _fsync_dir(final.parent)
        return final
    aside = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, aside)
    try:
        os.rename(src, final)
    except BaseException:
        os.rename(aside, final)
        raise
    _fsync_dir(final.parent)
    shutil.rmtree(aside, ignore_errors=True)
    return final


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporary files and folders that interrupted atomic writes left under `folder`."""
    removed = []
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if _LEFTOVER_DIR.match(d)]:
            dirs.remove(name)
            shutil.rmtree(Path(root) / name, ignore_errors=True)
            removed.append(Path(root) / name)
        for name in files:
            if _LEFTOVER_FILE.match(name):
                (Path(root) / name).unlink(missing_ok=True)
                removed.append(Path(root) / name)
    return removed




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


def cache_root() -> Path:
    """`$NMM_CACHE`, else `~/.cache/nmm`."""
    return Path(os.environ.get("NMM_CACHE", Path.home() / ".cache" / "nmm"))


def build_folder(final: str | Path, build: Callable[[Path], object], *, marker: str | None = None,
                 flag: str | None = None) -> Path:
    """Build `final` by `build(tmp)` in a temporary sibling, then rename it into place.

    Without `marker` an existing `final` is replaced (moved aside first, so a failure keeps it).
    With `marker`, a file the build writes, `final` is built once: a folder holding it is returned
    unbuilt, and when another process renames its own first, theirs is kept. `flag` names the
    command-line flag in the error when the sibling cannot be made.
    """
    final = Path(final)
    if marker is not None and (final / marker).is_file():
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    except OSError as exc:
        if flag is None:
            raise
        raise os_error(final, flag, exc) from None
    try:
        build(tmp)
        if marker is None:
            atomic_replace_dir(tmp, final)
        else:
            try:
                os.replace(tmp, final)
            except OSError:  # another process built it first (or `final` holds something else)
                if not (final / marker).is_file():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def cached_folder(kind: str, key: str, build: Callable[[Path], object], *, marker: str) -> Path:
    """`cache_root()/kind/key`, built by `build(tmp)` on first use and renamed into place.

    `marker` is a file the build writes; its presence means the folder is complete, so an
    interrupted build is never served, and two processes building at once both end well.
    """
    return build_folder(cache_root() / kind / key, build, marker=marker)


def _not_generated_by(out: Path, maker: Mapping[str, str]) -> str | None:
    """Why `out` is not a set `maker` generated before (its GENERATED_MARKER names another), or None."""
    made = out / GENERATED_MARKER
    try:
        said = json.loads(made.read_text(encoding="utf-8")) if made.is_file() else {}
    except (OSError, ValueError):
        said = {}
    said = said if isinstance(said, dict) else {}
    if all(said.get(key) == value for key, value in maker.items()):
        return None
    if said.get("program") == maker["program"]:
        return f"holds a {said.get('kind', 'data')} set {maker['program']} generated, not a {maker['kind']} one"
    if said.get("program"):
        return f"holds a {said.get('kind', 'data')} set {said['program']} generated, not {maker['program']}"
    names = sorted(p.name for p in out.iterdir())
    listed = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    # a set an earlier version wrote lacks the manifest too: refused, as its maker cannot be told
    return f"holds data {maker['program']} did not generate (no {GENERATED_MARKER}: {listed})"


def write_folder(out: str | Path, build: Callable[[Path], object], *, marker: str, flag: str = "--out",
                 maker: Mapping[str, str] | None = None) -> Path:
    """Build into a temporary sibling and swap it in: an interrupted or failed build leaves no folder.

    An existing folder is replaced only if it is empty or an earlier build (it holds `marker`); with
    `maker` (the program and kind that generate it) only one whose GENERATED_MARKER names the same.
    """
    out = Path(out)
    problem = folder_problem(out, flag)
    if problem is not None:
        raise problem
    if out.is_dir() and any(out.iterdir()):
        if maker is not None and (why := _not_generated_by(out, maker)):
            # marker names are shared (`test.jsonl`, `synthetic.json`): only this maker's own set is replaced
            raise ConfigError(f"{flag} {out}: {why}: choose another {flag} or remove it")
        if not (out / marker).is_file():
            raise ConfigError(f"{flag} {out}: exists and holds other files (no {marker}); choose a new or empty folder")
    make_folder(out.parent, flag)

    def build_and_sign(tmp: Path) -> None:
        build(tmp)
        if maker is not None:
            atomic_write_json(tmp / GENERATED_MARKER, dict(maker))

    with interrupt_leaves_nothing(out):
        return build_folder(out, build_and_sign, flag=flag)


def synthesized(out: str, build: Callable[[Path], object], cached: Callable[[], Path], *, marker: str,
                program: str) -> Path:
    """A generated data set: written whole into `out` by `build` (signed as `program`'s), or with no
    `out` the `cached` one."""
    if out:
        return write_folder(out, build, marker=marker, maker={"program": program, "kind": "synthetic"})
    with interrupt_leaves_nothing("the cache"):
        return cached()


def atomic_write_npz(path: str | Path, *, compressed: bool = False, **arrays: Any) -> Path:
    """Write `arrays` as one .npz (numpy.savez, or savez_compressed) atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
