"""`train --model gill|tiny-gill`: GILL's trainee (LoRA on the frozen OPT + its parts), named by its family."""

from __future__ import annotations

import logging
from dataclasses import replace

log = logging.getLogger(__name__)


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
    from nmm_memes.gill.persist import fresh_model, save_gill

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
