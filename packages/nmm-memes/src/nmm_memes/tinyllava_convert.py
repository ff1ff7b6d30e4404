"""Convert a TinyLLaVA_Factory checkpoint (TinyLLaVA-Phi-2-SigLIP-3.1B) to our Llava form.

TinyLLaVA_Factory names weights after its modules (`modeling_tinyllava.py`): `language_model.`
+ Phi's keys, `vision_tower._vision_tower.` + SigLIP's keys in the transformers-4 layout
(`vision_model.` level), `connector._connector.{0,2}.` for Linear-GELU-Linear. Our form is
core's `TinyLlavaForConditionalGeneration` (transformers' Llava, plus Phi-2's head bias).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nmm_core.errors import DataError
from nmm_core.weights import read_weights

# (published prefix, our prefix), most specific first.
_PREFIXES = (
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("vision_tower._vision_tower.vision_model.", "model.vision_tower."),
    ("connector._connector.0.", "model.multi_modal_projector.linear_1."),
    ("connector._connector.2.", "model.multi_modal_projector.linear_2."),
)


def map_key(key: str) -> str:
    """Our name for one published weight name; an unknown name is an error naming it."""
    for old, new in _PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    raise DataError(f"weight '{key}': not a TinyLLaVA_Factory (SigLIP + MLP + Phi) weight name")


def convert_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Rename every weight; two published names mapping to one of ours is an error."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = map_key(key)
        if new in out:
            raise DataError(f"weight '{key}': maps onto '{new}' twice")
        out[new] = value
    return out


def convert_checkpoint(src: str | Path, out: str | Path, *, image_token_id: int):
    """Convert `src` (config.json + weights) into a TinyLlava model saved to `out`; the model."""
    from nmm_core.families.tinyllava import llava_config
    from nmm_core.families.tinyllava_model import TinyLlavaForConditionalGeneration
    from nmm_core.twins import write_marker

    src, out = Path(src), Path(out)
    config_file = src / "config.json"
    if not config_file.exists():
        raise DataError(f"{src}: no config.json (expected a TinyLLaVA_Factory checkpoint)")
    config = llava_config(json.loads(config_file.read_text()), image_token_id=image_token_id)
    state = convert_state_dict(read_weights(src))
    model = TinyLlavaForConditionalGeneration(config)
    # strict: a weight missing on either side means the mapping (or the file) is wrong
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("model.vision_tower.head.")]
    if missing or unexpected:
        raise DataError(f"{src}: converted weights do not fit: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    model.save_pretrained(out)
    write_marker(out, family="tinyllava", converted_from=str(src))
    return model
