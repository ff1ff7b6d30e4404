"""Inputs the benchmarks share: variable-length prompts, chart examples, Qwen2-VL-2B's processor."""

from __future__ import annotations

import json
import random
from typing import Any

from nmm_core.errors import DeviceError
from nmm_core.records import Example
from nmm_core.testing.shapes import make_shapes_dataset

CHART_W, CHART_H = 504, 672  # 432 Qwen2-VL image tokens
_FILLER = "Look carefully at every part of the picture before you answer the question."


def require_size(size: str) -> None:
    """Full size needs CUDA: on CPU a 2-7B model step takes minutes and measures nothing useful."""
    import torch

    if size == "full" and not torch.cuda.is_available():
        raise DeviceError("--size full builds the real architectures at full size and needs a CUDA "
                          "GPU; on this machine run --size smoke")


def variable_prompts(n: int, *, seed: int = 0) -> list[Example]:
    """Shapes questions with 0-3 filler sentences, so batched prompts need padding."""
    return with_filler(make_shapes_dataset(n, seed=seed), seed=seed)


def with_filler(examples: list[Example], *, seed: int = 0) -> list[Example]:
    """The examples with 0-3 filler sentences before each question (prompts of varied length)."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        prefix = " ".join([_FILLER] * rng.randint(0, 3))
        out.append(Example(ex.id, ex.image, f"{prefix} {ex.prompt}".strip(), ex.answers, ex.meta))
    return out


def chart_examples(n: int, seed: int) -> list[Example]:
    """`n` bar charts of 504x672 px with a question and a numeric answer."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    out = []
    for i in range(n):
        image = Image.new("RGB", (CHART_W, CHART_H), "white")
        draw = ImageDraw.Draw(image)
        bars = rng.randint(3, 9)
        values = [rng.randint(5, 100) for _ in range(bars)]
        width = (CHART_W - 40) // bars
        for b, v in enumerate(values):
            top = CHART_H - 40 - v * 6
            draw.rectangle([20 + b * width + 4, top, 20 + (b + 1) * width - 4, CHART_H - 40],
                           fill=(rng.randint(0, 200), rng.randint(0, 200), rng.randint(0, 200)))
            draw.text((20 + b * width + 6, top - 14), str(v), fill="black")
        draw.line([20, CHART_H - 40, CHART_W - 20, CHART_H - 40], fill="black", width=2)
        out.append(Example(f"chart-{i}", image, "What is the value of the largest bar? Answer with a "
                           "single word or number.", (str(max(values)),)))
    return out


def qwen2_vl_processor() -> Any:
    """Qwen2-VL-2B-Instruct's processor at its real image settings, with no hub access."""
    from importlib import resources

    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from nmm_core import qwen2_vl_twin_tokenizer

    config = json.loads(resources.files("nmm_core.families").joinpath(
        "configs/qwen2-vl-2b-instruct.preprocessor_config.json").read_text(encoding="utf-8"))
    for key in ("image_processor_type", "processor_class"):
        config.pop(key, None)
    tokenizer = qwen2_vl_twin_tokenizer()
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**config),
                            video_processor=Qwen2VLVideoProcessor(), tokenizer=tokenizer,
                            chat_template=tokenizer.chat_template)
