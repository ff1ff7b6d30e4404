"""TinyLLaVA-Phi-2-SigLIP expressed as transformers' Llava (SigLIP vision + Phi): tiny twin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nmm_core.errors import DataError

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)
# TinyLLaVA_Factory's `phi` template: `{system} USER: <image>\n{q} ASSISTANT: {a}<|endoftext|>`
CHAT_TEMPLATE = (
    "{{ \"" + SYSTEM + " \" }}"
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<image>", "<pad>")
# Phi-2's 51,200-row embedding has free rows after its 50,295 tokens: the `<image>` token's id.
FULL_SIZE_IMAGE_TOKEN_ID = 50295
_DROP_KEYS = ("auto_map", "_name_or_path", "architectures", "model_name_or_path",
              "model_name_or_path2", "torch_dtype", "transformers_version")


def build_twin(out_dir: Path, *, seed: int = 0, image_size: int = 56) -> None:
    """Save a tiny SigLIP + Phi Llava with its processor to `out_dir`.

    Kept from the real model: SigLIP (no class token) whose first patch TinyLLaVA drops, which
    Llava's "default" strategy reproduces with no additional processor token; Phi's partial
    rotary embedding; the two-layer GELU connector; feature layer -2; Phi-2's biased
    `lm_head` (`TinyLlavaForConditionalGeneration`).
    """
    from transformers import LlavaConfig, LlavaProcessor, SiglipImageProcessor

    from nmm_core.families.tinyllava_model import TinyLlavaForConditionalGeneration
    from nmm_core.testing.tokenizer import build_bpe_tokenizer, save_twin

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={"image_token": "<image>"},
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    processor = LlavaProcessor(
        image_processor=SiglipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=0,
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=32, intermediate_size=112,
            num_hidden_layers=3, num_attention_heads=2, image_size=image_size, patch_size=14,
            hidden_act="gelu_pytorch_tanh",
        ),
        text_config=dict(
            model_type="phi", vocab_size=len(tok), hidden_size=64, intermediate_size=256,
            num_hidden_layers=2, num_attention_heads=4, partial_rotary_factor=0.4,
            max_position_embeddings=1024, hidden_act="gelu_new",
            initializer_range=0.1,  # see qwen2_vl.py: a tiny LoRA must be able to move the head
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
            pad_token_id=ids["<pad>"],
        ),
        image_token_index=ids["<image>"],
        image_seq_length=(image_size // 14) ** 2 - 1,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    save_twin(TinyLlavaForConditionalGeneration, config, processor, out_dir, seed=seed,
              pad_token_id=ids["<pad>"], eos_token_id=ids["<|endoftext|>"])


def llava_config(tinyllava: Mapping[str, Any], *, image_token_id: int):
    """The `LlavaConfig` of a TinyLLaVA config.json (connector `mlp2x_gelu`, SigLIP, Phi)."""
    from transformers import LlavaConfig

    if tinyllava.get("connector_type") != "mlp2x_gelu":
        raise DataError(f"config field 'connector_type': {tinyllava.get('connector_type')!r} "
                        "is not supported (only mlp2x_gelu maps onto Llava's projector)")
    if tinyllava.get("vision_feature_select_strategy") != "patch":
        raise DataError("config field 'vision_feature_select_strategy': expected 'patch'")
    text = {k: v for k, v in tinyllava["text_config"].items() if k not in _DROP_KEYS}
    vision = {k: v for k, v in tinyllava["vision_config"].items() if k not in _DROP_KEYS}
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=image_token_id,
        # TinyLLaVA drops the first SigLIP patch ("patch" strategy) though SigLIP has no class
        # token; Llava's "default" strategy drops the same one.
        image_seq_length=patches - 1,
        vision_feature_select_strategy="default",
        vision_feature_layer=tinyllava.get("vision_feature_layer", -2),
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )



def image_token_range(processor) -> tuple[int, int]:
    """Every image is resized to one square: one count for all."""
    from nmm_core.image_budget import fixed_token_range

    return fixed_token_range(processor, "tinyllava")


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None) -> None:
    """The count is fixed: only a budget that contains it is accepted."""
    from nmm_core.image_budget import check_fixed

    check_fixed("tinyllava", image_token_range(processor)[0], min_tokens, max_tokens)
