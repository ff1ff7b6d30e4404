"""`detect train|val|predict`: Ultralytics YOLOv8, offline, with mAP50 and mAP50-95 in core's report.

Ultralytics reaches for the network in several places; each is switched off or satisfied
locally before it is first imported (`offline_ultralytics`):
- settings file and its `sync`/integrations: YOLO_CONFIG_DIR in nmm's cache, all set off;
- the online probe behind hub/asset downloads: YOLO_OFFLINE=1 (its `is_online()` then
  returns False without a DNS lookup);
- pip auto-install of missing requirements: YOLO_AUTOINSTALL=0;
- fonts for plots: `plots=False`; AMP's check downloads weights: `amp=False` off CUDA;
- weights: a `.yaml` builds the model from its architecture file; a `.pt` must exist locally.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from nmm_core.errors import ConfigError, DataError
from nmm_core.records import Example, Problem, ValidationReport, validate
from nmm_core.runs import RunDir, atomic_write_bytes, atomic_write_json, atomic_write_text

_OFF = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb", "vscode_msg",
        "openvino_msg")


def offline_ultralytics():
    """Import ultralytics with every network path off; returns the module."""
    from nmm_core.files import cache_root

    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_root() / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_VERBOSE", "0")
    import ultralytics
    from PIL import Image
    from ultralytics.utils import patches

    # Its Image.open patch meets an unreadable image by trying to install pi-heif, then raises
    # ModuleNotFoundError for the image instead of PIL's error; we read no HEIF, so undo it.
    Image.open = getattr(patches, "_image_open", Image.open)
    _local_fonts()
    root = Path(os.environ["YOLO_CONFIG_DIR"])
    wanted = {k: False for k in _OFF if k in ultralytics.settings}
    wanted.update(datasets_dir=str(root / "datasets"), weights_dir=str(root / "weights"), runs_dir=str(root / "runs"))
    if any(ultralytics.settings.get(k) != v for k, v in wanted.items()):
        ultralytics.settings.update(wanted)
    return ultralytics


def _local_fonts() -> None:
    """Satisfy `check_font` (run by every dataset check, plots or not) with matplotlib's DejaVu Sans.

    Ultralytics looks for Arial.ttf in its config folder and downloads it when missing; plots
    are off here, so any TrueType font under that name serves.
    """
    import matplotlib
    from ultralytics.utils import USER_CONFIG_DIR

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (USER_CONFIG_DIR / name).exists():
            atomic_write_bytes(USER_CONFIG_DIR / name, dejavu.read_bytes())


@dataclass
class DetectSettings:
    """What every detector command shares."""

    model: str = field(default="yolov8n.yaml", metadata={
        "help": "architecture .yaml (from scratch) or local .pt weights"})
    imgsz: int = field(default=128, metadata={"help": "input size (a multiple of 32)"})
    device: str = field(default="cpu", metadata={"help": "cpu | 0 (CUDA index)"})
    batch: int = 16

    def __post_init__(self) -> None:
        if self.imgsz < 32 or self.imgsz % 32:
            raise ConfigError(f"--detector-imgsz must be a positive multiple of 32 (YOLOv8's stride), "
                              f"got {self.imgsz}")


@dataclass
class DetectValConfig:
    """`detect val`: mAP50 and mAP50-95 of given weights on a data.yaml's val split."""

    data: str = field(default="", metadata={"help": "data.yaml (default: the synthetic brain-MRI set)"})
    detector: DetectSettings = field(default_factory=DetectSettings)
    output_dir: str = "runs"


@dataclass
class DetectTrainConfig(DetectValConfig):
    """`detect train`: YOLOv8 training + validation into a run folder."""

    epochs: int = 30
    lr0: float = field(default=0.002, metadata={"help": "initial learning rate (AdamW)"})
    mosaic: float = field(default=0.0, metadata={"help": "mosaic augmentation probability"})
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if not self.lr0 > 0:
            raise ConfigError(f"--lr0 must be positive, got {self.lr0}")
        if not 0 <= self.mosaic <= 1:
            raise ConfigError(f"--mosaic is a probability in [0, 1], got {self.mosaic}")


