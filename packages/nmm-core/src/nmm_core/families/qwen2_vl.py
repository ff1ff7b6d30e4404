"""Qwen2-VL: tiny twin (real classes, real chat format, scaled-down shapes)."""

from __future__ import annotations

from pathlib import Path

# Renders the same text as Qwen2-VL-Instruct's own template for image + text turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)



def qwen2_vl_twin_tokenizer():
    """The twins' locally trained BPE tokenizer with Qwen2-VL's special tokens and chat template."""
    from nmm_core.testing.tokenizer import build_bpe_tokenizer

    return build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )

def build_twin(out_dir: Path, *, seed: int = 0, image_size: int = 112) -> None:
    """Save a ~0.2M-parameter Qwen2-VL with its processor to `out_dir`.

    Kept from the real model: the classes, the chat format, patch 14 with 2x2 merging and
    temporal patch 2, grouped-query attention (2 query heads per KV head) and M-RoPE.
    A `image_size` square image gives (image_size / 28)^2 image tokens.
    """
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from nmm_core.testing.tokenizer import TINY_TEXT, save_twin

    tok = qwen2_vl_twin_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    pixels = image_size * image_size
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=pixels),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config=dict(
            **TINY_TEXT,  # the tied head too needs its wider initializer_range
            vocab_size=len(tok),
            intermediate_size=256,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            # head_dim 16: the three M-RoPE sections must sum to head_dim / 2
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=4,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    save_twin(Qwen2VLForConditionalGeneration, config, processor, out_dir, seed=seed,
              pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])


def _token_pixels(image_processor) -> int:
    """Pixels per image token: one merged (patch x merge)^2 square."""
    return (image_processor.patch_size * image_processor.merge_size) ** 2


def image_token_range(processor) -> tuple[int, int]:
    """(fewest, most) image tokens: the processor's min_pixels and max_pixels in tokens.

    transformers' smart_resize keeps a side of at least one merged patch, so an image thinner than
    about 1:most (a 2000x20 strip) can exceed the most by that row's rounding.
    """
    ip = processor.image_processor
    per = _token_pixels(ip)
    return -(-ip.size["shortest_edge"] // per), ip.size["longest_edge"] // per


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None) -> None:
    """min_pixels / max_pixels = tokens x (patch x merge)^2; a bound left None keeps the processor's,
    moved only as far as the other needs."""
    from dataclasses import replace

    ip = processor.image_processor
    per = _token_pixels(ip)
    low, high = ip.size["shortest_edge"], ip.size["longest_edge"]
    if max_tokens is not None:
        high = max_tokens * per
        low = min(low, high)
    if min_tokens is not None:
        low = min_tokens * per
        high = max(high, low)
    ip.size = replace(ip.size, shortest_edge=low, longest_edge=high)
