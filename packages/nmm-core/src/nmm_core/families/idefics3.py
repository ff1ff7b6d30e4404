"""Idefics3 / SmolVLM: tiny twin (real classes, real chat format, scaled-down shapes)."""

from __future__ import annotations

from pathlib import Path

# SmolVLM's format: `<|im_start|>User:<image>{q}<end_of_utterance>\nAssistant:`
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
    "<global-img>", "<end_of_utterance>",
) + tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))


def build_twin(out_dir: Path, *, seed: int = 0, tile: int = 32) -> None:
    """Save a tiny Idefics3 (SmolVLM's architecture) with its processor to `out_dir`.

    Kept from the real model: the classes, the chat format, tiling with a global image, pixel
    shuffle (scale factor 2 here, 3 in SmolVLM-Base) and the connector. One `tile` px tile,
    patch 8, gives 4 image tokens.
    """
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    from nmm_core.testing.tokenizer import TINY_TEXT, build_bpe_tokenizer, save_twin

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    patch, scale = 8, 2
    seq_len = (tile // patch) ** 2 // scale**2
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            do_image_splitting=False,
            size={"longest_edge": tile},
            max_image_size={"longest_edge": tile},
        ),
        tokenizer=tok,
        image_seq_len=seq_len,
        chat_template=CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        text_config=dict(
            **TINY_TEXT,
            model_type="llama",
            vocab_size=len(tok),
            intermediate_size=256,
            num_key_value_heads=4,
            head_dim=16,
            rms_norm_eps=1e-5,
            bos_token_id=ids["<|im_start|>"],
            eos_token_id=ids["<end_of_utterance>"],
            pad_token_id=ids["<|im_end|>"],
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=tile, patch_size=patch,
        ),
        scale_factor=scale,
        image_token_id=ids["<image>"],
        tie_word_embeddings=False,
    )
    save_twin(Idefics3ForConditionalGeneration, config, processor, out_dir, seed=seed,
              pad_token_id=ids["<|im_end|>"], eos_token_id=ids["<end_of_utterance>"])


def _tile_range(seq: int, k: int) -> tuple[int, int]:
    """(fewest, most) image tokens when the longest edge is k tiles: a one-row strip, a k x k square
    (each with the global image); one tile alone when k is 1."""
    return (seq, seq) if k <= 1 else (seq * (k + 1), seq * (k * k + 1))


def image_token_range(processor) -> tuple[int, int]:
    """(fewest, most) image tokens under the processor's longest edge and splitting."""
    ip = processor.image_processor
    tile = ip.max_image_size["longest_edge"]
    k = -(-ip.size["longest_edge"] // tile) if ip.do_image_splitting else 1
    return _tile_range(processor.image_seq_len, k)


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None) -> None:
    """The longest edge in whole tiles (and splitting on or off) that keeps every image in the budget:
    the most tiles the max allows, else the fewest the min needs."""
    from dataclasses import replace

    from nmm_core.errors import ConfigError

    if min_tokens is None and max_tokens is None:
        return
    ip = processor.image_processor
    seq, tile = processor.image_seq_len, ip.max_image_size["longest_edge"]
    fits = [k for k in range(1, 65)
            if (max_tokens is None or _tile_range(seq, k)[1] <= max_tokens)
            and (min_tokens is None or _tile_range(seq, k)[0] >= min_tokens)]
    if not fits:
        raise ConfigError(f"idefics3 spends {seq} image tokens per {tile} px tile (a k x k tiling costs "
                          f"{seq} x (k*k + 1), a one-row strip {seq} x (k + 1)): no tiling keeps every image "
                          f"within --model-min/max-image-tokens {min_tokens}..{max_tokens}")
    k = max(fits) if max_tokens is not None else min(fits)
    ip.do_image_splitting = k > 1
    ip.size = replace(ip.size, longest_edge=k * tile)