@dataclass
class DetectPredictConfig:
    """`detect predict`: boxes for an image or a folder of images, as JSON."""

    positional: ClassVar = {"source": ("IMAGE", "image file or folder")}  # `--source` stays its alias
    source: str = field(default="", metadata={"help": "image file or folder"})
    detector: DetectSettings = field(default_factory=DetectSettings)
    conf: float = field(default=0.25, metadata={"help": "confidence threshold"})
    output_dir: str = "runs"


def _check_model(model: str, *, trained: str = "") -> None:
    """An architecture .yaml or a local .pt (the only kind `trained`, a command's name, accepts)."""
    if model.endswith(".pt") and not Path(model).is_file():
        raise ConfigError(f"weights {model!r} not found locally (nothing is downloaded); give a local .pt "
                          "or an architecture such as yolov8n.yaml to train from scratch")
    if not model.endswith((".pt", ".yaml", ".yml")):
        raise ConfigError(f"--detector-model {model!r}: expected an architecture .yaml or a .pt file")
    if trained and not model.endswith(".pt"):
        raise ConfigError(f"{trained} needs trained detector weights: --detector-model path/to/best.pt")


def resolve_data_yaml(data: str) -> Path:
    """The given data.yaml, or the synthetic set (built once in nmm's cache) when none is given."""
    if data:
        path = Path(data)
        if not path.is_file():
            raise DataError(f"data.yaml {data!r} does not exist")
        return path
    from nmm_core.files import cache_root
    from nmm_pathology.mri import SyntheticMriConfig, write_synthetic_mri

    cfg = SyntheticMriConfig()
    root = cache_root() / "data" / f"synthetic-mri-v1-{cfg.train_size}-{cfg.val_size}-{cfg.image_size}-seed{cfg.seed}"
    if not (root / "data.yaml").is_file():
        write_synthetic_mri(SyntheticMriConfig(output=str(root)))
    return root / "data.yaml"


def images_in(folder: Path) -> list[str]:
    """The .png/.jpg/.jpeg/.bmp files of a folder, sorted."""
    return sorted(str(p) for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))


def images_of(data_yaml: Path, split: str = "val") -> list[str]:
    """Image files of one split of a data.yaml, sorted."""
    import yaml

    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    return images_in(Path(data.get("path") or data_yaml.parent) / data[split])


def label_of(image: str) -> Path:
    """An image's YOLO label file: the same stem, `.txt`, under `labels/` where the image is under `images/`."""
    return Path(image.replace("/images/", "/labels/")).with_suffix(".txt")


