"""Full-size set-ups: real architectures with random weights and synthetic model-ready batches.

A batch is what a processor would give for a chart-sized image, a 40-token question and an
8-token answer with loss on the answer only, so every contender runs
the same model on the same tensors. `scale="dry"` runs the same code on the tiny twins on CPU,
which is how the tests check this harness without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nmm_core.errors import ConfigError

FAMILIES = ("qwen2_vl", "idefics3", "tinyllava", "llava")
TWINS = {"qwen2_vl": "tiny-qwen2-vl", "idefics3": "tiny-smolvlm", "tinyllava": "tiny-tinyllava",
         "llava": "tiny-llava-1.5"}
MODEL_NAMES = {"qwen2_vl": "Qwen2-VL-2B-Instruct", "idefics3": "SmolVLM-Base",
               "tinyllava": "TinyLLaVA-Phi-2-SigLIP-3.1B", "llava": "LLaVA-1.5-7B"}
QUESTION_TOKENS, ANSWER_TOKENS = 40, 8
IGNORE = -100


@dataclass
class Item:
    """One synthetic example: its id (the feature cache's key) and its model inputs."""

    id: str
    tensors: dict[str, Any]


class Items:
    """Map-style dataset of `Item`s (`examples` is what the trainer checks ids on)."""

    def __init__(self, items: list[Item]) -> None:
        self.examples = items

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Item:
        return self.examples[i]


def build_model(family: str, scale: str):
    """(model, config) at real size on CUDA in bf16, or the tiny twin on CPU in fp32 for `dry`."""
    if scale == "full":
        from nmm_core.fullsize import build_full_size

        model = build_full_size(family, device="cuda")
    elif scale == "dry":
        from nmm_core.models import load_model

        model = load_model(TWINS[family], dtype="float32").model
    else:
        raise ConfigError(f"scale must be full or dry, got {scale!r}")
    model.config.use_cache = False
    return model, model.config


def _text_config(config):
    return getattr(config, "text_config", None) or config


def _image_token_id(config) -> int:
    value = getattr(config, "image_token_id", None)
    return value if value is not None else config.image_token_index


def image_inputs(family: str, config, scale: str, rng) -> tuple[dict[str, Any], int, list[int], list[int]]:
    """(pixel tensors, image token count, ids before, ids after the image tokens) of one image."""
    import torch

    vc = config.vision_config
    if family == "qwen2_vl":
        height, width = (504, 672) if scale == "full" else (56, 56)
        gh, gw = height // vc.patch_size, width // vc.patch_size
        dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2
        pixels = {"pixel_values": torch.randn(gh * gw, dim, generator=rng),
                  "image_grid_thw": torch.tensor([[1, gh, gw]])}
        tokens = gh * gw // vc.spatial_merge_size ** 2
        return pixels, tokens, [config.vision_start_token_id], [config.vision_end_token_id]
    if family == "idefics3":
        tiles = 5 if scale == "full" else 1
        per_tile = (vc.image_size // vc.patch_size) ** 2 // config.scale_factor ** 2
        pixels = {"pixel_values": torch.randn(tiles, 3, vc.image_size, vc.image_size, generator=rng),
                  "pixel_attention_mask": torch.ones(tiles, vc.image_size, vc.image_size, dtype=torch.bool)}
        return pixels, tiles * per_tile, [], []
    if family in ("llava", "tinyllava"):
        # CLIP adds a CLS position, SigLIP none; the "default" strategy drops the first position
        positions = (vc.image_size // vc.patch_size) ** 2 + int(vc.model_type == "clip_vision_model")
        drops_first = config.vision_feature_select_strategy == "default"
        pixels = {"pixel_values": torch.randn(3, vc.image_size, vc.image_size, generator=rng)}
        return pixels, positions - int(drops_first), [], []
    raise ConfigError(f"no full-size batch recipe for family {family!r}")


def make_items(family: str, config, scale: str, n: int, *, seed: int = 0, prompt_extra: list[int] | None = None
               ) -> list[Item]:
    """`n` examples: [question half] [image tokens] [question half] [answer], loss on the answer."""
    import torch

    rng = torch.Generator().manual_seed(seed)
    vocab = _text_config(config).vocab_size
    special = {_image_token_id(config)}
    items = []
    for i in range(n):
        pixels, n_image, before, after = image_inputs(family, config, scale, rng)
        extra = prompt_extra[i] if prompt_extra else 0
        text = torch.randint(3, min(vocab, 1000), (QUESTION_TOKENS + extra + ANSWER_TOKENS,), generator=rng)
        text = torch.where(torch.isin(text, torch.tensor(sorted(special))), text + 1, text)
        half = (QUESTION_TOKENS + extra) // 2
        ids = torch.cat([text[:half], torch.tensor(before, dtype=torch.long),
                         torch.full((n_image,), _image_token_id(config)), torch.tensor(after, dtype=torch.long),
                         text[half:]])
        labels = torch.full_like(ids, IGNORE)
        labels[-ANSWER_TOKENS:] = ids[-ANSWER_TOKENS:]
        tensors = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, **pixels}
        if family == "qwen2_vl" and _takes_token_types():
            tensors["mm_token_type_ids"] = (ids == _image_token_id(config)).long()
        items.append(Item(f"{family}-{seed}-{i}", tensors))
    return items


def _takes_token_types() -> bool:
    # transformers >= 5.2x asks the processor's mm_token_type_ids for M-RoPE; earlier ones take none
    import inspect

    from transformers import Qwen2VLForConditionalGeneration

    return "mm_token_type_ids" in inspect.signature(Qwen2VLForConditionalGeneration.forward).parameters


def collate(items: list[Item]) -> dict[str, Any]:
    """Stack equal-length examples (Qwen2-VL's patch rows and grids are concatenated instead)."""
    import torch

    first = items[0].tensors
    out = {}
    for key in first:
        values = [it.tensors[key] for it in items]
        out[key] = torch.cat(values) if key in ("image_grid_thw",) or (
            key == "pixel_values" and "image_grid_thw" in first) else torch.stack(values)
    return out


def prompt_only(item: Item, pad_id: int) -> dict[str, Any]:
    """The item without its answer: what generation starts from."""
    t = dict(item.tensors)
    keep = int((t["labels"] == IGNORE).sum())
    for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
        if key in t:
            t[key] = t[key][:keep]
    t.pop("labels")
    return t


def left_pad(prompts: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Left-padded batch of prompts of different lengths (how batched generation is fed)."""
    import torch

    width = max(len(p["input_ids"]) for p in prompts)
    padded = {key: torch.full((len(prompts), width), pad_id if key == "input_ids" else 0, dtype=torch.long)
              for key in ("input_ids", "attention_mask", "mm_token_type_ids") if key in prompts[0]}
    for row, p in enumerate(prompts):
        n = len(p["input_ids"])
        for key, tensor in padded.items():
            tensor[row, width - n:] = p[key]
    batch = collate([Item("", {k: v for k, v in p.items() if k not in padded}) for p in prompts])
    return {**padded, **batch}


def quantize_nf4(model, skip: tuple[str, ...]) -> None:
    """Replace `nn.Linear`s outside `skip` by bitsandbytes `Linear4bit` (nf4, double quant), as
    `from_pretrained` with a `BitsAndBytesConfig` would."""
    import bitsandbytes as bnb
    import torch

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is not torch.nn.Linear or any(s in full for s in skip):
                continue
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4",
                                  device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4",
                                         compress_statistics=True, module=q).to("cuda")
            if child.bias is not None:
                q.bias = child.bias
            setattr(module, child_name, q)
            del child
    model.is_loaded_in_4bit = True  # what peft's prepare_model_for_kbit_training looks for
    torch.cuda.empty_cache()


def build_quantized(family: str, scale: str):
    """The model with its language model in nf4 (vision tower, projector, LM head kept in bf16)."""
    if scale != "full":
        from nmm_core.models import load_model

        return load_model(TWINS[family], quantization="4bit").model
    from nmm_core.families import get_family

    model, _ = build_model(family, scale)
    skip = tuple(p.split(".")[-1] for p in get_family(family).vision_prefixes) + ("lm_head",)
    quantize_nf4(model, skip)
    return model


def to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}


def peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2 ** 30 if torch.cuda.is_available() else float("nan")


def reset_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sync_if(cuda: bool) -> None:
    import torch

    if cuda:
        torch.cuda.synchronize()
