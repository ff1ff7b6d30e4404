"""Inputs every benchmark shares: the model under test and variable-length prompts."""

from __future__ import annotations

import random

from nmm_core.errors import DeviceError
from nmm_core.records import Example
from nmm_core.testing.shapes import make_shapes_dataset

_FILLER = "Look carefully at every part of the picture before you answer the question."


def require_size(size: str) -> None:
    """Full size needs CUDA: on CPU a 2-7B model step takes minutes and measures nothing useful."""
    import torch

    if size == "full" and not torch.cuda.is_available():
        raise DeviceError("--size full builds the real architectures at full size and needs a CUDA "
                          "GPU; on this machine run --size smoke")


def variable_prompts(n: int, *, seed: int = 0) -> list[Example]:
    """Shapes questions with 0-3 filler sentences, so batched prompts need padding."""
    rng = random.Random(seed)
    out = []
    for ex in make_shapes_dataset(n, seed=seed):
        prefix = " ".join([_FILLER] * rng.randint(0, 3))
        out.append(Example(ex.id, ex.image, f"{prefix} {ex.prompt}".strip(), ex.answers, ex.meta))
    return out