def check_yolo_dataset(data_yaml: Path, unreadable: list[Problem] | None = None) -> dict[str, int]:
    """Check a YOLO dataset before Ultralytics reads it: bad label lines are one error naming file, line
    and field; label files without an image and images without a label file (negatives) are counted;
    images that do not decode are counted apart (Ultralytics leaves them out) and added to `unreadable`."""
    import yaml

    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    names = data.get("names") if isinstance(data, dict) else None
    if not isinstance(names, (dict, list)) or not names:
        raise DataError(f"{data_yaml} field 'names': expected a non-empty mapping or list of class names")
    counts = Counter({"images without labels": 0, "labels without images": 0})  # + "<split> images|boxes" below
    for split in ("train", "val"):
        if split not in data:
            raise DataError(f"{data_yaml} field '{split}': missing")
        images = images_of(data_yaml, split)
        if not images:
            raise DataError(f"{data_yaml} field '{split}': no images found")
        labels = {label_of(image) for image in images}
        decoded = validate([Example(image, image, "image", ()) for image in images], require_answers=False)
        if decoded.problems:
            counts["images unreadable (left out)"] += decoded.skipped
            if unreadable is not None:
                unreadable.extend(decoded.problems)
        for image in (ex.image for ex in decoded.kept):
            label = label_of(image)
            counts[f"{split} images"] += 1
            if not label.is_file():
                counts["images without labels"] += 1
                continue
            for n, line in enumerate(label.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                where = f"{label} line {n}"
                try:
                    cls, values = int(parts[0]), [float(v) for v in parts[1:]]
                except (ValueError, IndexError):
                    raise DataError(f"{where}: expected 'class cx cy w h' numbers, got {line!r}") from None
                if len(values) != 4:
                    raise DataError(f"{where}: expected 4 box values after the class, got {len(values)}")
                if not 0 <= cls < len(names):
                    raise DataError(f"{where} field 'class': {cls} is not one of the {len(names)} classes")
                cx, cy, w, h = values
                if w <= 0 or h <= 0 or cx - w / 2 < -1e-3 or cy - h / 2 < -1e-3 or cx + w / 2 > 1.001 \
                        or cy + h / 2 > 1.001:
                    raise DataError(f"{where} field 'box': {values} is empty or outside the image (0..1)")
                counts[f"{split} boxes"] += 1
        labels_dir = label_of(images[0]).parent
        if labels_dir.is_dir():
            counts["labels without images"] += sum(1 for p in labels_dir.glob("*.txt") if p not in labels)
    return {**{k: counts[f"train {k}"] + counts[f"val {k}"] for k in ("images", "boxes")}, **counts}  # both splits


def dataset_records(used: int, left_out: list[Problem], run: RunDir, listed: str) -> dict[str, Any]:
    """Core's record counts for `used` images; the `left_out` ones are listed in the run's file `listed`."""
    if left_out:
        ValidationReport([], left_out, len(left_out)).write_problems(run.file(listed))
    return {"used": used, "total": used + len(left_out), "skipped": len(left_out),
            "listed_in": listed if left_out else None}


@contextmanager
def _checked_run(cfg: DetectTrainConfig | DetectValConfig, command: str,
                 split: str) -> Iterator[tuple[RunDir, Path, Any, dict]]:
    """The model and the data set checked (its counts printed), ultralytics loaded offline and a run folder
    with config.yaml and dataset-check.json: yields (run, data.yaml, ultralytics, core's record counts of
    `split`, the images the command trains on or scores)."""
    from nmm_core.config import dump_yaml

    _check_model(cfg.detector.model)
    data = resolve_data_yaml(cfg.data)
    ul = offline_ultralytics()
    unreadable: list[Problem] = []
    checked = check_yolo_dataset(data, unreadable)
    print(f"dataset (train and val): {', '.join(f'{v} {k}' for k, v in checked.items())}")
    for problem in unreadable:
        print(f"  left out: {problem}", file=sys.stderr)
    with RunDir.create(cfg.output_dir, command, Path(cfg.detector.model).stem) as run:
        dump_yaml(cfg, run.file("config.yaml"))
        atomic_write_json(run.file("dataset-check.json"), checked)
        in_split = set(images_of(data, split))
        left_out = [problem for problem in unreadable if problem.id in in_split]
        yield run, data, ul, dataset_records(checked[f"{split} images"], left_out, run, "problems-dataset.jsonl")


def _run_kwargs(settings: DetectSettings, run: RunDir) -> dict[str, Any]:
    return dict(imgsz=settings.imgsz, device=settings.device, batch=settings.batch, workers=0, plots=False,
                # absolute: ultralytics puts a relative project under its own runs folder
                amp=settings.device != "cpu", project=str(run.path.resolve()), name="ultralytics", exist_ok=True,
                verbose=False)


def _validate(run: RunDir, settings: DetectSettings, model: Any, data: Path, title: str, context: dict[str, Any],
              records: dict[str, Any]) -> dict[str, float]:
    """Validate on the val split into core's report, printed too: mAP50, mAP50-95, precision and recall."""
    from nmm_core.evaluate import EvalResult
    from nmm_core.report import print_table, write_comparison

    metrics = model.val(data=str(data), split="val", **_run_kwargs(settings, run))
    box = metrics.box  # Ultralytics' DetMetrics
    scores = {"mAP50": float(box.map50), "mAP50-95": float(box.map), "precision": float(box.mp),
              "recall": float(box.mr)}
    result = EvalResult("yolov8", scores, sum(metrics.speed.values()) / 1000.0, [{"image": p} for p in images_of(data)])
    write_comparison([result], run.path, title=title, primary="mAP50", context=context, records=records)
    print_table([result], title=title)  # the scores on the terminal too, as every eval prints them
    return scores


def _final_paths_in(folder: Path, run: RunDir) -> None:
    """Ultralytics' args.yaml and checkpoints name the run folder it wrote to: point them at the completed one."""
    import torch

    before, after = str(run.path.resolve()), str(run.final_path.resolve())
    for path in folder.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if before in text:
            atomic_write_text(path, text.replace(before, after))
    for path in (folder / "weights").glob("*.pt"):
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # our own training's file
        args = checkpoint.get("train_args") if isinstance(checkpoint, dict) else None
        if isinstance(args, dict) and any(isinstance(v, str) and before in v for v in args.values()):
            checkpoint["train_args"] = {k: v.replace(before, after) if isinstance(v, str) else v
                                        for k, v in args.items()}
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            atomic_write_bytes(path, buffer.getvalue())


def detect_train(cfg: DetectTrainConfig) -> Path:
    """Train from the architecture (or local weights), validate, report; returns the run folder."""
    with _checked_run(cfg, "detect-train", "train") as (run, data, ul, records):
        model = ul.YOLO(cfg.detector.model)
        t0 = time.perf_counter()
        model.train(data=str(data), epochs=cfg.epochs, lr0=cfg.lr0, optimizer="AdamW", mosaic=cfg.mosaic,
                    warmup_epochs=min(3.0, cfg.epochs / 10), seed=cfg.seed, deterministic=True, patience=0,
                    **_run_kwargs(cfg.detector, run))
        train_seconds = time.perf_counter() - t0
        best = ul.YOLO(str(run.path / "ultralytics" / "weights" / "best.pt"))
        scores = _validate(run, cfg.detector, best, data, f"YOLOv8 ({cfg.detector.model}) on {data}",
                           {"data": str(data), "epochs": cfg.epochs, "imgsz": cfg.detector.imgsz,
                            "train_seconds": round(train_seconds, 1),
                            # where the weights are once the run is complete (the folder loses `.incomplete`)
                            "weights": str(run.final_path / "ultralytics" / "weights" / "best.pt")}, records)
        atomic_write_json(run.file("detector.json"), {"weights": "ultralytics/weights/best.pt", **scores})
        _final_paths_in(run.path / "ultralytics", run)
        return run.complete(**scores)


def detect_val(cfg: DetectValConfig) -> Path:
    """Validate local weights on the data's val split; report with mAP50 and mAP50-95.

    An architecture .yaml is validated with its random initial weights: the untrained (0-epoch)
    baseline a trained detector is measured against.
    """
    with _checked_run(cfg, "detect-val", "val") as (run, data, ul, records):
        model, context = ul.YOLO(cfg.detector.model), {"data": str(data), "weights": cfg.detector.model}
        scores = _validate(run, cfg.detector, model, data, f"YOLOv8 validation: {cfg.detector.model}", context, records)
        return run.complete(**scores)


def predict_boxes(weights: str, images: list[str], *, conf: float, settings: DetectSettings) -> tuple[list, float]:
    """Boxes per image ([{xyxy, conf, class, name}]) and the mean seconds per image."""
    ul = offline_ultralytics()
    model = ul.YOLO(weights)
    out, seconds = [], 0.0
    for path in images:
        t0 = time.perf_counter()
        [result] = model.predict(path, conf=conf, imgsz=settings.imgsz, device=settings.device, verbose=False)
        seconds += time.perf_counter() - t0
        names = result.names
        out.append([{"xyxy": [round(float(v), 2) for v in box.xyxy[0].tolist()], "conf": round(float(box.conf), 4),
                     "class": int(box.cls), "name": names[int(box.cls)]} for box in result.boxes])
    return out, seconds / max(1, len(images))


def detect_predict(cfg: DetectPredictConfig) -> Path:
    """Boxes for every image of `source` into predictions.json of a run folder."""
    _check_model(cfg.detector.model, trained="detect predict")
    source = Path(cfg.source)
    if not cfg.source or not source.exists():
        raise DataError(f"IMAGE (--source) {cfg.source!r}: no such image file or folder")
    images = images_in(source) if source.is_dir() else [str(source)]
    if not images:
        raise DataError(f"{source}: no .png/.jpg/.bmp images")
    with RunDir.create(cfg.output_dir, "detect-predict", Path(cfg.detector.model).stem) as run:
        boxes, per_image = predict_boxes(cfg.detector.model, images, conf=cfg.conf, settings=cfg.detector)
        atomic_write_json(run.file("predictions.json"), {
            "weights": cfg.detector.model, "conf": cfg.conf, "seconds_per_image": per_image,
            "images": [{"image": p, "boxes": b} for p, b in zip(images, boxes, strict=True)]})
        path = run.complete(images=len(images), boxes=sum(map(len, boxes)))
        print(f"{sum(map(len, boxes))} boxes in {len(images)} images -> {path / 'predictions.json'}")
        return path
