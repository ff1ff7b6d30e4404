"""GILL (Koh et al. 2023) on our parts: a frozen OPT with LoRA reading a CLIP visual prefix,
learned [IMG] tokens, and a mapper from their hidden states to Stable Diffusion's text
conditioning, for captioning, image generation and retrieval.

Modules: `settings` (what to load, sizes; no torch), `mapper` (GILLMapper), `model`
(GillModel: forward with its own loss, caption/condition/retrieval), `parts` (loading OPT,
CLIP, SD and the twin), `collate` (training batches), `persist` (the non-LoRA parts beside the
adapter), `convert` (the published checkpoint's names), `train`, `generate` (the commands).
"""

from dataclasses import replace

from nmm_core.errors import ConfigError
from nmm_core.families import get_family

# GILL's family: OPT's layout (LoRA on the frozen OPT) with GILL's own trainee, which loads CLIP,
# SD and the learned parts itself; its presets (`gill`, `tiny-gill`) are memes' (presets.py)
GILL_FAMILY = replace(get_family("opt_clip"), name="gill", model_types=(),
                      trainee="nmm_memes.gill.train:gill_trainee", hub_parts="nmm_memes.gill.settings:hub_parts")


def is_gill(model: str) -> bool:
    """Whether `--model` is a preset of GILL's family (captions, images; trained by its own trainee)."""
    from nmm_core.presets import all_presets

    preset = all_presets().get(model)
    return preset is not None and preset.family == GILL_FAMILY.name


def refuse_gill(cfg, command: str):
    """`cfg`, unless its model is GILL's: `eval`/`compare`/`compete` score meme meanings with a chat VLM."""
    if is_gill(cfg.model.model):
        raise ConfigError(f"{command} scores meme meanings with a chat VLM (e.g. TinyLLaVA); for GILL use "
                          "predict (caption), generate (image) or retrieve")
    return cfg
