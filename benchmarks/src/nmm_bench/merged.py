"""Benchmark 4: time per answer of the base, base + unmerged adapter, and the merged model.

The three models stay loaded and are timed in interleaved rounds (`harness.interleaved`): a drift
of the machine's speed during the run then moves every contender, not only the one timed last.
The verdict is the median of per-round "merged time / base time" ratios, with their range.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nmm_bench.common_inputs import require_size, variable_prompts
from nmm_bench.harness import Result, interleaved, round_rows

# The names and the verdict both sizes share live with the full-size run, which this module calls.
from nmm_bench.inference_full import BASE, MERGED, UNMERGED, checks

SMOKE_ROUNDS = 3


def run(size: str, rounds: int = SMOKE_ROUNDS) -> Result:
    """Merged inference must cost what the base costs (target: <= 1.02x the base time)."""
    require_size(size)
    if size == "full":
        from nmm_bench.inference_full import merged

        return merged("qwen2_vl", "full")
    return _smoke(rounds)


def _smoke(rounds: int) -> Result:
    import torch

    from nmm_core.evaluate import GenerationSettings, generate
    from nmm_core.lora import LoraSettings, apply_lora, load_adapter, save_adapter
    from nmm_core.models import load_model
    from nmm_core.task import Task

    examples, task = variable_prompts(32, seed=1), Task(instruction="")
    # every answer exactly 8 tokens: an adapter that changes when EOS comes must not change the timing
    settings = GenerationSettings(batch_size=16, max_new_tokens=8, min_new_tokens=8)
    peft_model = apply_lora(load_model("tiny-qwen2-vl"), LoraSettings(r=16, dropout=0.0))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # a trained adapter is not zero
    # Each contender is its own copy loaded from disk the way a user loads it: the base row runs
    # the plain model's modules, with no LoRA wrapper in the way.
    with tempfile.TemporaryDirectory() as tmp:
        adapter = save_adapter(peft_model, Path(tmp) / "adapter", base_name="tiny-qwen2-vl", family="qwen2_vl")
        contenders = {}
        for label, merge in ((BASE, None), (UNMERGED, False), (MERGED, True)):
            loaded = load_model("tiny-qwen2-vl", padding_side="left")
            model = loaded.model if merge is None else load_adapter(loaded, adapter, merge=merge)

            def answer(model=model, loaded=loaded) -> list[str]:
                return generate(model, loaded.processor, loaded.family, examples, task=task,
                                settings=settings, progress=False)[0]

            contenders[label] = answer
    seconds, answers = interleaved(contenders, rounds=rounds)
    return Result(
        name="merged-inference", size="smoke", reference=BASE,
        settings={"model": "tiny-qwen2-vl", "lora_r": 16, "prompts": len(examples), "batch": 16,
                  "new_tokens": "8, forced", "rounds": rounds,
                  "statistic": "median of interleaved rounds (order rotates) after 1 warm-up each"},
        rows=round_rows(seconds, len(examples), "answers/s", BASE),
        checks=checks(seconds, answers[MERGED], answers[UNMERGED]),
    )
