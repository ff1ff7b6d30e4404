"""`train --model gill|tiny-gill`: GILL's trainee (LoRA on the frozen OPT + its parts), named by its family."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

log = logging.getLogger(__name__)


def fresh_model(parts, lm) -> Any:
    """A GillModel with new parts, or with the published GILL parameters when `checkpoint` is set."""
    from nmm_core.weights import load_exactly
    from nmm_memes.gill.convert import load_checkpoint, sizes_from
    from nmm_memes.gill.parts import build_model, spec_for
    from nmm_memes.gill.persist import check_spec

    path = parts.settings.checkpoint
    if not path:
        return build_model(parts, lm, spec_for(parts))
    state = load_checkpoint(path, img_tokens=parts.settings.img_tokens)
    spec = spec_for(parts, **sizes_from(state, parts.loaded.model.config.word_embed_proj_dim))
    check_spec(spec, spec_for(parts), f"checkpoint {path}")
    model = build_model(parts, lm, spec)
    load_exactly(model, state, model.parts_state(), str(path), "GILL parts")
    return model


def gill_trainee(cfg):
    """GILL's parts with fresh LoRA on the frozen OPT, its own collator and loss, saved with its parts.

    GILL's family names it, so core's `run_train` builds it for `--model gill|tiny-gill`; `cfg` is
    memes' train config (its `gill` settings name the parts; another command's: GILL's defaults).
    """
    from transformers import set_seed

    from nmm_core.errors import ConfigError
    from nmm_core.lora import apply_lora
    from nmm_core.records import load_image
    from nmm_core.workflows import Trainee
    from nmm_memes.gill.collate import GillCollator, training_caption
    from nmm_memes.gill.generate import Gill
    from nmm_memes.gill.parts import load_parts
    from nmm_memes.gill.persist import save_gill

    if cfg.train.gradient_checkpointing:
        # transformers checkpoints a layer only in training mode; GILL keeps the frozen OPT in eval
        # mode (no dropout), so the flag would be accepted and do nothing.
        raise ConfigError("GILL keeps the frozen OPT in eval mode, where transformers does not checkpoint "
                          "gradients: drop --train-gradient-checkpointing (or lower --train-batch-size)")
    # The new parts (LoRA, [IMG] rows, mapper) are drawn before the Trainer seeds: seed them too.
    set_seed(cfg.train.seed)
    from nmm_memes.gill.settings import GillSettings

    parts = load_parts(cfg.model, getattr(cfg, "gill", None) or GillSettings())  # core's `nmm train`: defaults
    peft_lm = apply_lora(parts.loaded, cfg.lora)
    model = fresh_model(parts, peft_lm)
    spec = model.spec

    def captions(net, examples, limit):  # --train-eval-generate-limit: scored against the caption GILL learns
        return ([Gill(net, parts).caption(load_image(ex), limit) for ex in examples],
                [[training_caption(ex)] for ex in examples])

    collator = GillCollator(parts.tokenizer, parts.image_processor, parts.sd.tokenizer, first_img=spec.first_img,
                            img_tokens=spec.img_tokens, max_caption_tokens=parts.settings.max_caption_tokens)
    return Trainee(model, parts.tokenizer, parts.loaded.family,
                   save=lambda path: save_gill(model, peft_lm, path, base_name=parts.settings.lm),
                   device=parts.device, bf16=str(parts.loaded.model.dtype) == "torch.bfloat16",
                   collator=collator,
                   # GillModel returns its own loss: the plain Trainer path, not the answer-only one
                   settings=replace(cfg.train, answer_only_logits=False), answer=captions)
