"""Full-size models with random weights from the real architectures' configs (no download).

The compute and memory are the real model's, so speed and memory are measured at real size
on a GPU without fetching a checkpoint; on the `meta` device the build only counts parameters.
"""

from __future__ import annotations

from nmm_core.families import get_family


def reference_config(family: str):
    """The real model's config object for `family` (TinyLLaVA's own format made a Llava one)."""
    fam = get_family(family)
    raw = fam.load_reference_config()
    if family == "tinyllava":
        from nmm_core.families.tinyllava import FULL_SIZE_IMAGE_TOKEN_ID, llava_config

        return llava_config(raw, image_token_id=FULL_SIZE_IMAGE_TOKEN_ID)
    return fam.model_cls().config_class.from_dict(raw)


def build_full_size(family: str, *, dtype=None, device: str = "meta", attn_implementation: str = "sdpa"):
    """The family's real-size model with random weights, built directly on `device`."""
    import torch

    cls = get_family(family).model_cls()
    config = reference_config(family)
    with torch.device(device):
        return cls._from_config(config, dtype=dtype or torch.bfloat16, attn_implementation=attn_implementation)
