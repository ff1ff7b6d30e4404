"""One image-token budget for every family: the same bound at train, eval and predict.

`--model-max-image-tokens N` / `--model-min-image-tokens N` bound how many tokens one image
costs. Each family maps them onto its own processor (`Family.set_image_budget`): Qwen2-VL's
pixel range, Idefics3's longest edge and tiling, Moondream's crop grid; LLaVA and TinyLLaVA
have a fixed count, which the budget must contain. The budget an adapter was trained at is
saved in its `nmm_adapter.json` and used again where it is evaluated.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

from nmm_core.errors import ConfigError, DataError
from nmm_core.families import Family

log = logging.getLogger(__name__)

BUDGET_KEY = "image_tokens"  # in nmm_adapter.json: {"min": ..., "max": ...} as trained
BUDGET_HELP = ("image tokens per image, {} (the same meaning in every family: Qwen2-VL's pixel range, "
               "SmolVLM's tiling, Moondream's crop grid; LLaVA's fixed count is only checked); none: the "
               "processor's own, or the adapter's with --adapter")
PROBE_QUESTION = "What does the image show?"


def check_budget(min_tokens: int | None, max_tokens: int | None) -> None:
    """A ConfigError naming the flag unless the bounds are positive and min <= max."""
    for flag, value in (("--model-min-image-tokens", min_tokens), ("--model-max-image-tokens", max_tokens)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if min_tokens is not None and max_tokens is not None and min_tokens > max_tokens:
        raise ConfigError(f"--model-min-image-tokens ({min_tokens}) is above --model-max-image-tokens "
                          f"({max_tokens})")


def fixed_token_range(processor, family: str) -> tuple[int, int]:
    """(n, n) for a family that resizes every image to one square: n counted by its processor."""
    from nmm_core.families import get_family

    count = count_tokens(processor, get_family(family), 64, 48)[0]
    return count, count


def check_fixed(family: str, count: int, min_tokens: int | None, max_tokens: int | None) -> None:
    """For a family whose every image is `count` tokens: refuse a budget that would need another count."""
    if (max_tokens is not None and max_tokens < count) or (min_tokens is not None and min_tokens > count):
        raise ConfigError(f"{family} gives every image a fixed {count} image tokens; "
                          f"--model-min/max-image-tokens cannot change it (give a range containing {count})")


def _probe_image(width: int, height: int):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_probe(processor, family: Family, width: int, height: int,
                 question: str = PROBE_QUESTION) -> dict[str, Any]:
    """The processor's batch for one `width`x`height` image and `question` (as generation sees it)."""
    from nmm_core.chat import VlmCollator
    from nmm_core.records import Example

    if width < 1 or height < 1:
        raise DataError(f"--image {width}x{height}: each side must be at least 1 px")
    example = Example("probe", _probe_image(width, height), question, ())
    return VlmCollator(processor, family, train=False)([example])


def image_token_id(processor) -> int:
    """The id of the token each image feature occupies in input_ids."""
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None:
        tokenizer = getattr(processor, "tokenizer", processor)
        token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    return int(token_id)


def count_tokens(processor, family: Family, width: int, height: int,
                 question: str = PROBE_QUESTION) -> tuple[int, int]:
    """(image tokens, whole sequence length) the processor gives one image of this size with `question`."""
    ids = encode_probe(processor, family, width, height, question)["input_ids"][0]
    return int((ids == image_token_id(processor)).sum()), int(ids.numel())


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); a ConfigError naming --image otherwise."""
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--image must be WIDTHxHEIGHT in pixels (e.g. 640x480), got {text!r}") from None
    if width < 1 or height < 1:
        raise ConfigError(f"--image {text}: each side must be at least 1 px")
    return width, height


def adapter_budget(adapter: str | Path | None) -> dict[str, int | None] | None:
    """The budget an adapter was trained at ({"min", "max"}), or None where its marker holds none."""
    if not adapter:
        return None
    from nmm_core.lora import ADAPTER_MARKER

    marker = Path(adapter) / ADAPTER_MARKER
    if not marker.is_file():
        return None
    try:
        saved = json.loads(marker.read_text()).get(BUDGET_KEY)
    except (ValueError, AttributeError):
        return None
    return saved if isinstance(saved, dict) else None


def resolve_budget(min_tokens: int | None, max_tokens: int | None,
                   adapter: str | Path | None) -> tuple[int | None, int | None]:
    """The budget to evaluate an adapter at: the one given, else the adapter's; warns when they differ."""
    trained = adapter_budget(adapter)
    if trained is None:
        return min_tokens, max_tokens
    if min_tokens is None and max_tokens is None:
        return trained.get("min"), trained.get("max")
    for word, given, used in (("max", max_tokens, trained.get("max")), ("min", min_tokens, trained.get("min"))):
        if given is not None and given != used:
            log.warning("%s image tokens: trained at %s image tokens, evaluating at %d", word,
                        used if used is not None else "the processor's default", given)
    return min_tokens, max_tokens


def check_budget_fits(model: str, *, family: str | None = None, revision: str | None = None,
                      min_tokens: int | None = None, max_tokens: int | None = None) -> None:
    """Refuse a budget the model's family cannot keep (LLaVA's fixed count, a text model) from its
    processor alone, so the refusal comes before a run folder or a model load."""
    if (min_tokens, max_tokens) == (None, None):
        return
    from nmm_core.models import load_processor, resolve_source

    source = resolve_source(model, family=family, revision=revision)
    source.family.set_image_budget(load_processor(source), min_tokens, max_tokens)


def image_info(model: str, size: tuple[int, int], *, family: str | None = None, revision: str | None = None,
               min_tokens: int | None = None, max_tokens: int | None = None,
               question: str = PROBE_QUESTION) -> str:
    """What `nmm info --image WxH` prints: the image tokens one image of `size` becomes under the
    budget, and the sequence it makes with a question (through the model's own processor)."""
    from nmm_core.models import check_cached_offline, load_processor, resolve_source

    check_budget(min_tokens, max_tokens)
    # offline or with no hub: one line now, not minutes of the hub's retries (the processor's files suffice)
    check_cached_offline(model, family=family, revision=revision, weights=False)
    source = resolve_source(model, family=family, revision=revision)
    processor = load_processor(source)
    if (min_tokens, max_tokens) != (None, None):
        source.family.set_image_budget(processor, min_tokens, max_tokens)
    low, high = source.family.image_token_range(processor)
    count, length = count_tokens(processor, source.family, *size, question)
    width, height = size
    return (f"{model} ({source.family.name}), a {width}x{height} image: {count} image tokens "
            f"(this budget: {low} to {high} per image)\n"
            f"sequence with a question: {length} tokens ({question!r})")
