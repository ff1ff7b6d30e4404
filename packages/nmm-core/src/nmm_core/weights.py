"""Reading a published checkpoint's weight files, for the converters into our model classes."""

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
