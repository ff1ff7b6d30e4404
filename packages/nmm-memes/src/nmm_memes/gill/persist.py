"""GILL's learned parts beside the LoRA adapter: `gill_parts.safetensors` in the adapter folder.

The folder is core's adapter (peft format + `nmm_adapter.json` with the base fingerprint) plus
one safetensors file holding the [IMG] rows, projections and mapper, with the `GillSpec` in its
metadata. The whole folder is written to a temporary name and renamed into place, so an
adapter without its parts never exists.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nmm_core.errors import DataError, PresetError
from nmm_core.weights import load_exactly

PARTS_FILE = "gill_parts.safetensors"
SPEC_KEY = "nmm_gill_spec"
_MUST_MATCH = ("lm_dim", "vision_dim", "sd_dim", "sd_tokens", "first_img")


def save_gill(model, peft_lm, folder: str | Path, *, base_name: str) -> Path:
    """Core's adapter + the GILL parts, built in a temporary folder and renamed to `folder`."""
    from safetensors.torch import save

    from nmm_core.files import build_folder
    from nmm_core.lora import save_adapter

    def build(tmp: Path) -> None:
        save_adapter(peft_lm, tmp, base_name=base_name, family="opt_clip")
        (tmp / PARTS_FILE).write_bytes(save(model.parts_state(), metadata={SPEC_KEY: json.dumps(asdict(model.spec))}))

    return build_folder(folder, build)  # a failed save leaves no half-written folder behind


def read_spec(folder: str | Path) -> Any:
    """The GillSpec stored with a saved adapter; a clear error for a non-GILL adapter."""
    from safetensors import safe_open

    from nmm_memes.gill.model import GillSpec

    path = Path(folder) / PARTS_FILE
    if not path.is_file():
        raise PresetError(f"{folder} is not a GILL adapter (no {PARTS_FILE}); a TinyLLaVA adapter "
                          "goes with a TinyLLaVA model (--model tiny-tinyllava, or a TinyLLaVA checkpoint)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if SPEC_KEY not in meta:
        raise DataError(f"{path}: no '{SPEC_KEY}' metadata (not written by nmm-memes)")
    try:
        return GillSpec(**json.loads(meta[SPEC_KEY]))
    except (TypeError, ValueError) as exc:  # fields of another version, or not JSON
        raise DataError(f"{path}: metadata '{SPEC_KEY}' is not a GILL spec ({exc})") from None


def check_spec(saved, current, where: str) -> None:
    """The saved parts must fit the loaded LM, CLIP and SD (and the [IMG] ids)."""
    wrong = [f"{k} {getattr(saved, k)} vs {getattr(current, k)}" for k in _MUST_MATCH
             if getattr(saved, k) != getattr(current, k)]
    if wrong:
        raise PresetError(f"{where} was trained with other GILL parts than the ones loaded ({'; '.join(wrong)})")


def load_parts_into(model, folder: str | Path) -> None:
    """Load `gill_parts.safetensors` into `model` (every part must be there, with its shape)."""
    from safetensors.torch import load_file

    load_exactly(model, load_file(str(Path(folder) / PARTS_FILE)), model.parts_state(), str(folder), "GILL parts")


def fresh_model(parts, lm) -> Any:
    """A GillModel with new parts, or with the published GILL parameters when `checkpoint` is set."""
    from nmm_memes.gill.convert import load_checkpoint, sizes_from
    from nmm_memes.gill.parts import build_model, spec_for

    path = parts.settings.checkpoint
    if not path:
        return build_model(parts, lm, spec_for(parts))
    state = load_checkpoint(path, img_tokens=parts.settings.img_tokens)
    spec = spec_for(parts, **sizes_from(state, parts.loaded.model.config.word_embed_proj_dim))
    check_spec(spec, spec_for(parts), f"checkpoint {path}")
    model = build_model(parts, lm, spec)
    load_exactly(model, state, model.parts_state(), str(path), "GILL parts")
    return model
