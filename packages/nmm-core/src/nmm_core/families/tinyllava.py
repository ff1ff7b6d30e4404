"""TinyLLaVA-Phi-2-SigLIP expressed as transformers' Llava (SigLIP vision + Phi): tiny twin."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from nmm_core.errors import DataError
from nmm_core.families import llava

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
    from transformers import SiglipImageProcessor

    from nmm_core.families.tinyllava_model import TinyLlavaForConditionalGeneration
    from nmm_core.testing.tokenizer import TINY_TEXT, build_bpe_tokenizer

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={"image_token": "<image>"},
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=112, num_hidden_layers=3,
                  num_attention_heads=2, image_size=image_size, patch_size=14, hidden_act="gelu_pytorch_tanh")
    text = dict(**TINY_TEXT, model_type="phi", vocab_size=len(tok), intermediate_size=256, partial_rotary_factor=0.4,
                hidden_act="gelu_new", bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
                pad_token_id=ids["<pad>"])
    llava.save_llava_layout(TinyLlavaForConditionalGeneration, out_dir, tok,
                            SiglipImageProcessor(size={"height": image_size, "width": image_size}),
                            vision=vision, text=text, class_tokens=0, seed=seed)


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



# Every image is resized to one square, as LLaVA's: one fixed count (in TinyLLaVA's format)
image_token_range = partial(llava.image_token_range, family="tinyllava")
set_image_budget = partial(llava.set_image_budget, family="tinyllava")
