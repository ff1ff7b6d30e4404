"""Benchmark 3: nmm's own `evaluate` against plain batched `generate` at the same batch sizes.

Contenders, on the same model and examples: one example at a time (`model.generate` per prompt,
the reference); for each batch size, plain batched `generate` (the processor's batch, left
padding, input order, decoded) and nmm's `evaluate` itself (length-sorted batches, decoding and
scoring included), timed in interleaved rounds. The headline is the equal-batch ratio at nmm's
default batch (`GenerationSettings().batch_size`); `best_ratio` is nmm at its fastest batch
against one at a time.

smoke: the tiny Qwen2-VL twin in fp32 on CPU (batched answers must equal one-at-a-time answers).
full: Qwen2-VL-2B at real size with random weights in bf16 on CUDA, fed 504x672 charts through
its real image settings and a locally trained tokenizer (`qwen2_vl_processor`); bf16 agreement
with one-at-a-time is reported, not asserted. `dry`: the full path's code on the twin (tests).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from nmm_bench.common_inputs import require_size
from nmm_bench.harness import Result, Row, interleaved

SPECIAL_IDS = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
               "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}


@dataclass
class Setup:
    """What one size measures: model, processor, examples and the batch sizes tried."""

    model: Any
    processor: Any
    family: Any
    examples: list
    model_name: str
    new_tokens: int
    batches: tuple[int, ...]
    one_at_a_time: int  # prompts answered one at a time (the reference)
    rounds: int
    exact: bool  # fp32: batched answers must equal one-at-a-time answers
    default: int  # nmm's default batch (dry: a stand-in among its small batches)


def align_special_tokens(model, tokenizer) -> None:
    """Point the model's image and vision-marker ids at `tokenizer`'s (a stand-in for the real one)."""
    for attr, token in SPECIAL_IDS.items():
        setattr(model.config, attr, tokenizer.convert_tokens_to_ids(token))


def _setup(size: str) -> Setup:
    from nmm_core.evaluate import GenerationSettings
    from nmm_core.families import get_family
    from nmm_core.models import load_model

    default = GenerationSettings().batch_size
    if size == "full":
        from nmm_bench import fullsize as fs
        from nmm_bench.common_inputs import chart_examples, qwen2_vl_processor, with_filler

        model, _ = fs.build_model("qwen2_vl", "full")
        model.config.use_cache = True  # build_model turns it off for training; generation keeps its KV cache
        processor = qwen2_vl_processor()
        align_special_tokens(model, processor.tokenizer)
        processor.tokenizer.padding_side = "left"
        return Setup(model.eval(), processor, get_family("qwen2_vl"), with_filler(chart_examples(128, seed=11)),
                     fs.MODEL_NAMES["qwen2_vl"], 16, (default, 32, 64, 128), 16, 2, False, default)
    from nmm_bench.common_inputs import variable_prompts

    loaded = load_model("tiny-qwen2-vl", dtype="float32", padding_side="left")
    n, batches, rounds = (32, (8, default, 32), 3) if size == "smoke" else (8, (4, 8), 3)
    return Setup(loaded.model.eval(), loaded.processor, loaded.family, variable_prompts(n), "tiny-qwen2-vl", 8,
                 batches, n, rounds, True, default if default in batches else batches[0])


def _plain(setup: Setup, examples: list) -> list[str]:
    """Plain batched `generate`: the processor's batch in input order, greedy, decoded."""
    import torch

    from nmm_core.chat import VlmCollator

    collate = VlmCollator(setup.processor, setup.family, train=False)
    device = next(setup.model.parameters()).device
    inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in collate(examples).items()}
    with torch.inference_mode():
        out = setup.model.generate(**inputs, max_new_tokens=setup.new_tokens, min_new_tokens=setup.new_tokens,
                                   do_sample=False, pad_token_id=collate.tokenizer.pad_token_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in collate.tokenizer.batch_decode(new, skip_special_tokens=True)]


