"""Load `Example`s from local files, `save_to_disk` folders or hub ids; splits; JSONL export."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import itertools
import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nmm_core.errors import ConfigError, DataError
from nmm_core.records import Example, load_image, png_bytes
from nmm_core.runs import atomic_write_bytes

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
# ChartQA and PJN_CHARTS name it `val`, PathVQA on the hub `validation`.
_ALIASES = {"val": "validation", "validation": "val"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


@dataclass(frozen=True)
class ColumnMap:
    """Which source column feeds each `Example` field (None: the source has no such column)."""

    id: str | None = "id"
    image: str | None = "image"
    prompt: str = "question"
    answers: str | None = "answer"
    meta: tuple[str, ...] = ()

    NMM_JSONL: ClassVar[ColumnMap]  # the layout `write_jsonl_dataset` writes

    def __post_init__(self) -> None:
        meta = (self.meta,) if isinstance(self.meta, str) else tuple(self.meta)  # YAML gives lists
        object.__setattr__(self, "meta", meta)


ColumnMap.NMM_JSONL = ColumnMap(prompt="prompt", answers="answers", meta=("meta",))


@dataclass
class _Columns:
    """Column-wise access to one split of a source; values are read only for the columns used."""

    where: str
    split: str
    names: list[str]
    read: Callable[[str], list[Any]]
    root: Path | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)  # ClassLabel names per column
    json_lists: bool = False  # CSV cells cannot hold lists, so answers lists are JSON text


def load_examples(
    source: str | Path,
    *,
    split: str = "train",
    columns: ColumnMap = ColumnMap(),  # noqa: B008 (frozen, so one shared default is safe)
    revision: str | None = None,
    image_root: str | Path | None = None,
    limit: int | None = None,
) -> list[Example]:
    """Load one split from a local file/folder or, failing that, a Hugging Face datasets id."""
    source = os.fspath(source)
    path = Path(os.path.expanduser(source))
    if path.exists():
        src = _open_local(path, split, limit)
    elif meant_as_path(source):
        raise DataError(f"data source {source!r} does not exist (no such file or folder)")
    else:
        src = _open_hub(source, split, revision, limit)
    if image_root is not None:
        src.root = Path(image_root)
    return _to_examples(src, columns)


def meant_as_path(source: str) -> bool:
    """Whether `source` can only be a local file or folder, not a hub id."""
    return source.startswith((".", "/", "~")) or source.endswith(_EXTENSIONS) or (
        source.count("/") > 1  # a hub id is `name` or `owner/name`; this was meant as a path
    )


def _open_local(path: Path, split: str, limit: int | None) -> _Columns:
    """A file is the split itself; a folder is a `save_to_disk` folder or holds split files."""
    if path.is_file():
        return _read_files([path], split, limit)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _read_saved(path, split, limit)
    for name in filter(None, (split, _ALIASES.get(split))):
        for base in (path, path / "data"):
            for ext in _EXTENSIONS:
                if (base / f"{name}{ext}").is_file():
                    return _read_files([base / f"{name}{ext}"], name, limit)
            shards = sorted(base.glob(f"{glob.escape(name)}-*.parquet"))
            if shards:
                return _read_files(shards, name, limit)
    bases = [base for base in (path, path / "data") if base.is_dir()]
    found = sorted({f.name.split(".")[0].split("-")[0] for base in bases
                    for f in base.iterdir() if f.name.endswith(_EXTENSIONS)})
    listed = ", ".join(found) or "none"
    raise DataError(f"{path}: no data for split {split!r}; splits found: {listed}")


def _read_files(files: list[Path], split: str, limit: int | None) -> _Columns:
    """Read jsonl/json/csv (as written, no type guessing) or parquet shards (via arrow)."""
    first = files[0]
    where = f"{first if len(files) == 1 else first.parent} (split {split!r})"
    suffix = first.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            tables = [pq.read_table(f) for f in files]
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{where}: cannot read parquet ({exc})") from exc
        table = pa.concat_tables(tables, promote_options="default")
        return _from_table(table, where, split, first.parent, limit, _parquet_labels(table.schema))
    if suffix not in _EXTENSIONS:
        kinds = ", ".join(_EXTENSIONS)
        raise DataError(f"{first}: unsupported file type {suffix!r}; use one of {kinds}")
    rows = _read_rows(first, suffix, limit)
    if not rows:
        raise DataError(f"{where}: no records in the file")
    names = list(dict.fromkeys(key for row in rows for key in row))
    return _Columns(where, split, names, lambda name: [row.get(name) for row in rows],
                    first.parent, json_lists=suffix == ".csv")


def _read_rows(path: Path, suffix: str, limit: int | None) -> list[dict[str, Any]]:
    """Rows of a jsonl, json (a list of objects) or csv file, at most `limit` of them."""
    text = read_utf8(path)
    if suffix == ".csv":
        rows: Any = list(csv.DictReader(io.StringIO(text, newline="")))
    elif suffix == ".json":
        rows = _json(text, str(path))
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of objects, got {type(rows).__name__}")
    else:  # split on "\n" only: JSON text may hold a raw U+2028, which splitlines() breaks on
        lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        rows = [_json(line, f"{path} line {n}") for n, line in lines[:limit]]
    rows = rows[:limit]
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path} record {number}: expected an object, got {type(row).__name__}")
    return rows


def read_utf8(path: Path) -> str:
    """The text of `path` (a UTF-8 BOM dropped); a DataError names the line and column of a non-UTF-8 byte."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)  # utf-8-sig counts after the BOM
        line = raw.count(b"\n", 0, at) + 1
        column = at - (raw.rfind(b"\n", 0, at) + 1) + 1
        raise DataError(f"{path} line {line}: not UTF-8 text (byte 0x{raw[at]:02x} at column {column}); "
                        "save the file as UTF-8") from None


