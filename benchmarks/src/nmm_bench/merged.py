"""Benchmark 4: time per answer of the base, base + unmerged adapter, and the merged model."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nmm_bench.common_inputs import require_size, variable_prompts
from nmm_bench.harness import Result, Row, timed


def run(size: str) -> Result:
    """Merged inference must cost what the base costs (target: <= 1.02x the base time)."""
    import torch

    from nmm_core.evaluate import GenerationSettings, generate
    from nmm_core.lora import LoraSettings, apply_lora, load_adapter, save_adapter
    from nmm_core.models import load_model
    from nmm_core.task import Task

    require_size(size)
    if size == "full":
        from nmm_bench import inference_full

        return inference_full.merged("qwen2_vl", "full")
    examples, task = variable_prompts(32, seed=1), Task(instruction="")
    # every answer exactly 8 tokens: an adapter that changes when EOS comes must not change the timing
    settings = GenerationSettings(batch_size=16, max_new_tokens=8, min_new_tokens=8)
    trained = load_model("tiny-qwen2-vl")
    peft_model = apply_lora(trained, LoraSettings(r=16, dropout=0.0))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # a trained adapter is not zero
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        adapter = save_adapter(peft_model, Path(tmp) / "adapter", base_name="tiny-qwen2-vl", family="qwen2_vl")
        for label, merge in (("base", None), ("base + unmerged adapter", False), ("merged", True)):
            loaded = load_model("tiny-qwen2-vl", padding_side="left")
            model = loaded.model if merge is None else load_adapter(loaded, adapter, merge=merge)

            def answer(model=model, loaded=loaded):
                return generate(model, loaded.processor, loaded.family, examples, task=task,
                                settings=settings, progress=False)

            times = timed(answer, warmup=1, repeats=3)
            rows.append(Row(label, len(examples) / min(times), "answers/s", times))
    merged_cost = rows[0].value / rows[2].value
    return Result(
        name="merged-inference", size=size, reference="base",
        settings={"model": "tiny-qwen2-vl", "lora_r": 16, "prompts": len(examples), "batch": 16,
                  "new_tokens": "8, forced", "statistic": "best of 3 after 1 warm-up"},
        rows=rows, checks={"merged time / base time": round(merged_cost, 3), "target": "<= 1.02"},
    )
