"""Batched greedy generation and scoring: predictions.jsonl plus one dict of metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmm_core.chat import VlmCollator
from nmm_core.config import Switch, check_switch
from nmm_core.device_pixels import PIXELS_HELP, device_pixels_for, finish_pixels
from nmm_core.errors import ConfigError, DataError, DeviceError
from nmm_core.records import Example
from nmm_core.runs import append_jsonl, atomic_write_text, read_jsonl
from nmm_core.task import Task

log = logging.getLogger(__name__)
OnBatch = Callable[[list[int], list[str], float], None]
DEFAULT_MAX_NEW_TOKENS = 16  # an answer's cap where neither the user nor the model's preset gives one


def answer_length(max_new_tokens: int | None, preset: Any) -> int:
    """The answer cap generation uses: `max_new_tokens` where given, else `preset`'s (a ModelPreset;
    None for a folder or hub id), else 16; eval, predict and validation during training all ask here."""
    if max_new_tokens is not None:
        return max_new_tokens
    return preset.max_new_tokens if preset is not None else DEFAULT_MAX_NEW_TOKENS


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
    pixels_on_device: Switch = field(default="auto", metadata={"help": PIXELS_HELP})

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
             settings: GenerationSettings, progress: bool = True, skip: Collection[int] = (),
             on_batch: OnBatch | None = None) -> tuple[list[str], float]:
    """Greedy answers for `examples` in their order, and the seconds spent generating.

    Indices in `skip` are not generated (their answers stay ""); `on_batch(indices, answers,
    seconds)` sees each batch as soon as it is decoded.
    """
    import torch
    from tqdm.auto import tqdm

    pixels = device_pixels_for(processor, family, settings.pixels_on_device)
    collate = VlmCollator(processor, family, prompt_fn=task.prompt, train=False, device_pixels=pixels)
    # Similar prompt lengths in one batch waste less on left padding.
    skipped = set(skip)
    order = sorted((i for i in range(len(examples)) if i not in skipped), key=lambda i: len(task.prompt(examples[i])))
    answers: list[str] = [""] * len(examples)
    if not order:
        return answers, 0.0
    device = next(model.parameters()).device
    model.eval()
    elapsed = 0.0
    bar = tqdm(total=len(examples), initial=len(examples) - len(order), desc="generating", unit="ex",
               disable=not progress)
    size, start = settings.batch_size, 0
    while start < len(order):
        idx = order[start : start + size]
        try:
            texts, seconds = _generate_batch(model, collate, [examples[i] for i in idx], settings, device, pixels)
        except torch.cuda.OutOfMemoryError:
            if len(idx) == 1:
                raise DeviceError("out of memory generating one answer at a time: use a shorter "
                                  "--generation-max-new-tokens, smaller images, or a 4-bit model") from None
            size = max(1, len(idx) // 2)
            # half the batch for the rest of the set; an interrupted run resumes at any batch size
            log.warning("out of memory at batch %d: continuing at batch %d", len(idx), size)
            torch.cuda.empty_cache()
            continue
        elapsed += seconds
        for i, text in zip(idx, texts, strict=True):
            answers[i] = text
        if on_batch is not None:
            on_batch(idx, texts, seconds)
        bar.update(len(idx))
        start += len(idx)
    bar.close()
    return answers, elapsed


def _generate_batch(model, collate: VlmCollator, examples: Sequence[Example], settings: GenerationSettings,
                    device, pixels) -> tuple[list[str], float]:
    """One batch's greedy answers and the seconds `generate` took."""
    import torch

    batch = collate(examples)
    batch = finish_pixels({k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}, pixels)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **batch,
            max_new_tokens=settings.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            min_new_tokens=settings.min_new_tokens or None,
            do_sample=False,
            pad_token_id=collate.tokenizer.pad_token_id,
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return [t.strip() for t in collate.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)], seconds


