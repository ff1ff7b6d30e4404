"""OPT + CLIP vision (GILL's parts): tiny twins saved side by side as `lm/` and `vision/`."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def build_twin(out_dir: Path, *, seed: int = 0, image_size: int = 56) -> None:
    """Save a tiny OPT causal LM (`out_dir`, the tokenizer beside it) and CLIP vision model.

    OPT has no chat template: text is `{prompt} {answer}</s>` and OPT's tokenizer starts every
    sequence with `</s>`, as the real one does. The CLIP part goes to `out_dir/vision`.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        OPTConfig,
        OPTForCausalLM,
    )

    from nmm_core.testing.tokenizer import build_bpe_tokenizer

    tok = build_bpe_tokenizer(
        special_tokens=SPECIAL_TOKENS,
        bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", add_bos=True,
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = OPTConfig(
        vocab_size=len(tok), hidden_size=64, ffn_dim=256, num_hidden_layers=2,
        num_attention_heads=4, word_embed_proj_dim=64, max_position_embeddings=512,
        do_layer_norm_before=True,
        init_std=0.1,  # as TINY_TEXT (nmm_core.testing.tokenizer): a tiny LoRA must be able to move the head
        bos_token_id=ids["</s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"],
    )
    torch.manual_seed(seed)
    OPTForCausalLM(config).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    vision = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=14, projection_dim=32,
        )
    )
    vision.save_pretrained(out_dir / "vision")
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(out_dir / "vision")


def image_token_range(processor) -> tuple[int, int]:
    """No image tokens: OPT reads text only (GILL brings its own image path)."""
    from nmm_core.errors import ConfigError

    raise ConfigError("opt_clip is a text model: it has no image-token budget")


def set_image_budget(processor, min_tokens: int | None, max_tokens: int | None) -> None:
    """Refused: OPT reads text only."""
    image_token_range(processor)
