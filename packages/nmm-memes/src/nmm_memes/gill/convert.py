"""GILL's published parameters (`checkpoints/gill_opt/pretrained_ckpt.pth.tar`) -> our GILL parts.

The file (github kohjingyu/gill) is a `torch.save`d dict whose `state_dict` holds only what GILL
trained (its `main.py` drops every `.lm` and `.visual_model` key; `scripts/prune_model_ckpt.py`
drops the optimizer and keeps only the last `num_tokens` rows of the embedding). Keys are
GILL's module paths under its `GILL.model` (a `GILLModel`), sometimes with DDP's `module.`:

| published name                                   | ours                       |
|--------------------------------------------------|----------------------------|
| model.input_embeddings.weight (8, 4096)          | img_tokens                 |
| model.visual_embeddings.{weight,bias}            | visual_embeddings.*        |
| model.visual_fc.{weight,bias}                    | visual_fc.*                |
| model.logit_scale                                | logit_scale                |
| model.ret_text_hidden_fcs.0.model.{weight,bias}  | ret_fc.*                   |
| model.gen_text_hidden_fcs.0.fc.*                 | mapper.proj_in.*           |
| model.gen_text_hidden_fcs.0.tfm.*                | mapper.transformer.*       |
| model.gen_text_hidden_fcs.0.model.*              | mapper.proj_out.*          |
| model.gen_text_hidden_fcs.0.query_embs           | mapper.queries             |

`tfm` is a plain `nn.Transformer`, so its inner names are the same on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nmm_core.errors import DataError
from nmm_core.weights import rename

CHECKPOINT_FILE = "pretrained_ckpt.pth.tar"
_PREFIXES = (
    ("model.input_embeddings.weight", "img_tokens"),
    ("model.visual_embeddings.", "visual_embeddings."),
    ("model.visual_fc.", "visual_fc."),
    ("model.logit_scale", "logit_scale"),
    ("model.ret_text_hidden_fcs.0.model.", "ret_fc."),
    ("model.gen_text_hidden_fcs.0.fc.", "mapper.proj_in."),
    ("model.gen_text_hidden_fcs.0.tfm.", "mapper.transformer."),
    ("model.gen_text_hidden_fcs.0.model.", "mapper.proj_out."),
    ("model.gen_text_hidden_fcs.0.query_embs", "mapper.queries"),
)
_FROZEN = re.compile(r"(^|\.)(lm|visual_model)\.")  # frozen OPT / CLIP weights, if a file kept them


def map_key(key: str) -> str | None:
    """Our name for one published name; None for a frozen-part weight; unknown names fail."""
    key = key.removeprefix("module.")
    if _FROZEN.search(key):
        return None
    return rename(key, _PREFIXES, "a GILL (gill_opt) parameter name")


def convert_state_dict(state: Mapping[str, Any], *, img_tokens: int) -> dict[str, Any]:
    """Rename every trained weight; the embedding keeps its last `img_tokens` rows (the [IMG] rows)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = map_key(key)
        if new is None:
            continue
        if new in out:
            if not bool((out[new] == value).all()):
                raise DataError(f"weight '{key}': maps onto '{new}' twice with different values")
            continue
        out[new] = value[-img_tokens:] if new == "img_tokens" else value
    return out


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The `state_dict` of GILL's checkpoint file (tensors only; no code is unpickled)."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file (GILL's checkpoint is {CHECKPOINT_FILE})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code in it, or not a torch file at all
        raise DataError(f"{path}: not a tensors-only torch checkpoint ({type(exc).__name__})") from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a dict with 'state_dict'")
    return state


def sizes_from(state: Mapping[str, Any], lm_dim: int) -> dict[str, int]:
    """GILL's module sizes read off converted weights (the mapper's head count is not in shapes)."""
    layers = {int(m.group(1)) for k in state if (m := re.match(r"mapper\.transformer\.encoder\.layers\.(\d+)\.", k))}
    return {
        "visual_tokens": state["visual_embeddings.weight"].shape[0] // lm_dim,
        "img_tokens": state["img_tokens"].shape[0],
        "ret_dim": state["ret_fc.weight"].shape[0],
        "mapper_dim": state["mapper.proj_in.weight"].shape[0],
        "mapper_layers": len(layers),
        "sd_tokens": state["mapper.queries"].shape[1],
        "sd_dim": state["mapper.proj_out.weight"].shape[0],
    }


def load_checkpoint(path: str | Path, *, img_tokens: int) -> dict[str, Any]:
    """Read and convert GILL's published checkpoint into our part names."""
    state = convert_state_dict(read_checkpoint(path), img_tokens=img_tokens)
    for needed in ("img_tokens", "visual_embeddings.weight", "ret_fc.weight", "mapper.proj_in.weight",
                   "mapper.queries", "mapper.proj_out.weight"):
        if needed not in state:
            raise DataError(f"{path}: no weight maps onto '{needed}' (a GILL gill_opt checkpoint has it)")
    return state
