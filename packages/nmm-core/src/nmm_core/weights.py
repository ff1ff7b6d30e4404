"""Reading a published checkpoint's weight files, for the converters into our model classes."""

from __future__ import annotations

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
