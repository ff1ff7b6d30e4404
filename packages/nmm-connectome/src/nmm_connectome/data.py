"""The cohort: one rest and one motor-task FC matrix per subject, checked, saved and loaded.

Sources: a cohort folder written here (`cohort.json` + `fc/<subject>.npz`), a folder of
precomputed FC matrices or parcellated time series (npy/csv/tsv/txt/mat), HCP CIFTI files
(`fc.build_cohort_from_cifti`), and the seeded synthetic cohort (`synthetic.synthesize`).

Every bad matrix becomes a `Problem` naming the subject and the file; `policy="stop"` raises it
as a `DataError`, `policy="skip"` leaves the subject out and counts it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nmm_core.errors import DataError
from nmm_core.files import atomic_write_json, atomic_write_npz
from nmm_core.records import Problem, summary_line

KINDS = ("correlation", "fisher_z")
Kind = Literal["correlation", "fisher_z"]
Policy = Literal["skip", "stop"]
FORMAT = "nmm-connectome-cohort"
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ARRAY_EXTENSIONS = (".npy", ".csv", ".tsv", ".txt", ".mat")
_FLAT_RE = re.compile(r"^(?P<subject>.+?)[_-](?P<condition>rest|task)$", re.IGNORECASE)
_SYMMETRY_TOL = 1e-5


@dataclass
class Cohort:
    """Paired FC matrices: `rest[i]` and `task[i]` belong to `subjects[i]`.

    rest, task : ndarray, shape (n_subjects, n_regions, n_regions), float32, symmetric; the
    diagonal is 1 for `kind="correlation"` and 0 for `kind="fisher_z"`.
    """

    subjects: list[str]
    rest: np.ndarray
    task: np.ndarray
    regions: list[str]
    networks: list[str] | None = None
    kind: str = "correlation"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.subjects = [str(s) for s in self.subjects]
        self.rest = np.asarray(self.rest, dtype=np.float32)
        self.task = np.asarray(self.task, dtype=np.float32)
        n, r = len(self.subjects), len(self.regions)
        for name, arr in (("rest", self.rest), ("task", self.task)):
            if arr.shape != (n, r, r):
                raise DataError(f"cohort {name}: shape {arr.shape}, expected ({n}, {r}, {r}) for "
                                f"{n} subjects and {r} regions")
        if self.kind not in KINDS:
            raise DataError(f"cohort kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if len(set(self.subjects)) != n:
            dup = [s for s, c in Counter(self.subjects).items() if c > 1]
            raise DataError(f"cohort: duplicate subject ids {dup[:5]}")
        if self.networks is not None and len(self.networks) != r:
            raise DataError(f"cohort networks: {len(self.networks)} labels for {r} regions")

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    def __len__(self) -> int:
        return len(self.subjects)

    def subset(self, subjects: Sequence[str]) -> Cohort:
        """The cohort restricted to `subjects`, in that order."""
        index = {s: i for i, s in enumerate(self.subjects)}
        missing = [s for s in subjects if s not in index]
        if missing:
            raise DataError(f"subjects not in the cohort: {', '.join(missing[:5])}")
        rows = [index[s] for s in subjects]
        return Cohort(list(subjects), self.rest[rows], self.task[rows], self.regions,
                      self.networks, self.kind, dict(self.meta))

    def save(self, folder: str | Path) -> Path:
        """Write `cohort.json` and one `fc/<subject>.npz` (arrays `rest`, `task`) per subject."""
        folder = Path(folder)
        for i, subject in enumerate(self.subjects):
            check_subject_id(subject)
            atomic_write_npz(folder / "fc" / f"{subject}.npz", rest=self.rest[i], task=self.task[i])
        atomic_write_json(folder / "cohort.json", {
            "format": FORMAT, "version": 1, "kind": self.kind, "n_regions": self.n_regions,
            "subjects": self.subjects, "regions": self.regions, "networks": self.networks,
            "meta": self.meta,
        })
        return folder


def check_subject_id(subject: str) -> str:
    """A subject id must be a safe file name (it names `fc/<subject>.npz`)."""
    if not _SUBJECT_RE.match(subject):
        raise DataError(f"subject id {subject!r}: use letters, digits, '.', '_' or '-'")
    return subject


# -- validation ---------------------------------------------------------------------------------

def matrix_problem(m: np.ndarray, *, n_regions: int | None = None,
                   kind: str = "correlation") -> tuple[str, str] | None:
    """Why `m` is not a usable FC matrix, as (kind of problem, explanation), or None.

    The diagonal is not checked (precomputed Fisher-z files often hold inf or NaN there);
    `canonical` sets it.
    """
    m = np.asarray(m)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        return "wrong shape", f"not a square matrix (shape {tuple(m.shape)})"
    r = m.shape[0]
    if n_regions is not None and r != n_regions:
        return "wrong shape", f"{r} x {r} regions, expected {n_regions} x {n_regions}"
    if r < 2:
        return "wrong shape", f"{r} x {r}: an FC matrix needs at least 2 regions"
    if not np.issubdtype(m.dtype, np.number):
        return "not numeric", f"dtype {m.dtype} is not numeric"
    off = ~np.eye(r, dtype=bool)
    bad = off & ~np.isfinite(m)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        return "NaN/Inf", f"{int(bad.sum())} NaN/Inf values off the diagonal (first at [{i}, {j}]: {m[i, j]})"
    m = np.where(off, m, 0.0)
    diff = np.abs(m - m.T)
    if diff.max() > _SYMMETRY_TOL * max(1.0, float(np.abs(m[off]).max())):
        i, j = (int(v) for v in np.unravel_index(int(diff.argmax()), diff.shape))
        return "not symmetric", f"not symmetric: |A[{i}, {j}] - A[{j}, {i}]| = {diff[i, j]:.3g}"
    if kind == "correlation" and np.abs(m[off]).max() > 1 + 1e-6:
        return "out of range", (f"correlations outside [-1, 1] (max |r| {np.abs(m[off]).max():.3g}); "
                                "Fisher-z matrices need kind 'fisher_z'")
    return None


def canonical(m: np.ndarray, kind: str) -> np.ndarray:
    """Exactly symmetric float32 copy with the diagonal of `kind` (1 correlation, 0 Fisher z)."""
    m = np.asarray(m, dtype=np.float64)
    out = np.where(np.eye(len(m), dtype=bool), 0.0, m)
    out = (out + out.T) / 2
    np.fill_diagonal(out, 1.0 if kind == "correlation" else 0.0)
    return out.astype(np.float32)


def fisher_z(m: np.ndarray) -> np.ndarray:
    """arctanh of the off-diagonal correlations (clipped to |r| <= 1 - 1e-7), diagonal 0."""
    m = np.asarray(m, dtype=np.float64)
    z = np.arctanh(np.clip(m, -1 + 1e-7, 1 - 1e-7))
    eye = np.eye(m.shape[-1], dtype=bool)
    return np.where(eye, 0.0, z)


def summarize(kept: int, problems: Sequence[Problem]) -> str:
    """One line: kept N of M subjects; skipped K: counts by kind."""
    return summary_line(kept, kept + len(problems), problems, "subjects")


@dataclass
class Candidate:
    """One subject's matrices before pairing and checks (`None`: that side is missing)."""

    subject: str
    rest: np.ndarray | None
    task: np.ndarray | None
    rest_source: str = ""
    task_source: str = ""
    problem: Problem | None = None  # set by the loader when a file could not be read