def answers_log(out_file: Path) -> Path:
    """Where `evaluate` records answers batch by batch until `out_file` is written (a hidden name,
    so readers of `predictions*.jsonl` never take it for predictions)."""
    return out_file.with_name(f".{out_file.stem}.answers.jsonl")


def write_predictions(result: EvalResult, out_file: Path) -> None:
    """`out_file` with one row per prediction (atomically); its answers log is then dropped."""
    atomic_write_text(out_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.predictions))
    answers_log(out_file).unlink(missing_ok=True)


def previous_answers(out_file: Path, examples: Sequence[Example]) -> dict[int, tuple[str, float]]:
    """Answers an interrupted evaluation already gave, by example index: (raw answer, seconds).

    From `out_file` when it was written in full, else from its answers log. A row whose example
    is not the one at its index means the evaluation set changed: an error, not a guess.
    """
    if out_file.is_file():
        rows = [dict(r, index=n) for n, r in enumerate(read_jsonl(out_file))]
        source = out_file
    elif answers_log(out_file).is_file():
        rows, source = read_jsonl(answers_log(out_file)), answers_log(out_file)
    else:
        return {}
    done = {}
    for row in rows:
        i = row.get("index")
        if not isinstance(i, int) or not 0 <= i < len(examples) or examples[i].id != row.get("id"):
            raise DataError(f"{source}: the answer to example {row.get('id')!r} (position {i}) does not match "
                            "this evaluation set, which changed since the run started: start a new run")
        done[i] = (row["raw_prediction"], float(row.get("seconds", 0.0)))
    return done


def evaluate(model, processor, family, examples: Sequence[Example], *, task: Task,
             settings: GenerationSettings, name: str, out_file: Path | None = None,
             progress: bool = True, resume: bool = False) -> EvalResult:
    """Generate, score with `task`, and write predictions JSONL to `out_file` (atomically).

    While it runs, each batch's answers are appended to `answers_log(out_file)`; with `resume`,
    the answers found there (or in a finished `out_file`) are kept and only the rest generated.
    """
    if not examples:
        raise ConfigError("nothing to evaluate: the evaluation set is empty")
    done = previous_answers(out_file, examples) if resume and out_file is not None else {}
    log_file = answers_log(out_file) if out_file is not None else None
    if log_file is not None and not done:
        log_file.unlink(missing_ok=True)

    def record(indices: list[int], texts: list[str], seconds: float) -> None:
        for i, text in zip(indices, texts, strict=True):
            done[i] = (text, seconds / len(indices))
            if log_file is not None:
                append_jsonl(log_file, {"index": i, "id": examples[i].id, "raw_prediction": text,
                                        "seconds": seconds / len(indices)})

    if len(done) < len(examples):
        if done:
            log.info("%s: %d of %d answers kept from the interrupted run", name, len(done), len(examples))
        generate(model, processor, family, examples, task=task, settings=settings, progress=progress,
                 skip=set(done), on_batch=record)
    result = scored(examples, done, task=task, name=name)
    if out_file is not None:
        write_predictions(result, out_file)
    return result


def scored(examples: Sequence[Example], answers: dict[int, tuple[str, float]], *, task: Task,
           name: str) -> EvalResult:
    """Score raw answers (by example index, with their seconds) into an `EvalResult`."""
    raw = [answers[i][0] for i in range(len(examples))]
    seconds = [answers[i][1] for i in range(len(examples))]
    normalised = [task.normalise(r) for r in raw]
    scores = task.score(normalised, [list(ex.answers) for ex in examples])
    rows = [
        {"id": ex.id, "prompt": task.prompt(ex), "prediction": norm, "raw_prediction": r,
         "references": list(ex.answers), "model": name, "seconds": s, **task.score_one(norm, ex.answers)}
        for ex, r, norm, s in zip(examples, raw, normalised, seconds, strict=True)
    ]
    return EvalResult(name, scores, sum(seconds) / len(examples), rows)
