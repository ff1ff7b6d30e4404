"""Benchmark 7: the memory table. Peak GPU memory of our training step per model, at batch 1 and
at a large batch, with and without gradient checkpointing, in LoRA (bf16 base) and QLoRA (nf4).

The value of each row is its peak in GiB (lower is better, so its "ratio" column reads as a
fraction of the first row's peak). A configuration that runs out of memory is recorded as such.
"""

from __future__ import annotations

import os

from nmm_bench import fullsize as fs
from nmm_bench import train_full as tf
from nmm_bench.harness import Result, Row

STEPS = 3  # peak memory is reached by the first optimiser step; a few more for allocator churn
LARGE = {"qwen2_vl": 16, "idefics3": 8, "tinyllava": 8, "llava": 8}


def measure(family: str, scale: str, batch: int, quantization: str | None, checkpointing: bool) -> Row:
    """One configuration's peak; an out-of-memory error is a finding, not a crash."""
    import torch

    from nmm_core.train import TrainSettings

    label = (f"{fs.MODEL_NAMES[family] if scale == 'full' else family}, {'QLoRA' if quantization else 'LoRA'}, "
             f"batch {batch}{', checkpointing' if checkpointing else ''}")
    fs.reset_memory()
    try:
        model = tf._ours(family, scale, quantization=quantization, gradient_checkpointing=checkpointing)
        items = fs.make_items(family, tf._config(family, scale), scale, batch)
        times, _ = tf.nmm_trainer(model, items, batch, scale, STEPS,
                                  TrainSettings(gradient_checkpointing=checkpointing))
        del model
        return Row(label, fs.peak_gib(), "GiB", times, {"fits_24_gib": fs.peak_gib() <= 22.0})
    except torch.cuda.OutOfMemoryError:
        return Row(label, float("inf"), "GiB", [], {"error": "out of memory on this card"})
    finally:
        fs.reset_memory()


def run(size: str) -> Result:
    """Every family (NMM_BENCH_FAMILIES narrows it) x LoRA/QLoRA x checkpointing x batch 1/large."""
    scale = "full" if size == "full" else "dry"
    if scale == "full":
        from nmm_bench.common_inputs import require_size

        require_size(size)
    families = tuple(os.environ.get("NMM_BENCH_FAMILIES", ",".join(LARGE)).split(","))
    if scale == "dry":
        families = families[:1]
    rows = []
    for family in families:
        for quantization in (None, "4bit"):
            for checkpointing in (False, True):
                for batch in (1, LARGE[family] if scale == "full" else 2):
                    rows.append(measure(family, scale, batch, quantization, checkpointing))
                    print(f"  {rows[-1].label}: {rows[-1].value:.1f} GiB", flush=True)
    return Result(name="memory", size=size, reference=rows[0].label,
                  settings={"steps": STEPS, "defaults": "nmm's (answer-only logits, feature cache, Liger on CUDA)",
                            "fits": "a row fits a 24 GB card if its peak is 22 GiB or less (CUDA context, "
                                    "fragmentation)", "note": "peak GiB is nan on CPU (no CUDA allocator)"},
                  rows=rows)
