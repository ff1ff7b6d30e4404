"""LLaVA-1.5 (CLIP ViT + Llama): tiny twin (real classes, llava-hf's chat format)."""

from __future__ import annotations

from pathlib import Path

# llava-hf's template renders `USER: <image>\n{question} ASSISTANT:`
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<image>", "<pad>")


def build_twin(out_dir: Path, *, seed: int = 0, image_size: int = 56) -> None:
    """Save a tiny LLaVA-1.5 (CLIP vision + Llama) with its processor to `out_dir`.

    Kept from the real model: the classes, the format, CLIP's class token dropped by the
    "default" feature strategy (processor: one additional token), feature layer -2, the
    two-layer GELU projector. `image_size` / 14 squared is the number of image tokens.
    """
    from transformers import CLIPImageProcessor, LlavaForConditionalGeneration

    from nmm_core.testing.tokenizer import TINY_TEXT, build_bpe_tokenizer

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        add_bos=True,
        chat_template=CHAT_TEMPLATE,
        extra_attributes={"image_token": "<image>"},
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=128, num_hidden_layers=3,
                  num_attention_heads=2, image_size=image_size, patch_size=14, projection_dim=32,
                  hidden_act="quick_gelu")
    text = dict(**TINY_TEXT, model_type="llama", vocab_size=len(tok), intermediate_size=192, num_key_value_heads=4,
                rms_norm_eps=1e-5, bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    save_llava_layout(LlavaForConditionalGeneration, out_dir, tok, image_processor, vision=vision, text=text,
                      class_tokens=1, seed=seed)


def save_llava_layout(model_cls, out_dir: Path, tok, image_processor, *, vision: dict, text: dict,
                      class_tokens: int, seed: int) -> None:
    """Save a tiny twin in transformers' Llava layout with its processor (LLaVA-1.5's and TinyLLaVA's).

    Both keep: patch 14, the "default" feature strategy, which drops the first patch feature
    (`class_tokens`: how many extra tokens the processor counts for it, CLIP's class token 1,
    SigLIP's none 0), feature layer -2, the two-layer GELU projector, an untied head.
    """
    from transformers import LlavaConfig, LlavaProcessor

    from nmm_core.testing.tokenizer import save_twin

    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=class_tokens,
                               chat_template=tok.chat_template)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(vision["image_size"] // 14) ** 2 - 1 + class_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    save_twin(model_cls, config, processor, out_dir, seed=seed, pad_token_id=tok.pad_token_id,
              eos_token_id=tok.eos_token_id)


def image_token_range(processor, family: str = "llava") -> tuple[int, int]:
    """Every image is resized to one square: one count for all (counted in `family`'s format)."""
    from nmm_core.image_budget import fixed_token_range

    return fixed_token_range(processor, family)


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None, family: str = "llava") -> None:
    """The count is fixed: only a budget that contains it is accepted."""
    from nmm_core.image_budget import check_fixed

    check_fixed(family, image_token_range(processor, family)[0], min_tokens, max_tokens)
