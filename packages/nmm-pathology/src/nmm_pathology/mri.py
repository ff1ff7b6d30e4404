"""A synthetic brain-MRI-like detection set in Ultralytics YOLO format (seeded).

Each image is a noisy head-shaped ellipse (dark background, a brighter skull rim, grey brain
with smooth texture); most hold one or two bright lesions of varied size and contrast with
soft edges, some hold none (negatives matter for presence scores). The layout is YOLO's:
`images/<split>/*.png`, `labels/<split>/*.txt` (`0 cx cy w h`, normalised), `data.yaml`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from nmm_core.errors import ConfigError
from nmm_core.records import png_bytes
from nmm_core.runs import atomic_write_bytes, atomic_write_text

CLASS_NAMES = ("tumour",)


@dataclass
class SyntheticMriConfig:
    """`detect synth`: write the synthetic set."""

    output: str = field(default="synthetic-mri", metadata={"help": "folder to write (YOLO layout)"})
    train_size: int = field(default=64, metadata={"help": "training images"})
    val_size: int = field(default=16, metadata={"help": "validation images"})
    image_size: int = field(default=128, metadata={"help": "image side in pixels (a multiple of 32)"})
    negative_share: float = field(default=0.25, metadata={"help": "share of images without a lesion"})
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_size < 1 or self.val_size < 1:
            raise ConfigError("train_size and val_size must be at least 1")
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"image_size must be a multiple of 32 (YOLO strides), got {self.image_size}")
        if not 0 <= self.negative_share < 1:
            raise ConfigError(f"negative_share must be in [0, 1), got {self.negative_share}")


def make_mri(rng: random.Random, size: int, n_lesions: int):
    """One image (uint8 array, size x size) and its lesions' YOLO boxes (cx, cy, w, h), normalised and clipped."""
    import numpy as np

    nrng = np.random.default_rng(rng.randrange(2**32))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)
    ax, ay = size * rng.uniform(0.36, 0.42), size * rng.uniform(0.42, 0.47)
    r = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
    image = np.full((size, size), 12.0, np.float32)
    image[r <= 1.0] = 165.0  # skull rim
    brain = r <= 0.82
    # Smooth texture: low-resolution noise upsampled, like grey/white matter variation.
    from PIL import Image

    coarse = nrng.normal(0, 14, (size // 8, size // 8)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))
    image[brain] = 85.0 + texture[brain]
    boxes = []
    for _ in range(n_lesions):
        lr = rng.uniform(0.05, 0.14) * size
        # semi-axes (pixels) and brightness above the brain
        rx, ry, contrast = lr * rng.uniform(0.8, 1.2), lr * rng.uniform(0.8, 1.2), rng.uniform(45, 120)
        # Place the centre well inside the brain so the whole lesion is brain.
        for _ in range(100):
            px, py = rng.uniform(cx - ax * 0.6, cx + ax * 0.6), rng.uniform(cy - ay * 0.6, cy + ay * 0.6)
            if ((px - cx) / ax) ** 2 + ((py - cy) / ay) ** 2 < 0.35:
                break
        d = ((xx - px) / rx) ** 2 + ((yy - py) / ry) ** 2
        image += contrast * np.clip(1.6 * (1.0 - d), 0.0, 1.0)  # soft edge, flat core
        x0, x1, y0, y1 = max(0.0, px - rx), min(float(size), px + rx), max(0.0, py - ry), min(float(size), py + ry)
        boxes.append(((x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    image += nrng.normal(0, 7, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), boxes


def write_data_yaml(root: Path, splits: dict[str, str], names: list[str] | tuple[str, ...]) -> Path:
    """Ultralytics' data.yaml: absolute `path`, split folders relative to it, `names` by index."""
    import yaml

    data = {"path": str(root.resolve()), **splits, "names": dict(enumerate(names))}
    atomic_write_text(root / "data.yaml", yaml.safe_dump(data, sort_keys=False))
    return root / "data.yaml"


def write_synthetic_mri(cfg: SyntheticMriConfig) -> Path:
    """Write the set to `cfg.output`; returns the data.yaml path. Same seed, same files."""
    from PIL import Image
    from tqdm.auto import tqdm

    root = Path(cfg.output)
    rng = random.Random(cfg.seed)
    manifest = []
    for split, n in (("train", cfg.train_size), ("val", cfg.val_size)):
        for i in tqdm(range(n), desc=f"synthetic MRI {split}", unit="img", leave=False):
            count = 0 if rng.random() < cfg.negative_share else rng.choice((1, 1, 2))
            image, boxes = make_mri(rng, cfg.image_size, count)
            stem = f"mri-{split}-{i:04d}"
            atomic_write_bytes(root / "images" / split / f"{stem}.png", png_bytes(Image.fromarray(image, mode="L")))
            lines = "".join("0 " + " ".join(f"{v:.6f}" for v in box) + "\n" for box in boxes)
            atomic_write_text(root / "labels" / split / f"{stem}.txt", lines)
            manifest.append({"image": f"images/{split}/{stem}.png", "split": split, "lesions": len(boxes)})
    atomic_write_text(root / "manifest.jsonl", "".join(json.dumps(m) + "\n" for m in manifest))
    return write_data_yaml(root, {"train": "images/train", "val": "images/val"}, CLASS_NAMES)