def read_candidate(subject: str, sides: dict[str, Any], read: Callable[[Any], np.ndarray], *,
                   sources: dict[str, str], fisher: bool = False) -> Candidate:
    """One subject's matrices, `read(side)` per condition given; the first that fails is its problem."""
    arrays: dict[str, np.ndarray | None] = {"rest": None, "task": None}
    for condition, side in sides.items():
        try:
            arr = read(side)
        except DataError as e:
            return Candidate(subject, None, None, sources.get("rest", ""), sources.get("task", ""),
                             Problem(subject, condition, str(e), "unreadable"))
        arrays[condition] = fisher_z(arr) if fisher else arr
    return Candidate(subject, arrays["rest"], arrays["task"], sources.get("rest", ""), sources.get("task", ""))


def assemble(candidates: Iterable[Candidate], *, kind: str = "correlation", policy: Policy = "skip",
             regions: Sequence[str] | None = None, networks: Sequence[str] | None = None,
             meta: dict[str, Any] | None = None) -> tuple[Cohort, list[Problem]]:
    """Pair, check and stack subjects into a `Cohort`; the problems of those left out.

    The expected parcellation size is `len(regions)` when given, else the most common size
    among the subjects' rest matrices, so one odd file is the one blamed.
    """
    if policy not in ("skip", "stop"):
        raise DataError(f"policy {policy!r}: expected 'skip' or 'stop'")
    candidates = list(candidates)
    problems: list[Problem] = []

    def flag(problem: Problem) -> None:
        if policy == "stop":
            raise DataError(str(problem))
        problems.append(problem)

    n_regions = len(regions) if regions is not None else _common_size(candidates)
    kept: list[tuple[str, np.ndarray, np.ndarray]] = []
    seen: set[str] = set()
    for c in candidates:
        if c.problem is not None:
            flag(c.problem)
            continue
        if c.subject in seen:
            flag(Problem(c.subject, "subject", "appears twice", "duplicate"))
            continue
        seen.add(c.subject)
        missing = [name for name, arr in (("task", c.task), ("rest", c.rest)) if arr is None]
        if missing:
            have = c.rest_source or c.task_source
            flag(Problem(c.subject, missing[0], f"unpaired: no {' or '.join(missing)} matrix "
                                                f"(found only {have})", "unpaired"))
            continue
        problem = _pair_problem(c, n_regions, kind)
        if problem is not None:
            flag(problem)
            continue
        kept.append((c.subject, canonical(c.rest, kind), canonical(c.task, kind)))
    if not kept:
        detail = f": {problems[0]}" if problems else ""
        raise DataError(f"no usable subjects ({summarize(0, problems)}){detail}")
    if regions is None:
        regions = [f"region_{k:03d}" for k in range(n_regions)]
    cohort = Cohort([s for s, _, _ in kept], np.stack([r for _, r, _ in kept]),
                    np.stack([t for _, _, t in kept]), list(regions),
                    list(networks) if networks is not None else None, kind, dict(meta or {}))
    return cohort, problems


