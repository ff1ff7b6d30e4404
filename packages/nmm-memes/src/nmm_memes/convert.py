"""`convert`: a TinyLLaVA_Factory checkpoint folder -> a local Llava folder nmm loads with `--model OUT`.

The weights go through `tinyllava_convert.convert_checkpoint`. The processor is built here:
the published Phi-2 tokenizer with `<image>` added (it lands on one of Phi-2's free embedding
rows), a SiglipImageProcessor at the vision tower's size (384 px for the real model), and the
`phi` chat template core's `tinyllava` family uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from nmm_core.errors import ConfigError, DataError

IMAGE_TOKEN = "<image>"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


@dataclass
class ConvertConfig:
    """`convert SRC OUT`: TinyLLaVA_Factory checkpoint -> Llava folder with processor and nmm.json."""

    tokenizer: str | None = field(default=None, metadata={
        "help": "folder with the Phi-2 tokenizer files (default: SRC, as the published repo has them)"})
    src: str = field(default="", metadata={"help": "TinyLLaVA_Factory checkpoint folder"})
    out: str = field(default="", metadata={"help": "new folder to write"})
    positional: ClassVar = {"src": ("SRC", "TinyLLaVA_Factory checkpoint folder (config.json + weights)", None),
                            "out": ("OUT", "new folder to write", None)}


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


def run_convert(cfg: ConvertConfig, src: str, out: str) -> Path:
    """Convert weights and write the processor; prints how to use the folder."""
    from nmm_memes.tinyllava_convert import convert_checkpoint

    src_path, out_path = Path(src), Path(out)
    if out_path.exists() and any(out_path.iterdir()):
        raise ConfigError(f"{out_path} exists and is not empty: choose a new folder")
    processor, image_token_id = build_processor(src_path, Path(cfg.tokenizer) if cfg.tokenizer else None)
    model = convert_checkpoint(src_path, out_path, image_token_id=image_token_id)
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.save_pretrained(out_path)
    processor.save_pretrained(out_path)
    print(f"converted {src_path} -> {out_path} (image token {IMAGE_TOKEN!r} = id {image_token_id})")
    print(f"use it as: nmm-memes train --model {out_path} ...")
    return out_path
