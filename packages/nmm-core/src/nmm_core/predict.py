"""`predict`: one answer to one question about one image, with a LoRA adapter merged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nmm_core.errors import ConfigError, DataError
from nmm_core.evaluate import GenerationSettings, answer_length, generate
from nmm_core.lora import load_adapter
from nmm_core.model_checks import budget_for, check_model_source, model_image_limits
from nmm_core.records import Example
from nmm_core.task import Task

if TYPE_CHECKING:
    from nmm_core.workflows import ModelSettings


def predict_one(model: ModelSettings, adapter: str | None, image: str, prompt: str, *, task: Task,
                max_new_tokens: int | None = None) -> tuple[str, float]:
    """One raw answer to one prompt about one image (adapter merged), and the seconds it took."""
    from nmm_core.records import image_size, load_image

    if not prompt.strip():
        raise ConfigError("the question is empty")
    if not Path(image).is_file():
        raise DataError(f"record 'predict' field 'image': no such file {image}")
    example = Example("predict", image, prompt.strip(), ())
    load_image(example)  # an unreadable image fails here, before the model loads
    check_model_source(model, adapter)
    model = budget_for(model, adapter)
    limits = model_image_limits(model)
    refused = limits.why(image_size(example)) if limits is not None else None
    if refused:
        raise DataError(f"image {image}: {refused}")
    loaded = model.load(padding_side="left")
    net = load_adapter(loaded, adapter, merge=not loaded.quantization) if adapter else loaded.model
    settings = GenerationSettings(batch_size=1, max_new_tokens=answer_length(max_new_tokens, loaded.source.preset))
    [raw], seconds = generate(net, loaded.processor, loaded.family, [example], task=task,
                              settings=settings, progress=False)
    return raw, seconds