def _common_size(candidates: Sequence[Candidate]) -> int | None:
    sizes = Counter(c.rest.shape[0] for c in candidates
                    if c.rest is not None and np.ndim(c.rest) == 2)
    return sizes.most_common(1)[0][0] if sizes else None


def _pair_problem(c: Candidate, n_regions: int | None, kind: str) -> Problem | None:
    rest, task = np.asarray(c.rest), np.asarray(c.task)
    if rest.ndim == 2 and task.ndim == 2 and rest.shape != task.shape:
        return Problem(c.subject, "task", (
            f"mismatched parcellations: rest {c.rest_source} is {rest.shape[0]} x {rest.shape[1]}, "
            f"task {c.task_source} is {task.shape[0]} x {task.shape[1]}"), "mismatched parcellation")
    for name, arr, source in (("rest", rest, c.rest_source), ("task", task, c.task_source)):
        found = matrix_problem(arr, n_regions=n_regions, kind=kind)
        if found is not None:
            why = f"{source}: {found[1]}" if source else found[1]
            return Problem(c.subject, name, why, found[0])
    return None


# -- cohort folders and precomputed FC ----------------------------------------------------------

def load_cohort(folder: str | Path, *, policy: Policy = "skip") -> tuple[Cohort, list[Problem]]:
    """Read a cohort folder written by `Cohort.save` (every matrix is checked again)."""
    folder = Path(folder)
    index_path = folder / "cohort.json"
    if not index_path.is_file():
        raise DataError(f"{folder}: not a cohort folder (no cohort.json); make one with "
                        "`nmm-connectome data synthesize` or `data build-fc`")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{index_path}: invalid JSON ({e})") from None
    if index.get("format") != FORMAT:
        raise DataError(f"{index_path}: format {index.get('format')!r}, expected {FORMAT!r}")
    kind = index.get("kind", "correlation")
    candidates = []
    for subject in index["subjects"]:
        path = folder / "fc" / f"{check_subject_id(subject)}.npz"
        source = str(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                rest = z["rest"] if "rest" in z else None
                task = z["task"] if "task" in z else None
        except (OSError, ValueError) as e:
            candidates.append(Candidate(subject, None, None, problem=Problem(
                subject, "file", f"{source}: cannot read ({e})", "unreadable")))
            continue
        candidates.append(Candidate(subject, rest, task, source, source))
    return assemble(candidates, kind=kind, policy=policy, regions=index["regions"],
                    networks=index.get("networks"), meta=index.get("meta") or {})


def read_array(path: str | Path, *, mat_key: str | None = None) -> np.ndarray:
    """A 2-D array from .npy, .csv, .tsv, .txt (numbers only) or .mat; DataError naming the file."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif ext == ".mat":
            arr = _read_mat(path, mat_key)
        elif ext in (".csv", ".tsv", ".txt"):
            delimiter = {".csv": ",", ".tsv": "\t"}.get(ext)
            arr = np.loadtxt(path, delimiter=delimiter, ndmin=2)
        else:
            raise DataError(f"{path}: unsupported file type {ext!r} (use {', '.join(_ARRAY_EXTENSIONS)})")
    except DataError:
        raise
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({' '.join(str(e).split())})") from None
    return np.asarray(arr)


def _read_mat(path: Path, key: str | None) -> np.ndarray:
    from scipy.io import loadmat

    data = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    if key is not None:
        if key not in data:
            raise DataError(f"{path}: no variable {key!r} (has {', '.join(sorted(data)) or 'none'})")
        return np.asarray(data[key])
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray) and v.ndim == 2
              and np.issubdtype(v.dtype, np.number)}
    if len(arrays) != 1:
        raise DataError(f"{path}: {len(arrays)} 2-D numeric variables ({', '.join(sorted(arrays))}); "
                        "name one with mat_key")
    return next(iter(arrays.values()))


def find_pairs(folder: str | Path) -> dict[str, dict[str, Path]]:
    """{subject: {"rest": path, "task": path}} in a folder of per-subject array files.

    Layouts: `rest/<subject>.<ext>` + `task/<subject>.<ext>`, or `<subject>_rest.<ext>` +
    `<subject>_task.<ext>` side by side. A side may be missing (reported as unpaired later).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    found: dict[str, dict[str, Path]] = {}

    def add(subject: str, condition: str, path: Path) -> None:
        side = found.setdefault(subject, {})
        if condition in side:
            raise DataError(f"subject {subject!r}: two {condition} files ({side[condition].name}, "
                            f"{path.name}); keep one")
        side[condition] = path

    if (folder / "rest").is_dir() or (folder / "task").is_dir():
        for condition in ("rest", "task"):
            sub = folder / condition
            for path in sorted(sub.iterdir()) if sub.is_dir() else ():
                if path.suffix.lower() in _ARRAY_EXTENSIONS:
                    add(path.stem, condition, path)
    else:
        for path in sorted(folder.iterdir()):
            m = _FLAT_RE.match(path.stem)
            if path.suffix.lower() in _ARRAY_EXTENSIONS and m:
                add(m["subject"], m["condition"].lower(), path)
    if not found:
        raise DataError(f"{folder}: no FC files (expected rest/<subject>.npy + task/<subject>.npy, "
                        f"or <subject>_rest.npy + <subject>_task.npy; extensions "
                        f"{', '.join(_ARRAY_EXTENSIONS)})")
    return dict(sorted(found.items()))


def load_array_folder(folder: str | Path, *, content: Literal["fc", "timeseries"] = "fc",
                      kind: Kind = "correlation", policy: Policy = "skip",
                      mat_key: str | None = None, estimator: str = "empirical",
                      fisher: bool = False) -> tuple[Cohort, list[Problem]]:
    """A cohort from precomputed FC matrices or parcellated time series (frames x regions).

    Time series become FC with nilearn (`connectivity.connectivity`); `fisher` stores Fisher z.
    """
    def read(path: Path) -> np.ndarray:
        arr = read_array(path, mat_key=mat_key)
        if content == "timeseries":
            from nmm_connectome.connectivity import connectivity

            arr = connectivity([arr], estimator=estimator, source=str(path))
        return arr

    candidates = [read_candidate(subject, sides, read, sources={k: str(v) for k, v in sides.items()},
                                 fisher=content == "timeseries" and fisher)
                  for subject, sides in find_pairs(folder).items()]
    out_kind = "fisher_z" if content == "timeseries" and fisher else kind
    meta = {"source": str(folder), "content": content}
    return assemble(candidates, kind=out_kind, policy=policy, meta=meta)


def load_any(source: str | Path, *, policy: Policy = "skip", **kwargs: Any) -> tuple[Cohort, list[Problem]]:
    """A cohort folder if `source` has `cohort.json`, else a folder of precomputed FC matrices."""
    if (Path(source) / "cohort.json").is_file():
        return load_cohort(source, policy=policy)
    return load_array_folder(source, policy=policy, **kwargs)
