"""`detect convert`: a COCO-JSON detection export (Roboflow style) to Ultralytics YOLO format.

Input (DATASETS.md §7): `<root>/<split>/_annotations.coco.json` beside that split's images,
split names train/valid/test. Output: `images/<split>/`, `labels/<split>/` (`class cx cy w h`,
normalised, 0-based classes remapped from `categories`), `data.yaml` (`valid` -> `val`) and
`convert-report.json` with every count. Bad records are one clear error naming record and
field (a malformed image entry, an unknown category) or a counted skip (a missing image file,
an empty box, a box wholly outside its image); boxes partly outside are clipped and counted.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmm_core.data import read_utf8
from nmm_core.errors import ConfigError, DataError
from nmm_core.runs import atomic_write_json, atomic_write_text
from nmm_pathology.mri import write_data_yaml

ANNOTATIONS = "_annotations.coco.json"
_SPLIT_NAMES = {"train": "train", "valid": "val", "val": "val", "test": "test"}
_PLAIN_MODES = {"RGB", "L"}


@dataclass
class ConvertConfig:
    """`detect convert`: COCO JSON -> YOLO folders."""

    source: str = field(default="", metadata={"help": "export root with train/ valid/ test/ (or one split folder)"})
    output: str = field(default="yolo-data", metadata={"help": "folder to write (YOLO layout)"})
    drop_empty_categories: bool = field(default=True, metadata={
        "help": "drop categories without annotations (Roboflow's parent class)"})


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _image_entries(data: dict, json_path: Path) -> dict[int, dict]:
    images = data.get("images")
    if not isinstance(images, list):
        raise DataError(f"{json_path}: field 'images' must be a list")
    out = {}
    for n, image in enumerate(images):
        where = f"{json_path} image record {image.get('id', n) if isinstance(image, dict) else n}"
        if not isinstance(image, dict):
            raise DataError(f"{where}: expected an object")
        for key in ("id", "file_name", "width", "height"):
            if key not in image:
                raise DataError(f"{where} field '{key}': missing")
        for key in ("width", "height"):
            if _number(image[key], f"{where} field '{key}'") <= 0:
                raise DataError(f"{where} field '{key}': must be positive, got {image[key]!r}")
        out[image["id"]] = image
    return out


def category_map(categories: list[dict], used: set, *, drop_empty: bool) -> tuple[dict[Any, int], list[str]]:
    """COCO category id -> contiguous 0-based class, and the class names, in category-id order."""
    kept = sorted((c for c in categories if not drop_empty or c["id"] in used), key=lambda c: c["id"])
    if not kept:
        raise DataError("no category has annotations: nothing to train a detector on")
    return {c["id"]: i for i, c in enumerate(kept)}, [str(c.get("name", c["id"])) for c in kept]


def yolo_box(bbox: Any, width: float, height: float, where: str) -> tuple[tuple[float, ...] | None, str]:
    """COCO [x, y, w, h] pixels -> normalised (cx, cy, w, h) clipped to the image, and a status.

    Status: "ok", "clipped" (partly outside), "empty" (zero area) or "outside" (no overlap).
    """
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise DataError(f"{where} field 'bbox': expected [x, y, w, h], got {bbox!r}")
    x, y, w, h = (_number(v, f"{where} field 'bbox'") for v in bbox)
    if w <= 0 or h <= 0:
        return None, "empty"
    x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None, "outside"
    status = "clipped" if (x0, y0, x1, y1) != (x, y, x + w, y + h) else "ok"
    box = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
    return box, status


def _copy_image(src: Path, dst: Path, record: str, counts: Counter) -> tuple[int, int]:
    """Copy (or, for 16-bit / palette / alpha images, convert to 8-bit RGB PNG); returns (w, h)."""
    from PIL import Image

    from nmm_core.records import Example, load_image

    with Image.open(src) as im:
        mode, size = im.mode, im.size
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode in _PLAIN_MODES:
        shutil.copyfile(src, dst)
    else:  # core's loader scales 16-bit grey to 8 bits instead of clipping it white
        load_image(Example(record, str(src), "", ()), mode="RGB").save(dst.with_suffix(".png"))
        counts[f"converted from {mode}"] += 1
    return size


def _read_coco(json_path: Path) -> dict[str, Any]:
    """A COCO annotations file as a dict, or a DataError naming the file and where it breaks."""
    try:
        data = json.loads(read_utf8(json_path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{json_path} line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg}); "
                        "is the file cut short?") from None
    if not isinstance(data, dict):
        raise DataError(f"{json_path}: expected a COCO object with images/annotations/categories, "
                        f"got {type(data).__name__}")
    return data


def convert_split(json_path: Path, out: Path, split: str, cmap: dict[Any, int], counts: Counter) -> None:
    """One split's images and label files."""
    data = _read_coco(json_path)
    images = _image_entries(data, json_path)
    labels: dict[Any, list[str]] = {i: [] for i in images}
    for n, ann in enumerate(data.get("annotations") or []):
        where = f"{json_path} annotation {ann.get('id', n) if isinstance(ann, dict) else n}"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: expected an object")
        if ann.get("image_id") not in images:
            counts["annotations without image (skipped)"] += 1
            continue
        if ann.get("category_id") not in cmap:
            raise DataError(f"{where} field 'category_id': {ann.get('category_id')!r} is not a kept category "
                            f"(kept ids: {sorted(cmap)})")
        image = images[ann["image_id"]]
        box, status = yolo_box(ann.get("bbox"), float(image["width"]), float(image["height"]), where)
        counts[f"boxes {status}"] += 1
        if box is not None:
            labels[ann["image_id"]].append(f"{cmap[ann['category_id']]} " + " ".join(f"{v:.6f}" for v in box))
    for image_id, image in images.items():
        src = json_path.parent / image["file_name"]
        record = f"{json_path} image record {image_id}"
        if not src.is_file():
            counts["images missing on disk (skipped)"] += 1
            continue
        dst = out / "images" / split / Path(image["file_name"]).name
        size = _copy_image(src, dst, record, counts)
        if size != (int(image["width"]), int(image["height"])):
            raise DataError(f"{record} fields 'width'/'height': JSON says {image['width']}x{image['height']}, "
                            f"the file is {size[0]}x{size[1]}")
        if not labels[image_id]:
            counts["images without labels (kept as negatives)"] += 1
        stem = Path(image["file_name"]).stem
        atomic_write_text(out / "labels" / split / f"{stem}.txt", "".join(line + "\n" for line in labels[image_id]))
        counts["images"] += 1


