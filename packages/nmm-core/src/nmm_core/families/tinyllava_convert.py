"""Convert a TinyLLaVA_Factory checkpoint (TinyLLaVA-Phi-2-SigLIP-3.1B) to our Llava form.

TinyLLaVA_Factory names weights after its modules (`modeling_tinyllava.py`): `language_model.`
+ Phi's keys, `vision_tower._vision_tower.` + SigLIP's keys in the transformers-4 layout
(`vision_model.` level), `connector._connector.{0,2}.` for Linear-GELU-Linear. Our form is
core's `TinyLlavaForConditionalGeneration` (transformers' Llava, plus Phi-2's head bias).

The processor is built beside the weights: the published Phi-2 tokenizer with `<image>` added
(it lands on one of Phi-2's free embedding rows), a SiglipImageProcessor at the vision tower's
size (384 px for the real model), and the `phi` chat template of the `tinyllava` family.
`convert_folder` does both; `nmm convert` and `nmm-memes convert` run it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from nmm_core.errors import ConfigError, DataError
from nmm_core.weights import read_weights, rename

IMAGE_TOKEN = "<image>"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
CONVERT_HELP = "TinyLLaVA_Factory checkpoint -> Llava folder usable as --model OUT"

# (published prefix, our prefix), most specific first.
_PREFIXES = (
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("vision_tower._vision_tower.vision_model.", "model.vision_tower."),
    ("connector._connector.0.", "model.multi_modal_projector.linear_1."),
    ("connector._connector.2.", "model.multi_modal_projector.linear_2."),
)


def map_key(key: str) -> str:
    """Our name for one published weight name; an unknown name is an error naming it."""
    return rename(key, _PREFIXES, "a TinyLLaVA_Factory (SigLIP + MLP + Phi) weight name")


def convert_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Rename every weight; two published names mapping to one of ours is an error."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = map_key(key)
        if new in out:
            raise DataError(f"weight '{key}': maps onto '{new}' twice")
        out[new] = value
    return out


def convert_checkpoint(src: str | Path, out: str | Path, *, image_token_id: int):
    """Convert `src` (config.json + weights) into a TinyLlava model saved to `out`; the model."""
    from nmm_core.families.tinyllava import llava_config
    from nmm_core.families.tinyllava_model import TinyLlavaForConditionalGeneration
    from nmm_core.twins import write_marker

    src, out = Path(src), Path(out)
    config_file = src / "config.json"
    if not config_file.exists():
        raise DataError(f"{src}: no config.json (expected a TinyLLaVA_Factory checkpoint)")
    config = llava_config(json.loads(config_file.read_text()), image_token_id=image_token_id)
    state = convert_state_dict(read_weights(src))
    model = TinyLlavaForConditionalGeneration(config)
    # strict: a weight missing on either side means the mapping (or the file) is wrong
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("model.vision_tower.head.")]
    if missing or unexpected:
        raise DataError(f"{src}: converted weights do not fit: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    model.save_pretrained(out)
    write_marker(out, family="tinyllava", converted_from=str(src))
    return model


def has_tokenizer(folder: Path) -> bool:
    """Whether `folder` holds a transformers tokenizer's files."""
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def build_processor(src: Path, tokenizer_dir: Path | None = None):
    """The LlavaProcessor for a TinyLLaVA checkpoint; the `<image>` token's id; no weights read."""
    from transformers import AutoTokenizer, LlavaProcessor, SiglipImageProcessor

    from nmm_core.families.tinyllava import CHAT_TEMPLATE

    folder = tokenizer_dir or src
    if not has_tokenizer(folder):
        raise ConfigError(
            f"{folder} has no tokenizer files ({', '.join(_TOKENIZER_FILES)}): pass --tokenizer DIR, a folder "
            "holding the published TinyLLaVA-Phi-2-SigLIP-3.1B (or microsoft/phi-2) tokenizer files")
    config_file = src / "config.json"
    if not config_file.is_file():
        raise DataError(f"{src}: no config.json (expected a TinyLLaVA_Factory checkpoint)")
    config = json.loads(config_file.read_text())
    try:
        size = int(config["vision_config"]["image_size"])
        vocab = int(config["text_config"]["vocab_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{config_file}: field 'vision_config.image_size' / 'text_config.vocab_size' "
                        f"missing ({exc})") from None
    tok = AutoTokenizer.from_pretrained(folder)
    if IMAGE_TOKEN not in tok.get_vocab():
        tok.add_tokens([IMAGE_TOKEN], special_tokens=True)
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_token_id >= vocab:
        raise DataError(f"{folder}: '{IMAGE_TOKEN}' gets id {image_token_id}, beyond the model's "
                        f"{vocab}-row embedding (wrong tokenizer for this checkpoint?)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # Phi-2 has no pad token; padding is masked anyway
    tok.chat_template = CHAT_TEMPLATE
    processor = LlavaProcessor(
        image_processor=SiglipImageProcessor(size={"height": size, "width": size}),
        tokenizer=tok, patch_size=int(config["vision_config"].get("patch_size", 14)),
        # TinyLLaVA drops SigLIP's first patch: (384/14)^2 - 1 = 728 image tokens, as the model's config
        vision_feature_select_strategy="default", num_additional_image_tokens=0,
        chat_template=CHAT_TEMPLATE, image_token=IMAGE_TOKEN,
    )
    return processor, image_token_id


def convert_folder(src: str | Path, out: str | Path, *, tokenizer: str | Path | None = None):
    """Convert checkpoint folder `src` (weights, processor, generation config) into new folder `out`; the model.

    The tokenizer files come from `src` (the published repo holds them) unless `tokenizer` names a folder.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ConfigError(f"SRC {src}: no such folder (the TinyLLaVA_Factory checkpoint to convert)")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty: choose a new folder")
    processor, image_token_id = build_processor(src, Path(tokenizer) if tokenizer else None)
    model = convert_checkpoint(src, out, image_token_id=image_token_id)
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.save_pretrained(out)
    processor.save_pretrained(out)
    return model


@dataclass
class ConvertConfig:
    """`convert SRC OUT`: TinyLLaVA_Factory checkpoint -> Llava folder with processor and nmm.json."""

    tokenizer: str | None = field(default=None, metadata={
        "help": "folder with the Phi-2 tokenizer files (default: SRC, as the published repo has them)"})
    src: str = field(default="", metadata={"help": "TinyLLaVA_Factory checkpoint folder"})
    out: str = field(default="", metadata={"help": "new folder to write"})
    positional: ClassVar = {"src": ("SRC", "TinyLLaVA_Factory checkpoint folder (config.json + weights)", None),
                            "out": ("OUT", "new folder to write", None)}


def run_convert(cfg: ConvertConfig, *, cli: str) -> Path:
    """`convert`: convert the folder, then print how to use it with command `cli` (nmm, nmm-memes)."""
    model = convert_folder(cfg.src, cfg.out, tokenizer=cfg.tokenizer)
    out = Path(cfg.out)
    print(f"converted {Path(cfg.src)} -> {out} (image token {IMAGE_TOKEN!r} = id {model.config.image_token_index})")
    print(f"use it as: {cli} train --model {out} ...")
    return out
