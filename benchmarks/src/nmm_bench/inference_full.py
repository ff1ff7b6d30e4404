"""Benchmarks 3 and 4 at full size: batched generation, and inference after fine-tuning.

Prompts are synthetic (an image plus a question of 40-100 tokens, so batches need left padding);
generation is greedy with 16 new tokens forced, as in GPU-ANCHORS.md.
"""

from __future__ import annotations

import time
from typing import Any

from nmm_bench import fullsize as fs
from nmm_bench.harness import Result, Row, interleaved, round_rows, sync

NEW_TOKENS, PAD = 16, 0


def _prompts(family: str, config, scale: str, n: int, *, seed: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(seed)
    extra = [rng.randint(0, 60) for _ in range(n)]
    items = fs.make_items(family, config, scale, n, seed=seed, prompt_extra=extra)
    return [fs.prompt_only(it, PAD) for it in items]


def _generate(model, prompts: list[dict[str, Any]], device: str) -> list[list[int]]:
    import torch

    batch = fs.to_device(fs.left_pad(prompts, PAD), device)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                             pad_token_id=PAD)
    return out[:, batch["input_ids"].shape[1]:].tolist()


def _timed(fn) -> tuple[Any, float]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def nmm_order(prompts: list[dict[str, Any]]) -> list[int]:
    """Our evaluator's order: by prompt length, so a batch pads little."""
    return sorted(range(len(prompts)), key=lambda i: len(prompts[i]["input_ids"]))


def generation(family: str = "qwen2_vl", scale: str = "full") -> Result:
    """One at a time vs plain batched `generate` (input order) vs our length-sorted batches."""
    model, config = fs.build_model(family, scale)
    model.eval()
    device = "cuda" if scale == "full" else "cpu"
    n, n_single = (128, 16) if scale == "full" else (8, 4)
    plain_batch = 32 if scale == "full" else 4
    prompts = _prompts(family, config, scale, n, seed=11)
    _generate(model, prompts[:2], device)  # warm-up
    single, t_single = _timed(lambda: [_generate(model, [p], device)[0] for p in prompts[:n_single]])
    rows = [Row("one at a time", n_single / t_single, "answers/s", [t_single], {"prompts": n_single})]
    _, t_plain = _timed(lambda: [row for i in range(0, n, plain_batch)
                                 for row in _generate(model, prompts[i:i + plain_batch], device)])
    rows.append(Row(f"plain batched generate (b={plain_batch}, input order)", n / t_plain, "answers/s", [t_plain]))
    order = nmm_order(prompts)
    agreement = None
    for b in ((32, 64, 128) if scale == "full" else (4, 8)):
        def ours(b=b):
            answers: list[list[int]] = [[]] * n
            for i in range(0, n, b):
                idx = order[i:i + b]
                for j, row in zip(idx, _generate(model, [prompts[k] for k in idx], device), strict=True):
                    answers[j] = row
            return answers
        answers, t = _timed(ours)
        rows.append(Row(f"nmm evaluate order (b={b}, length-sorted)", n / t, "answers/s", [t]))
        if agreement is None:
            agreement = sum(a == s for a, s in zip(answers[:n_single], single, strict=True))
    best = max(rows[2:], key=lambda r: r.value)
    return Result(
        name=f"generation-{family}", size=scale, reference="one at a time",
        settings={"model": fs.MODEL_NAMES[family], "weights": "random, real config", "dtype": str(model.dtype),
                  "prompts": n, "one_at_a_time_prompts": n_single, "new_tokens": f"{NEW_TOKENS}, forced",
                  "prompt_lengths": "image + 40-100 question tokens (left padding in batches)"},
        rows=rows,
        checks={"best batched (ours) vs one at a time": round(best.value / rows[0].value, 1),
                "bf16 greedy tokens equal to one-at-a-time (first prompts)": f"{agreement}/{n_single}",
                "note": "random weights make near-ties common; token identity is an fp32 property "
                        "(asserted at --size smoke)"},
    )


def merged(family: str = "qwen2_vl", scale: str = "full", *, rounds: int | None = None) -> Result:
    """Time per answer of base, base + unmerged LoRA (random, non-zero B) and merged model, all
    resident, timed in interleaved rounds (see `nmm_bench.merged`)."""
    from nmm_bench.merged import BASE, MERGED, UNMERGED, checks

    device = "cuda" if scale == "full" else "cpu"
    batch, batches = (16, 4) if scale == "full" else (4, 1)
    rounds = rounds or (5 if scale == "full" else 3)
    fs.reset_memory()
    models, config = _merged_contenders(family, scale)
    prompts = _prompts(family, config, scale, batch * batches, seed=5)

    def answer(model) -> list[list[int]]:
        return [row for i in range(0, len(prompts), batch) for row in _generate(model, prompts[i:i + batch], device)]

    seconds, answers = interleaved({label: (lambda m=m: answer(m)) for label, m in models.items()}, rounds=rounds)
    return Result(
        name=f"merged-inference-{family}", size=scale, reference=BASE,
        settings={"model": fs.MODEL_NAMES[family], "weights": "random, real config", "batch": batch,
                  "prompts per timing": len(prompts), "lora": "r=16 on the language model's projections",
                  "new_tokens": f"{NEW_TOKENS}, forced", "rounds": rounds,
                  "statistic": "median of interleaved rounds (order rotates) after 1 warm-up each"},
        rows=round_rows(seconds, len(prompts), "answers/s", BASE),
        checks=checks(seconds, answers[MERGED], answers[UNMERGED]),
    )


def _merged_contenders(family: str, scale: str) -> tuple[dict[str, Any], Any]:
    """Three resident models on the same base weights: the base, the base + LoRA, and that LoRA merged.

    The base row is a separate copy rather than the peft model under `disable_adapter()`: disabled,
    every adapted layer still runs peft's wrapper around the base layer, so its time would not be
    exactly the base model's. Qwen2-VL-2B in bf16 is ~4.5 GB, so three copies fit an 80 GB card.
    """
    import copy

    import torch
    from peft import get_peft_model

    from nmm_bench.merged import BASE, MERGED, UNMERGED
    from nmm_bench.train_full import _lora_config

    torch.manual_seed(0)
    model, config = fs.build_model(family, scale)
    base = copy.deepcopy(model)  # get_peft_model wraps `model` in place
    cfg = _lora_config(family, 0.0)
    cfg.init_lora_weights = False  # a trained adapter is not zero
    unmerged = get_peft_model(model, cfg)
    merged = copy.deepcopy(unmerged).merge_and_unload()
    models = {BASE: base, UNMERGED: unmerged, MERGED: merged}
    for m in models.values():
        m.eval()
    return models, config