def convert_coco(cfg: ConvertConfig) -> Path:
    """Convert every split found under `cfg.source`; returns the data.yaml path."""
    root, out = Path(cfg.source), Path(cfg.output)
    if not cfg.source or not root.is_dir():
        raise ConfigError(f"--source {cfg.source!r} is not a folder (a COCO export with train/ valid/ test/)")
    found = {name: root / name / ANNOTATIONS for name in _SPLIT_NAMES if (root / name / ANNOTATIONS).is_file()}
    if not found and (root / ANNOTATIONS).is_file():
        found = {"train": root / ANNOTATIONS}
    if not found:
        raise DataError(f"{root}: no {ANNOTATIONS} in the folder or in train/ valid/ test/")
    categories, used = {}, set()
    for json_path in found.values():
        data = _read_coco(json_path)
        for c in data.get("categories") or []:
            if not isinstance(c, dict) or "id" not in c:
                raise DataError(f"{json_path} field 'categories': every entry needs an 'id', got {c!r}")
            categories[c["id"]] = c
        used |= {a.get("category_id") for a in data.get("annotations") or [] if isinstance(a, dict)}
    cmap, names = category_map(list(categories.values()), used, drop_empty=cfg.drop_empty_categories)
    counts: Counter = Counter()
    splits = {}
    for name, json_path in found.items():
        split = _SPLIT_NAMES[name]
        convert_split(json_path, out, split, cmap, counts)
        splits[split] = f"images/{split}"
    if "val" not in splits:  # Ultralytics needs a val split; train doubles as it, and the report says so
        splits["val"] = splits["train"]
        counts["val is train (no valid/ split)"] = 1
    yaml_path = write_data_yaml(out, splits, names)
    atomic_write_json(out / "convert-report.json", {
        "source": str(root), "splits": {k: str(v) for k, v in found.items()}, "names": names,
        "category_map": {str(k): v for k, v in cmap.items()}, "counts": dict(sorted(counts.items())),
    })
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"converted {counts['images']} images: {summary}")
    return yaml_path