def _plain_batched(setup: Setup, batch: int) -> list[str]:
    ex = setup.examples
    return [a for i in range(0, len(ex), batch) for a in _plain(setup, ex[i:i + batch])]


def _nmm(setup: Setup, batch: int) -> list[str]:
    """nmm's `evaluate`, whole: its ordering, collation, generation, decoding and scoring."""
    from nmm_core.evaluate import GenerationSettings, evaluate
    from nmm_core.task import Task

    settings = GenerationSettings(batch_size=batch, max_new_tokens=setup.new_tokens,
                                  min_new_tokens=setup.new_tokens)
    result = evaluate(setup.model, setup.processor, setup.family, setup.examples, task=Task(instruction=""),
                      settings=settings, name="nmm", progress=False)
    return [p["raw_prediction"] for p in result.predictions]


def _timed_once(fn) -> tuple[Any, float]:
    from nmm_bench.harness import sync

    fn()  # warm-up
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def plain_label(batch: int) -> str:
    return f"plain batched generate (b={batch}, input order)"


def nmm_label(batch: int) -> str:
    return f"nmm evaluate (b={batch}, length-sorted)"


def summarise(rows: list[Row], default: int) -> dict[str, Any]:
    """Issue 22's headline: nmm / plain at nmm's default batch, and nmm's best batch / one at a time."""
    by = {r.label: r.value for r in rows}
    ours = {int(r.label.split("b=")[1].split(",")[0]): r.value for r in rows if r.label.startswith("nmm evaluate")}
    best = max(ours, key=ours.get)
    return {"equal_batch_ratio": round(ours[default] / by[plain_label(default)], 3),
            "best_ratio": round(ours[best] / by["one at a time"], 2),
            "default_batch": default, "best_batch": best}


def run(size: str) -> Result:
    """Answers per second of each way; in fp32 batched answers must equal one-at-a-time answers."""
    if size in ("smoke", "full"):
        require_size(size)
    setup = _setup(size)
    default = setup.default
    n, k = len(setup.examples), setup.one_at_a_time
    single, t_single = _timed_once(lambda: [_plain(setup, [ex])[0] for ex in setup.examples[:k]])
    rows = [Row("one at a time", k / t_single, "answers/s", [t_single], {"prompts": k})]
    checks: dict[str, Any] = {}
    for b in setup.batches:
        seconds, answers = interleaved({plain_label(b): lambda b=b: _plain_batched(setup, b),
                                        nmm_label(b): lambda b=b: _nmm(setup, b)}, rounds=setup.rounds)
        for label, times in seconds.items():
            rows.append(Row(label, n / statistics.median(times), "answers/s", times, {"batch": b}))
        for label, got in answers.items():
            same = sum(a == s for a, s in zip(got[:k], single, strict=True))
            checks[f"{label}: answers equal one-at-a-time (first {k})"] = f"{same}/{k}"
            # fp32 batched greedy decoding must not change a single answer (a padding bug would)
            assert not setup.exact or same == k, f"{label}: answers differ from one-at-a-time in {k - same} of {k}"
    summary = summarise(rows, default)
    checks["equal-batch ratio (nmm evaluate / plain generate) at each batch"] = {
        b: round(next(r.value for r in rows if r.label == nmm_label(b))
                 / next(r.value for r in rows if r.label == plain_label(b)), 3) for b in setup.batches}
    return Result(
        name="generation" if size == "smoke" else f"generation-{setup.family.name}", size=size,
        reference="one at a time",
        settings={"model": setup.model_name, "dtype": str(setup.model.dtype), "prompts": n,
                  "one_at_a_time_prompts": k, "batches": list(setup.batches), "default_batch": default,
                  "new_tokens": f"{setup.new_tokens}, forced", "rounds": setup.rounds,
                  "prompt_lengths": "image + question with 0-3 filler sentences (left padding in batches)",
                  "timed": "whole calls: collation, generation, decoding (and nmm's scoring); "
                           "value = prompts / median seconds of interleaved rounds after one warm-up each"},
        rows=rows, checks=checks, summary=summary,
    )
