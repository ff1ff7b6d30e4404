"""Tiny twins on disk: built once per version into a cache folder, then loaded like any model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nmm_core.families import MARKER, get_family
from nmm_core.files import cached_folder
from nmm_core.presets import ModelPreset


def write_marker(folder: Path, *, family: str, **extra) -> None:
    """Record the family (and provenance) of a saved model folder."""
    (folder / MARKER).write_text(json.dumps({"family": family, **extra}, indent=2) + "\n")


def read_marker(folder: Path) -> dict:
    """The marker written by `write_marker`, or {} for a folder saved elsewhere."""
    path = Path(folder) / MARKER
    return json.loads(path.read_text()) if path.exists() else {}


def build_twin(family: str, out_dir: str | Path, *, seed: int = 0, **kwargs) -> Path:
    """Build the tiny twin of `family` into `out_dir` (model, processor, marker)."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Building seeds torch; the caller's random state must not depend on a cache miss.
    with torch.random.fork_rng(devices=[]):
        get_family(family).builder().build_twin(out, seed=seed, **kwargs)
    write_marker(out, family=family, tiny=True, seed=seed)
    return out


def twin_path(preset: ModelPreset) -> Path:
    """The folder holding `preset`'s twin, built on first use (atomically: tmp dir + rename)."""
    import transformers

    from nmm_core import __version__

    # The builder's own source is in the key: editing a twin never serves a stale cached one.
    builder = Path(get_family(preset.family).builder().__file__).read_bytes()
    digest = hashlib.sha1(builder + repr(sorted(preset.twin_kwargs.items())).encode()).hexdigest()[:10]
    key = f"{preset.name}-core{__version__}-tf{transformers.__version__}-{digest}"
    return cached_folder("twins", key, lambda tmp: build_twin(preset.family, tmp, **preset.twin_kwargs),
                         marker=MARKER)


def tiny_sd_path(*, cross_attention_dim: int = 32) -> Path:
    """A tiny Stable Diffusion twin in diffusers layout, built once into the twin cache (its key:
    diffusers' version and the builder's source, so a changed builder makes a new twin)."""
    import diffusers

    from nmm_core import diffusion

    digest = hashlib.sha1(Path(diffusion.__file__).read_bytes()).hexdigest()[:10]
    key = f"tiny-sd-{cross_attention_dim}-diffusers{diffusers.__version__}-{digest}"
    return cached_folder("twins", key, lambda tmp: diffusion.build_tiny_sd(cross_attention_dim=cross_attention_dim)
                         .save(tmp), marker="model_index.json")
