"""Moondream2 (2024 layout): tiny twin, the real model's dimensions, its prompt format.

The prompt is the published one: the BOS token, the image, `\\n\\nQuestion: {q}\\n\\nAnswer:`;
the answer follows after a space and ends with `<|endoftext|>` (the published fine-tuning
recipe's answer end). Our model is `moondream_model.MoondreamForConditionalGeneration`; the
published checkpoint is converted into it by `moondream_convert`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nmm_core.families.moondream_model import MoondreamConfig
    from nmm_core.families.moondream_processing import MoondreamProcessor

END_OF_TEXT = "<|endoftext|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n\nQuestion: ' + content['text'] + '\n\n' }}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Answer:' }}{% endif %}"
)
SPECIAL_TOKENS = (END_OF_TEXT, "<image>")

# Dimensions of the 2024 releases, from github vikhyat/moondream at the release commits
# (configuration_moondream.py: Phi-1.5 shape; vision_encoder.py: the ViT, crops and MLP).
PUBLISHED_TEXT = dict(
    vocab_size=51200, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
    num_attention_heads=32, hidden_act="gelu_new", max_position_embeddings=2048,
    layer_norm_eps=1e-5, partial_rotary_factor=0.5, rope_theta=10000.0, tie_word_embeddings=False,
)
PUBLISHED_VISION = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
    patch_size=14, image_size=378, hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-5,  # torch's LayerNorm default, which the published ViT uses (not SigLIP's 1e-6)
    vision_use_head=False,
)
PUBLISHED_PROJECTOR_HIDDEN = 8192
PUBLISHED_MULTI_CROP_MIN_SIZE = 512


def published_config(*, image_token_id: int, eos_token_id: int, text: dict[str, Any] | None = None,
                     vision: dict[str, Any] | None = None,
                     projector_hidden_size: int = PUBLISHED_PROJECTOR_HIDDEN) -> MoondreamConfig:
    """Our config for the published 2024 model (image token: an unused row of the 51,200).

    `text` / `vision` replace the published dimensions (a tiny checkpoint in tests).
    """
    from nmm_core.families.moondream_model import MoondreamConfig

    text = dict(text or PUBLISHED_TEXT, bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                pad_token_id=eos_token_id)
    return MoondreamConfig(text_config=text, vision_config=dict(vision or PUBLISHED_VISION),
                           projector_hidden_size=projector_hidden_size, image_token_id=image_token_id)


def make_processor(tokenizer: Any, *, crop_size: int, multi_crop_min_size: int,
                   patch_size: int) -> MoondreamProcessor:
    """Our processor around `tokenizer`, with `<image>` added and the Moondream prompt format."""
    from nmm_core.families.moondream_processing import (
        IMAGE_TOKEN,
        MoondreamImageProcessor,
        MoondreamProcessor,
    )

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # the published batch code pads with it too
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = MoondreamImageProcessor(crop_size=crop_size, multi_crop_min_size=multi_crop_min_size)
    return MoondreamProcessor(image_processor=image_processor, tokenizer=tokenizer,
                              chat_template=CHAT_TEMPLATE, image_seq_length=(crop_size // patch_size) ** 2)


def build_twin(out_dir: Path, *, seed: int = 0, crop_size: int = 42) -> None:
    """Save a tiny Moondream (SigLIP-shaped ViT + crops + MLP + Phi) with its processor.

    Kept from the real model: global view + up to 2x2 crops whose tiled features are resized
    to the global grid and concatenated (MLP input twice the tower width), the multi-crop
    threshold scaled with the crop size (512 px at 378), Phi's partial rotary embedding and
    biased head, the prompt format, `<|endoftext|>` as BOS, EOS and padding.
    """
    from nmm_core.families.moondream_model import MoondreamConfig, MoondreamForConditionalGeneration
    from nmm_core.testing.tokenizer import TINY_TEXT, build_bpe_tokenizer, save_twin

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT, unk_token=END_OF_TEXT,
        extra_corpus=["Question: Answer:"],
    )
    eos = tok.convert_tokens_to_ids(END_OF_TEXT)
    patch = 14
    processor = make_processor(
        tok, crop_size=crop_size, patch_size=patch,
        multi_crop_min_size=round(PUBLISHED_MULTI_CROP_MIN_SIZE * crop_size / PUBLISHED_VISION["image_size"]),
    )
    config = MoondreamConfig(
        text_config=dict(
            **TINY_TEXT, vocab_size=len(tok), intermediate_size=256, hidden_act="gelu_new",
            layer_norm_eps=1e-5, partial_rotary_factor=0.5,
            bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=120, num_hidden_layers=3, num_attention_heads=2,
            patch_size=patch, image_size=crop_size, hidden_act="gelu_pytorch_tanh",
            layer_norm_eps=1e-5, vision_use_head=False,
        ),
        projector_hidden_size=256,
        image_token_id=processor.image_token_id,
    )
    save_twin(MoondreamForConditionalGeneration, config, processor, out_dir, seed=seed,
              pad_token_id=eos, eos_token_id=eos)



def _grid_range(seq: int, grid: int) -> tuple[int, int]:
    """(fewest, most) tokens the vision tower encodes: the global view alone, or with grid x grid crops."""
    return (seq, seq) if grid <= 1 else (seq, seq * (1 + grid * grid))


def image_token_range(processor) -> tuple[int, int]:
    """(fewest, most) image tokens encoded, `seq` per view (global + crops); the language model sees
    the crops' features tiled into the global view's `seq` tokens, so its sequence holds `seq` always."""
    return _grid_range(processor.image_seq_length, processor.image_processor.max_grid)


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None) -> None:
    """The crop grid (up to max_grid x max_grid) whose encoded views fit the max; a small image is one view,
    so a min above `seq` cannot be met."""
    from nmm_core.errors import ConfigError

    seq = processor.image_seq_length
    if min_tokens is not None and min_tokens > seq:
        raise ConfigError(f"moondream encodes an image under its multi-crop size as one view of {seq} tokens: "
                          f"--model-min-image-tokens cannot be above {seq}")
    if max_tokens is None:
        return
    if max_tokens < seq:
        raise ConfigError(f"moondream's global view alone is {seq} image tokens: "
                          f"--model-max-image-tokens cannot be below {seq}")
    grid = max(g for g in range(1, 9) if _grid_range(seq, g)[1] <= max_tokens)
    processor.image_processor.max_grid = grid
