"""Benchmark 4 at full size: inference after fine-tuning (base, unmerged adapter, merged).

Prompts are synthetic (an image plus a question of 40-100 tokens, so batches need left padding);
generation is greedy with 16 new tokens forced. Benchmark 3 (generation) is `nmm_bench.generation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nmm_bench import fullsize as fs
from nmm_bench.harness import Result, Seconds, interleaved, ratio_verdict, round_rows, time_ratios

NEW_TOKENS, PAD = 16, 0
BASE, UNMERGED, MERGED = "base", "base + unmerged adapter", "merged"
TARGET = 1.02  # merged time / base time, issue #10 item 4


def checks(seconds: Seconds, merged_answers: Sequence[Any], unmerged_answers: Sequence[Any]
           ) -> dict[str, Any]:
    """The verdict on merged vs base, the unmerged adapter's cost, and whether merging changed answers."""
    verdict = ratio_verdict(time_ratios(seconds, MERGED, BASE), TARGET)
    unmerged = ratio_verdict(time_ratios(seconds, UNMERGED, BASE), TARGET)
    same = sum(m == u for m, u in zip(merged_answers, unmerged_answers, strict=True))
    return {"merged_vs_base_median": verdict["median"], "merged_vs_base_range": verdict["range"],
            "target": f"<= {TARGET}", "target_met": verdict["target_met"], "conclusive": verdict["conclusive"],
            "unmerged_vs_base_median": unmerged["median"], "unmerged_vs_base_range": unmerged["range"],
            "merged answers equal unmerged answers": f"{same}/{len(merged_answers)}"}


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


def merged(family: str = "qwen2_vl", scale: str = "full", *, rounds: int | None = None) -> Result:
    """Time per answer of base, base + unmerged LoRA (random, non-zero B) and merged model, all
    resident, timed in interleaved rounds (see `nmm_bench.merged`)."""
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
