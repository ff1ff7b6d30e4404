"""Batched greedy generation and scoring: predictions.jsonl plus one dict of metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmm_core.chat import VlmCollator
from nmm_core.config import check_switch
from nmm_core.device_pixels import PIXELS_HELP, device_pixels_for, finish_pixels
from nmm_core.errors import ConfigError
from nmm_core.records import Example
from nmm_core.runs import atomic_write_text
from nmm_core.task import Task


@dataclass
class GenerationSettings:
    """How answers are generated."""

    batch_size: int = field(default=16, metadata={"help": "prompts per generate() call"})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "answer length cap in tokens (none: the preset's, else 16)"}
    )

    min_new_tokens: int = field(
        default=0, metadata={"help": "force at least this many tokens (timing runs: equal lengths)"}
    )
    pixels_on_device: str = field(default="auto", metadata={"help": PIXELS_HELP})

    def __post_init__(self) -> None:
        if self.batch_size < 1 or (self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise ConfigError("batch_size and max_new_tokens must be at least 1")
        check_switch("pixels_on_device", self.pixels_on_device)


@dataclass
class EvalResult:
    """One model's predictions and scores on one set of examples."""

    name: str
    metrics: dict[str, float]
    seconds_per_example: float
    predictions: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        """Scores and timing, without the predictions."""
        return {"name": self.name, "n": len(self.predictions),
                "seconds_per_example": self.seconds_per_example, **self.metrics}


def generate(model, processor, family, examples: Sequence[Example], *, task: Task,
             settings: GenerationSettings, progress: bool = True) -> tuple[list[str], float]:
    """Greedy answers for `examples` in their order, and the seconds spent generating."""
    import torch
    from tqdm.auto import tqdm

    pixels = device_pixels_for(processor, family, settings.pixels_on_device)
    collate = VlmCollator(processor, family, prompt_fn=task.prompt, train=False, device_pixels=pixels)
    tokenizer = collate.tokenizer
    # Similar prompt lengths in one batch waste less on left padding.
    order = sorted(range(len(examples)), key=lambda i: len(task.prompt(examples[i])))
    answers: list[str] = [""] * len(examples)
    device = next(model.parameters()).device
    model.eval()
    elapsed = 0.0
    bar = tqdm(total=len(examples), desc="generating", unit="ex", disable=not progress)
    for start in range(0, len(order), settings.batch_size):
        idx = order[start : start + settings.batch_size]
        batch = collate([examples[i] for i in idx])
        batch = finish_pixels({k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}, pixels)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens or 16,
                min_new_tokens=settings.min_new_tokens or None,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        for i, text in zip(idx, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=False):
            answers[i] = text.strip()
        bar.update(len(idx))
    bar.close()
    return answers, elapsed


def evaluate(model, processor, family, examples: Sequence[Example], *, task: Task,
             settings: GenerationSettings, name: str, out_file: Path | None = None,
             progress: bool = True) -> EvalResult:
    """Generate, score with `task`, and write predictions JSONL to `out_file` (atomically)."""
    if not examples:
        raise ConfigError("nothing to evaluate: the evaluation set is empty")
    raw, seconds = generate(model, processor, family, examples, task=task, settings=settings,
                            progress=progress)
    normalised = [task.normalise(r) for r in raw]
    references = [list(ex.answers) for ex in examples]
    scores = task.score(normalised, references)
    rows = [
        {"id": ex.id, "prompt": task.prompt(ex), "prediction": norm, "raw_prediction": r,
         "references": list(ex.answers), "model": name, **task.score_one(norm, ex.answers)}
        for ex, r, norm in zip(examples, raw, normalised, strict=False)
    ]
    if out_file is not None:
        atomic_write_text(out_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return EvalResult(name, scores, seconds / len(examples), rows)
