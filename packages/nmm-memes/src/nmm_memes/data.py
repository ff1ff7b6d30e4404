"""Meme data: MemeCap and MemeCraft in their real file formats, and the synthetic set, as core `Example`s.

MemeCap (gh eujhwang/meme-cap) is a JSON list of records: `title`, `img_captions`,
`meme_captions` (every one is a reference), `metaphors`, `img_fname`, `post_id`, `url`,
`category`. The repo has `memes-trainval.json` and `memes-test.json`; the paper keeps 10% of
trainval for validation, with no split file, so ours is a seeded 10% and the seed is recorded.
Images come from a folder the user downloaded (flat, or with the zip's `memes/` level).

MemeCraft (gh Social-AI-Studio/MemeCraft) holds generated memes: one JSON object per file keyed
by imgflip template name, values a list of 2 (caption, raw model output), a list of 1, or a bare
string. It has no meaning annotation, so its examples carry the overlaid text as the answer and
the topic/stance/context (from the file name) in `meta`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from nmm_core.data import check_limit, read_utf8, split_examples
from nmm_core.errors import ConfigError, DataError
from nmm_core.records import Example, Problem, ValidationReport, validate
from nmm_core.seeds import part_seed
from nmm_core.sources import SYNTHETIC, is_synthetic

TRAINVAL, TEST = "memes-trainval.json", "memes-test.json"
SPLITS = ("train", "validation", "test")
SYNTHETIC_VERSION = 1  # bump when the generator's output changes: cached sets are rebuilt
FILTERED = ("Hateful", "Error")
_MEMECRAFT_NAME = re.compile(
    r"^(?P<topic>.+?)_(?P<stance>Supporter|Denier)_(?P<context>.+)_(?P<cot>COT|Non-COT)_caption$")


@dataclass
class MemeDataSettings:
    """Which memes: MemeCap (file or folder), MemeCraft (caption file or folder), or the synthetic set."""

    source: str = field(default=SYNTHETIC, metadata={
        "help": "MemeCap folder/JSON file, MemeCraft caption file/folder, or 'synthetic' (the generated set)",
        "aliases": ("--data",)})
    format: Literal["auto", "memecap", "memecraft"] = field(
        default="auto", metadata={"help": "auto: MemeCraft if the name ends in _caption.json or is a "
                                          "folder of them, else MemeCap"})
    images: str | None = field(default=None, metadata={
        "help": "image folder (MemeCap: where img_fname files are; MemeCraft: the dataset folder)"})
    split: str = field(default="train", metadata={"help": "split to train on (train|validation|test)"})
    eval_split: str = field(default="test", metadata={"help": "split to evaluate on"})
    split_seed: int | None = field(default=None, metadata={"help": "seed of MemeCap's 10% validation split "
                                                                   "(default: the run seed)"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of trainval kept for validation"})
    val_split: str = field(default="validation", metadata={"help": "validation split of --train-eval-steps"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N records of a split"})
    on_bad_record: Literal["skip", "stop"] = field(
        default="skip", metadata={"help": "skip bad records (counted, listed) or stop at them"})

    def __post_init__(self) -> None:
        check_limit(self.limit)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class SyntheticSettings:
    """The embedded synthetic meme set (used when no --data-source is given)."""

    seed: int | None = field(default=None, metadata={"help": "generator seed, same seed same memes (default: "
                                                             "the run seed)"})
    trainval_size: int = field(default=440, metadata={"help": "records in memes-trainval.json"})
    test_size: int = field(default=60, metadata={"help": "records in memes-test.json"})
    image_size: int = field(default=96, metadata={"help": "square image side in pixels"})

    def sizes(self) -> dict[str, int]:
        """Records per file (MemeCap's two)."""
        return {"trainval": self.trainval_size, "test": self.test_size}

    def key(self) -> str:
        """The cached set's folder name under $NMM_CACHE/memes: it changes whenever the generated files would."""
        seed = part_seed(self.seed)
        text = json.dumps([SYNTHETIC_VERSION, seed, self.trainval_size, self.test_size, self.image_size])
        return f"synthetic-v{SYNTHETIC_VERSION}-seed{seed}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def synthesize(settings: SyntheticSettings, folder: str | Path, *, progress: bool = True) -> Path:
    """Write the synthetic set as a MemeCap folder: the two JSON files + `images/<img_fname>`."""
    from tqdm.auto import tqdm

    from nmm_core.runs import atomic_write_bytes, atomic_write_json, atomic_write_text
    from nmm_memes.synthetic import make_memes

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, split, n in ((TRAINVAL, "trainval", settings.trainval_size), (TEST, "test", settings.test_size)):
        records = []
        memes = make_memes(n, seed=part_seed(settings.seed), split=split, image_size=settings.image_size)
        for record, png in tqdm(memes, desc=f"rendering {name}", disable=not progress):
            atomic_write_bytes(folder / "images" / record["img_fname"], png)
            records.append(record)
        atomic_write_text(folder / name, json.dumps(records, indent=1, ensure_ascii=False))
    manifest = {"version": SYNTHETIC_VERSION, **asdict(settings), "seed": part_seed(settings.seed)}
    atomic_write_json(folder / "synthetic.json", manifest)  # last: its presence means complete
    return folder


@dataclass(frozen=True)
class MemeSource:
    """MemeCap, MemeCraft or the generated set (`synthetic`, MemeCap-shaped), read by memes' loaders."""

    settings: MemeDataSettings
    synthetic: Callable[[], Path] | None = None  # builds (once) and returns the generated set

    def resolve(self) -> MemeSource:
        """The generated set's folder as the source when the source names it; a MemeCap folder with an
        `images/` inside (the generated set, or what `data synthesize --out` writes) uses those images."""
        data = self.settings
        if self.synthetic is not None and is_synthetic(data.source):
            folder = self.synthetic()
            data = replace(data, source=str(folder), format="memecap", images=str(folder / "images"))
        beside = Path(data.source) / "images"
        if data.images is None and data.source and beside.is_dir():
            data = replace(data, images=str(beside))
        return replace(self, settings=data)

    def load(self, split: str) -> ValidationReport:
        """One split, validated (skip-and-count or stop)."""
        return load_memes(self.settings, split)


def detect_format(source: str | Path) -> str:
    """`memecraft` for a `*_caption.json` file or a folder holding them, else `memecap`."""
    path = Path(source)
    if path.is_file():
        return "memecraft" if path.name.endswith("_caption.json") else "memecap"
    if path.is_dir() and not (path / TRAINVAL).exists() and not (path / TEST).exists():
        if any(path.rglob("*_caption.json")):
            return "memecraft"
    return "memecap"


def load_memes(data: MemeDataSettings, split: str) -> ValidationReport:
    """Load and validate one split of `data` (its source already resolved)."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is unknown; use one of {', '.join(SPLITS)}")
    fmt = detect_format(data.source) if data.format == "auto" else data.format
    if fmt == "memecraft":
        report = load_memecraft(data.source, images=data.images)
    else:
        report = load_memecap(data.source, split=split, images=data.images, seed=part_seed(data.split_seed),
                              val_fraction=data.val_fraction)
    kept = report.kept[: data.limit] if data.limit is not None else report.kept
    if data.on_bad_record == "stop" and report.problems:
        listed = "; ".join(str(p) for p in report.problems[:5])
        raise DataError(f"{data.source} ({split}): {report.skipped} of {report.total} records are invalid: {listed}")
    return replace(report, kept=kept)


# ---------------------------------------------------------------- MemeCap


def _read_json(path: Path) -> Any:
    text = read_utf8(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None


def _memecap_files(source: Path, split: str) -> tuple[Path, bool]:
    """The JSON file holding `split`, and whether the 10% validation split applies to it."""
    if source.is_file():
        return source, split != "test"
    if not source.is_dir():
        raise DataError(f"MemeCap source {source} does not exist")
    name = TEST if split == "test" else TRAINVAL
    if not (source / name).is_file():
        raise DataError(f"MemeCap folder {source} has no {name} (split {split!r})")
    return source / name, split != "test"


def _image_path(images: Path, fname: str) -> Path | None:
    # The download is a zip whose top folder seems to be `memes/` (HEMM reads memes/<img_fname>).
    for candidate in (images / fname, images / "memes" / fname):
        if candidate.is_file():
            return candidate
    return None


def memecap_example(record: Any, index: int, images: Path, where: str) -> Example | Problem:
    """One MemeCap record as an Example, or the Problem naming its bad field."""
    if not isinstance(record, dict):
        return Problem(f"#{index}", "record", f"{where}: record {index} is {type(record).__name__}, not an object",
                       "record not an object")
    rid = record.get("post_id")
    if not isinstance(rid, str) or not rid.strip():
        return Problem(f"#{index}", "post_id", f"{where}: record {index} has no post_id", "post_id missing")
    for name in ("title", "img_fname"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            return Problem(rid, name, f"{name} is missing or not text", f"{name} missing")
    captions = record.get("meme_captions")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) and c.strip() for c in captions):
        return Problem(rid, "meme_captions", "needs a non-empty list of non-empty strings", "meme_captions bad")
    image = _image_path(images, record["img_fname"])
    if image is None:
        return Problem(rid, "image", f"image file {record['img_fname']} not found in {images}", "image missing")
    meta = {k: record.get(k) for k in ("img_captions", "metaphors", "url", "category", "img_fname")}
    return Example(rid, str(image), record["title"].strip(), tuple(c.strip() for c in captions), meta)


def load_memecap(source: str | Path, *, split: str, images: str | Path | None, seed: int = 0,
                 val_fraction: float = 0.1) -> ValidationReport:
    """One MemeCap split: `test` from memes-test.json, `train`/`validation` a seeded split of trainval."""
    source = Path(source)
    path, split_it = _memecap_files(source, split)
    if images is None:
        raise ConfigError("MemeCap images are not in the repo: pass --data-images FOLDER (the unzipped "
                          "download holding the img_fname files)")
    images = Path(images)
    if not images.is_dir():
        raise DataError(f"image folder {images} does not exist")
    records = _read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    problems: list[Problem] = []
    examples: list[Example] = []
    for index, record in enumerate(records):
        item = memecap_example(record, index, images, path.name)
        (problems if isinstance(item, Problem) else examples).append(item)
    checked = validate(examples, policy="skip")
    problems += checked.problems
    parts = {split: checked.kept}
    if split_it:
        parts = split_examples(checked.kept, sizes={"train": 1 - val_fraction, "validation": val_fraction}, seed=seed)
    meta = {"split": split, "split_seed": seed if split_it else None}
    kept = [replace(ex, meta={**ex.meta, **meta}) for ex in parts[split]]
    return ValidationReport(kept=kept, problems=problems, total=len(records),
                            held_out={name: len(part) for name, part in parts.items() if name != split})


# ---------------------------------------------------------------- MemeCraft


def split_caption(caption: str) -> tuple[str, str]:
    """(top, bottom) text: split on " <-> " first, then " - "; no separator: all on top."""
    for sep in (" <-> ", " - "):
        if sep in caption:
            top, bottom = caption.split(sep, 1)
            return top.strip(), bottom.strip()
    return caption.strip(), ""


def _caption_of(value: Any) -> str | None:
    """The caption of one value shape: [caption, raw output], [caption], or a bare string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None


def _memecraft_meta(path: Path) -> dict[str, str]:
    match = _MEMECRAFT_NAME.match(path.stem)
    if match is None:  # the baseline files (dank_learning, online_random)
        return {"generator": path.parent.name.removeprefix("imgflip_"), "kind": "baseline"}
    return {"generator": path.parent.name.removeprefix("imgflip_"), "kind": "generated", **match.groupdict()}


def _memecraft_image(path: Path, name: str, meta: dict[str, str], images: Path | None) -> Path:
    """Where upstream's overlay script saved this caption's image (relative to its caption file)."""
    base = path.parent if images is None else images / path.parent.relative_to(path.parent.parent.parent)
    stem = name.replace("/", "") + ".jpg"
    if meta["kind"] == "baseline":
        return base / "memes" / stem  # baseline_memes/*/memes/ (naming inside unconfirmed)
    return base / f"{meta['context'].replace(' ', '_')}_{meta['cot']}" / stem


def load_memecraft(source: str | Path, *, images: str | Path | None = None) -> ValidationReport:
    """Every caption in a MemeCraft caption file or folder; Hateful/Error and missing images are counted skips."""
    source = Path(source)
    files = sorted(source.rglob("*_caption.json")) if source.is_dir() else [source]
    if not files or not files[0].is_file():
        raise DataError(f"MemeCraft source {source}: no *_caption.json file")
    problems: list[Problem] = []
    examples: list[Example] = []
    total = 0
    for path in files:
        data = _read_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object keyed by template name, got {type(data).__name__}")
        meta = _memecraft_meta(path)
        for name, value in data.items():
            total += 1
            rid = f"{path.stem}:{name}"
            caption = _caption_of(value)
            if caption is None:
                problems.append(Problem(rid, "caption", f"value is {type(value).__name__}, not a caption "
                                        "list or string", "caption bad"))
                continue
            if caption.strip() in FILTERED:
                problems.append(Problem(rid, "caption", f"marked {caption.strip()!r} upstream",
                                        f"filtered {caption.strip()}"))
                continue
            image = _memecraft_image(path, name, meta, Path(images) if images else None)
            if not image.is_file():
                problems.append(Problem(rid, "image", f"image {image} not found", "image missing"))
                continue
            top, bottom = split_caption(caption)
            examples.append(Example(rid, str(image), name, (caption.strip(),),
                                    {**meta, "template": name, "top": top, "bottom": bottom}))
    checked = validate(examples, policy="skip")
    return ValidationReport(kept=checked.kept, problems=problems + checked.problems, total=total)
