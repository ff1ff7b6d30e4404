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
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from nmm_core.testing.tokenizer import build_bpe_tokenizer, save_twin

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        add_bos=True,
        chat_template=CHAT_TEMPLATE,
        extra_attributes={"image_token": "<image>"},
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model", hidden_size=32, intermediate_size=128,
            num_hidden_layers=3, num_attention_heads=2, image_size=image_size, patch_size=14,
            projection_dim=32, hidden_act="quick_gelu",
        ),
        text_config=dict(
            model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=192,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            max_position_embeddings=1024, rms_norm_eps=1e-5,
            initializer_range=0.1,  # see qwen2_vl.py: a tiny LoRA must be able to move the head
            bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"],
        ),
        image_token_index=ids["<image>"],
        image_seq_length=(image_size // 14) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    save_twin(LlavaForConditionalGeneration, config, processor, out_dir, seed=seed,
              pad_token_id=ids["<pad>"], eos_token_id=ids["</s>"])



def image_token_range(processor) -> tuple[int, int]:
    """Every image is resized to one square: one count for all."""
    from nmm_core.image_budget import fixed_token_range

    return fixed_token_range(processor, "llava")


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None) -> None:
    """The count is fixed: only a budget that contains it is accepted."""
    from nmm_core.image_budget import check_fixed

    check_fixed("llava", image_token_range(processor)[0], min_tokens, max_tokens)
