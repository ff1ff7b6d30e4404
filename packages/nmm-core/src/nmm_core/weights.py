"""Reading a published checkpoint's weight files, for the converters into our model classes, and
loading converted or saved tensors into a model exactly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nmm_core.errors import DataError


def read_weights(folder: str | Path) -> dict[str, Any]:
    """All tensors of a folder's `*.safetensors` shards (else its `pytorch_model*.bin` shards)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    state: dict[str, Any] = {}
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        for shard in shards:
            state.update(load_file(shard))
        return state
    import torch

    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise DataError(f"{folder}: no *.safetensors or pytorch_model*.bin weights")
    for shard in bins:
        state.update(torch.load(shard, map_location="cpu", weights_only=True))
    return state


def rename(key: str, prefixes: Sequence[tuple[str, str]], expected: str) -> str:
    """Our name for a published weight name, by the first (published, ours) pair whose name it is or,
    for a pair ending in ".", starts with; an unknown name is an error naming it and what was `expected`."""
    for old, new in prefixes:
        if key == old or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    raise DataError(f"weight '{key}': not {expected}")


def load_exactly(model, state: dict[str, Any], expected: dict[str, Any], where: str, what: str = "weights") -> None:
    """Copy `state` into `model` (non-strict: it names only `expected`'s tensors, part of the model):
    exactly `expected`'s names with their shapes, else a DataError naming the first misfits."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or extra or shapes:
        raise DataError(f"{where}: {what} do not fit: missing {missing[:4]}, unexpected {extra[:4]}, "
                        f"shapes {shapes[:4]}")
    model.load_state_dict(state, strict=False)
