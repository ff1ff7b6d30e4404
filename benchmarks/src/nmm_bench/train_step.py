"""Benchmark 1: our training step against the plain `model(**batch).loss.backward()` loop.

Every run measures nmm's defaults twice beside the plain loop: in steady state, where the
vision-feature cache serves (from the second epoch on), and with the cache off, which is what each
step of a first epoch costs (the images are new, so the tower runs). `summary` states both ratios.
`smoke` runs those three contenders on the tiny Qwen2-VL twin on CPU; `full` every contender on
each family of `NMM_BENCH_FAMILIES` at real size (scale "dry": the full set on the twins).
"""

from __future__ import annotations

from typing import Any

from nmm_bench.common_inputs import require_size
from nmm_bench.harness import Result, Row

FULL_BATCH = {"qwen2_vl": (16, 32), "idefics3": (8, 16), "tinyllava": (8, 16), "llava": (8, 16)}
PLAIN = "plain loop (peft defaults)"
STEADY = "nmm defaults (+ liger + cache)"
FIRST_EPOCH = "nmm defaults, no vision-feature cache (a first epoch)"
SMOKE_CONTENDERS = {PLAIN, STEADY, FIRST_EPOCH}


def summarise(rows: list[Row]) -> dict[str, Any]:
    """Issue 22's headline: first-epoch and steady-state ratios against the plain loop, and peaks."""
    by = {r.label: r for r in rows}
    plain = by[PLAIN]

    def ratio(label: str) -> float | None:
        row = by.get(label)
        return round(row.value / plain.value, 3) if row and row.value and plain.value else None

    def peak(row: Row | None) -> float | None:
        value = row.extra.get("peak_gib") if row else None
        return round(value, 2) if isinstance(value, float) and value == value else None  # nan on CPU

    return {"first_epoch_ratio": ratio(FIRST_EPOCH), "steady_ratio": ratio(STEADY),
            "peak_gib": peak(by.get(STEADY)), "plain_peak_gib": peak(plain)}


def run_full(scale: str = "full", families: tuple[str, ...] = ("qwen2_vl",), only: set[str] | None = None,
             size: str | None = None) -> list[Result]:
    """The contenders (all, or `only`) on each family (scale "dry": the same code on the tiny twins)."""
    import importlib.util

    from nmm_bench import train_full

    results = []
    for family in families:
        batch, big = FULL_BATCH[family] if scale == "full" else (2, 4)
        rows = train_full.run_rows(family, scale, batch, big, only=only)
        checks: dict = {}
        liger = scale == "full" and importlib.util.find_spec("liger_kernel") is not None
        try:
            checks["losses, first 20 steps, plain vs fast path (dropout 0)"] = train_full.loss_agreement(
                family, scale, batch, liger=liger)
        except Exception as exc:  # recorded, not fatal: the speed rows still stand
            checks["losses, first 20 steps, plain vs fast path (dropout 0)"] = f"failed: {exc}"
        results.append(Result(
            name=f"train-step-{family}", size=size or (scale if scale == "full" else "dry"), reference=PLAIN,
            settings={"model": train_full.fs.MODEL_NAMES[family] if scale == "full" else train_full.fs.TWINS[family],
                      "weights": "random, real config" if scale == "full" else "the tiny twin's",
                      "lora": "r=16 alpha=32 on the language model's projections",
                      "batch": batch, "warmup_steps": train_full.WARM_STEPS,
                      "timed_steps": train_full.TIMED_STEPS,
                      "inputs": "one image per example, 40 question + 8 answer tokens, loss on the answer",
                      "epoch_examples": train_full.EPOCH,
                      "steady state": f"'{STEADY}': the first pass over the data ({train_full.WARM_STEPS} steps) "
                                      "fills the cache untimed, the timed steps are cache hits",
                      "first epoch": f"'{FIRST_EPOCH}': the same steps with the cache off, i.e. every step of "
                                     "an epoch whose images are new (the cache's own store is not in it)"},
            rows=rows, checks=checks, summary=summarise(rows)))
    return results


def run(size: str) -> list[Result]:
    """Examples per second of each, same model, data, batch and LoRA: first epoch and steady state."""
    require_size(size)
    if size == "full":
        import os

        families = tuple(os.environ.get("NMM_BENCH_FAMILIES", "qwen2_vl").split(","))
        return run_full("full", families)
    (result,) = run_full("dry", ("qwen2_vl",), only=SMOKE_CONTENDERS, size=size)
    result.name = "train-step"
    return [result]
