"""Benchmark 1: our training step against the plain `model(**batch).loss.backward()` loop."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from nmm_bench.common_inputs import require_size
from nmm_bench.harness import Result, Row

FULL_BATCH = {"qwen2_vl": (16, 32), "idefics3": (8, 16), "tinyllava": (8, 16), "llava": (8, 16)}


def run_full(scale: str = "full", families: tuple[str, ...] = ("qwen2_vl",)) -> list[Result]:
    """Every contender on each family at real size (scale "dry": the same code on the tiny twins)."""
    import importlib.util

    from nmm_bench import train_full

    results = []
    for family in families:
        batch, big = FULL_BATCH[family] if scale == "full" else (2, 4)
        rows = train_full.run_rows(family, scale, batch, big)
        checks: dict = {}
        liger = scale == "full" and importlib.util.find_spec("liger_kernel") is not None
        try:
            checks["losses, first 20 steps, plain vs fast path (dropout 0)"] = train_full.loss_agreement(
                family, scale, batch, liger=liger)
        except Exception as exc:  # recorded, not fatal: the speed rows still stand
            checks["losses, first 20 steps, plain vs fast path (dropout 0)"] = f"failed: {exc}"
        results.append(Result(
            name=f"train-step-{family}", size=scale if scale == "full" else "dry",
            reference="plain loop (peft defaults)",
            settings={"model": train_full.fs.MODEL_NAMES[family], "weights": "random, real config",
                      "lora": "r=16 alpha=32 on the language model's projections",
                      "batch": batch, "warmup_steps": train_full.WARM_STEPS,
                      "timed_steps": train_full.TIMED_STEPS,
                      "inputs": "one image per example, 40 question + 8 answer tokens, loss on the answer",
                      "epoch_examples": train_full.EPOCH},
            rows=rows, checks=checks))
    return results


def run(size: str) -> Result | list[Result]:
    """Examples per second of each, same model, data, batch and LoRA, steady state."""
    if size == "full":
        import os

        families = tuple(os.environ.get("NMM_BENCH_FAMILIES", "qwen2_vl").split(","))
        return run_full("full", families)
    import torch
    from transformers import TrainerCallback

    from nmm_core.chat import VlmCollator
    from nmm_core.lora import LoraSettings, apply_lora
    from nmm_core.models import load_model
    from nmm_core.task import Task
    from nmm_core.testing.shapes import make_shapes_dataset
    from nmm_core.train import TrainSettings, train

    require_size(size)
    batch, warmup, steps = 8, 2, 10
    lora = LoraSettings(r=16, alpha=32, dropout=0.05)
    examples = make_shapes_dataset(batch * (warmup + steps), seed=3)

    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, lora)
    collate = VlmCollator(loaded.processor, loaded.family)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    plain_times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = model(**collate(examples[i * batch:(i + 1) * batch])).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        if i >= warmup:
            plain_times.append(time.perf_counter() - t0)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.t0)

    clock = StepClock()
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, lora)
    settings = TrainSettings(max_steps=warmup + steps, batch_size=batch, lr=1e-4, save_steps=10**6,
                             logging_steps=10**6)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train(model, loaded.processor, loaded.family, examples, task=Task(instruction=""),
              settings=settings, run_dir=Path(tmp), use_cpu=not torch.cuda.is_available(),
              callbacks=[clock])
        total = time.perf_counter() - started
    ours = clock.times[warmup:]
    return Result(
        name="train-step", size=size, reference="plain loop (peft defaults)",
        settings={"model": "tiny-qwen2-vl", "batch": batch, "lora": vars(lora), "steps": steps,
                  "warmup_steps": warmup, "timed": "data collation + forward + backward + optimiser"},
        rows=[Row("plain loop (peft defaults)", batch * steps / sum(plain_times), "examples/s", plain_times),
              Row("nmm train (transformers Trainer)", batch * steps / sum(ours), "examples/s", ours,
                  {"whole_run_seconds_incl_setup": total})],
    )