def check_limit(limit: int | None, flag: str = "--data-limit") -> None:
    """A ConfigError unless `limit` is None (every record) or a count of at least 1."""
    if limit is not None and limit < 1:
        raise ConfigError(f"{flag} must be at least 1 (or none for every record), got {limit}")


def check_val_fraction(fraction: float, flag: str = "--data-val-fraction") -> None:
    """A ConfigError unless `fraction` is strictly between 0 and 1."""
    if not 0 < fraction < 1:
        raise ConfigError(f"{flag} must be between 0 and 1 (exclusive), got {fraction}")


def _json(text: str, where: str) -> Any:
    """Parsed JSON, or a DataError naming where the text came from."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON ({exc})") from exc


def _read_saved(folder: Path, split: str, limit: int | None) -> _Columns:
    """A `save_to_disk` folder: a DatasetDict (pick the split) or one Dataset (taken as is)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as exc:  # datasets raises many kinds for a damaged folder
        raise DataError(f"{folder}: cannot load the save_to_disk folder ({exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        name = split if split in loaded else _ALIASES.get(split)
        if name not in loaded:
            raise DataError(f"{folder}: no split {split!r}; splits: {', '.join(loaded)}")
        split, loaded = name, loaded[name]
    return _from_dataset(loaded, f"{folder} (split {split!r})", split, folder, limit)


def _open_hub(source: str, split: str, revision: str | None, limit: int | None) -> _Columns:
    """Load a hub dataset split; any failure is one line naming source, split and revision."""
    import datasets

    where = f"dataset {source!r} (split {split!r}, revision {revision or 'default'})"
    try:
        try:
            ds = datasets.load_dataset(source, split=split, revision=revision)
        except ValueError as exc:
            alias = _ALIASES.get(split)
            if alias is None or "Unknown split" not in str(exc):
                raise
            ds = datasets.load_dataset(source, split=alias, revision=revision)
            split = alias
    except Exception as exc:  # network, auth, missing repo/revision/split: all one message
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                   if os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}]
        verb = "is" if len(offline) == 1 else "are"
        note = (f"; {' and '.join(offline)} {verb} set, so only datasets already in the local "
                "cache can be loaded" if offline else "")
        raise DataError(f"cannot load {where} from the Hugging Face hub: {reason}{note}") from exc
    return _from_dataset(ds, where, split, None, limit)


def _from_dataset(ds: datasets.Dataset, where: str, split: str, root: Path | None,
                  limit: int | None) -> _Columns:
    """Arrow view of a Dataset: Image columns stay {bytes, path} structs, never decoded."""
    import datasets

    labels = {k: f.names for k, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    return _from_table(ds.with_format("arrow")[:], where, split, root, limit, labels)


def _from_table(table: pa.Table, where: str, split: str, root: Path | None, limit: int | None,
                labels: dict[str, list[str]]) -> _Columns:
    """Column access to an arrow table (only the columns used are turned into Python values)."""
    if limit is not None:
        table = table.slice(0, limit)
    return _Columns(where, split, table.column_names,
                    lambda name: table.column(name).to_pylist(), root, labels)


def _parquet_labels(schema: pa.Schema) -> dict[str, list[str]]:
    """ClassLabel names from the features that `datasets` stores in parquet metadata."""
    if not schema.metadata or b"huggingface" not in schema.metadata:
        return {}
    import datasets

    features = datasets.Features.from_arrow_schema(schema)
    return {k: f.names for k, f in features.items() if isinstance(f, datasets.ClassLabel)}


def _to_examples(src: _Columns, cmap: ColumnMap) -> list[Example]:
    """Build Examples column by column; a mapped column absent from the source is an error."""
    # A missing *default* id column is normal (PathVQA, ChartQA have none); a chosen one is not.
    id_col = None if cmap.id is None or (cmap.id == "id" and "id" not in src.names) else cmap.id
    for name in (id_col, cmap.image, cmap.prompt, cmap.answers, *cmap.meta):
        if name is not None and name not in src.names:
            raise DataError(f"{src.where}: column {name!r} not found; available columns: "
                            f"{', '.join(src.names) or 'none'}")
    prompts = src.read(cmap.prompt)
    n = len(prompts)
    if id_col is None:
        ids = [f"{src.split}-{i}" for i in range(n)]
    else:
        ids = ["" if v is None else str(v) for v in src.read(id_col)]
    images = [_image(v, src.root) for v in src.read(cmap.image)] if cmap.image else [None] * n
    answers: list[tuple[Any, ...]] = [()] * n
    if cmap.answers:
        names = src.labels.get(cmap.answers)
        answers = [_answers(_label(v, names), src.json_lists) for v in src.read(cmap.answers)]
    metas = [(name, src.read(name), src.labels.get(name)) for name in cmap.meta]
    examples = []
    for i in range(n):
        meta: dict[str, Any] = {}
        for name, values, names in metas:
            value = _label(values[i], names)
            if name == "meta" and isinstance(value, dict):  # the NMM_JSONL meta object, flattened
                meta.update(value)
            elif not (name == "meta" and value is None):
                meta[name] = value
        examples.append(Example(ids[i], images[i], prompts[i], answers[i], meta))
    return examples


def _label(value: Any, names: list[str] | None) -> Any:
    """A ClassLabel integer as its name (-1, "no label", as None)."""
    if names is None or not isinstance(value, int):
        return value
    return names[value] if 0 <= value < len(names) else None


def _answers(value: Any, json_lists: bool) -> tuple[Any, ...]:
    """A str or a list of str as a tuple; non-text is kept so that `validate` reports it."""
    if value is None:
        return ()
    if json_lists and isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            return tuple(parsed)
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _image(value: Any, root: Path | None) -> Any:
    """A path (relative ones joined to `root`), bytes, or None; {bytes, path} prefers bytes."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, str):
        if not value:
            return None
        if root is not None and not os.path.isabs(value) and "://" not in value:
            return os.path.join(root, value)
    return value


def split_examples(
    examples: Iterable[Example], *, sizes: Mapping[str, int | float], seed: int
) -> dict[str, list[Example]]:
    """Seeded shuffle of the records sorted by id, then consecutive slices of the given sizes."""
    ordered = sorted(examples, key=lambda e: e.id)
    dupes = [i for i, n in Counter(e.id for e in ordered).items() if n > 1]
    if dupes:
        raise DataError(f"cannot split: duplicate ids {', '.join(map(repr, dupes[:5]))} "
                        f"({len(dupes)} in all); run validate() first")
    total = len(ordered)
    counts: dict[str, int] = {}
    for name, size in sizes.items():
        if type(size) not in (int, float) or not 0 <= size <= (1 if type(size) is float else size):
            raise ConfigError(f"split size {name}={size!r}: use a count >= 0 or a fraction 0..1")
        counts[name] = int(size * total) if isinstance(size, float) else size
    fractions = list(sizes.values())
    if counts and all(isinstance(s, float) for s in fractions) and abs(sum(fractions) - 1) < 1e-9:
        # Flooring fractions that cover everything would drop a few records; the first split
        # takes them.
        counts[next(iter(counts))] += total - sum(counts.values())
    if sum(counts.values()) > total:
        asked = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise DataError(f"split sizes ({asked}) add up to {sum(counts.values())}, "
                        f"but there are only {total} records")
    random.Random(seed).shuffle(ordered)
    starts = [0, *itertools.accumulate(counts.values())]
    return {name: ordered[a:b] for name, a, b in zip(counts, starts, starts[1:], strict=False)}


def holdout(examples: Sequence[Example], fraction: float, *, seed: int) -> tuple[list[Example], list[Example]]:
    """(the rest in their order, a seeded `fraction` held out): `split_examples`' draw, so the same
    seed holds out the same records."""
    check_val_fraction(fraction)
    held = split_examples(examples, sizes={"train": 1 - fraction, "validation": fraction}, seed=seed)["validation"]
    ids = {ex.id for ex in held}
    rest = [ex for ex in examples if ex.id not in ids]
    if not held or not rest:
        raise DataError(f"a validation fraction of {fraction} of {len(examples)} training records leaves "
                        f"{len(held)} to validate on and {len(rest)} to train on: change --data-val-fraction "
                        "or name a validation split (--data-val-split)")
    return rest, held


def write_jsonl_dataset(
    examples: Iterable[Example], folder: str | Path, *, split: str, image_dir: str = "images",
    columns: ColumnMap | None = None,
) -> Path:
    """Write `<folder>/<split>.jsonl` plus PNG images under `<folder>/<image_dir>/`, atomically.

    One line per record, images as paths relative to `folder` (null for text-only records):
    `{"id": ..., "image": "images/x.png", "prompt": ..., "answers": [...], "meta": {...}}`.
    `load_examples(folder, split=split, columns=ColumnMap.NMM_JSONL)` reads it back; meta must
    be JSON (tuples come back as lists). With `columns` (a dataset's own names, every field
    named), the fields go under those names and each meta key is a column of its own, so
    `load_examples(folder, split=split, columns=columns)` reads it back.
    """
    folder = Path(folder)
    lines = []
    for example in examples:
        image = save_example_image(example, folder, split=split, image_dir=image_dir)
        if columns is None:
            row = {"id": example.id, "image": image, "prompt": example.prompt,
                   "answers": list(example.answers), "meta": dict(example.meta)}
        else:
            row = {columns.id: example.id, columns.image: image, columns.prompt: example.prompt,
                   columns.answers: list(example.answers), **example.meta}
        try:
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        except (TypeError, ValueError) as exc:
            raise DataError(f"record {example.id!r} field 'meta': not JSON ({exc})") from exc
    target = folder / f"{split}.jsonl"
    atomic_write_bytes(target, "".join(lines).encode("utf-8"))
    return target


def save_example_image(example: Example, folder: str | Path, *, split: str,
                       image_dir: str = "images") -> str | None:
    """Save the example's image as `<folder>/<image_dir>/<safe name>.png`; the relative path."""
    if example.image is None:
        return None
    relative = f"{image_dir}/{_file_stem(split, example.id)}.png"
    (Path(folder) / image_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(folder) / relative, _png_bytes(example))
    return relative


def _file_stem(split: str, record_id: str) -> str:
    """A safe, unique file name: ids may hold `/`, `:`, `?` or non-ASCII (MemeCraft templates)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", record_id).strip("._")[:80] or "image"
    digest = hashlib.sha1(f"{split}\0{record_id}".encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


def _png_bytes(example: Example) -> bytes:
    """PNG files are copied byte for byte; anything else is decoded and saved as PNG."""
    source = example.image
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        source = Path(source).read_bytes()  # a missing file is left to load_image to report
    if isinstance(source, (bytes, bytearray)) and source.startswith(_PNG_MAGIC):
        return bytes(source)
    image = load_image(example, mode=None)
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return png_bytes(image)


def load_optional_columns(
    source: str | Path,
    *,
    split: str,
    names: Sequence[str],
    columns: ColumnMap = ColumnMap(),  # noqa: B008 (frozen, so one shared default is safe)
    limit: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Those of the columns `names` that a local file or folder's split has, each as {record id: value},
    read in one pass (`columns` says where ids come from); a column it lacks is simply absent."""
    from dataclasses import replace

    src = _open_local(Path(os.path.expanduser(os.fspath(source))), split, limit)
    present = tuple(name for name in names if name in src.names)
    rows = _to_examples(src, replace(columns, image=None, answers=None, meta=present))
    return {name: {row.id: row.meta.get(name) for row in rows} for name in present}
