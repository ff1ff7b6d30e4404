"""Benchmark 2: QLoRA on LLaVA-1.5-7B in nf4, the pathology study's recipe (3 epochs of 1,200).

The full-size model is built with random weights and its language model's linear layers are
quantized to nf4 (double quantization, bf16 compute) as `from_pretrained` with a
`BitsAndBytesConfig` would; the vision tower, projector and LM head stay in bf16. Smoke size
loads the tiny LLaVA twin through `nmm_core.models.load_model(..., quantization="4bit")`.
"""

from __future__ import annotations

from dataclasses import replace

from nmm_bench import fullsize as fs
from nmm_bench.harness import Result

EPOCHS, EXAMPLES = 3, 1200


def _model(peft_defaults: bool, scale: str, dropout: float, *, kbit_upcast: bool = False):
    from nmm_bench import train_full as tf

    if peft_defaults:
        return tf._peft_default("llava", scale, dropout=dropout, quantization="4bit")
    return tf._ours("llava", scale, dropout=dropout, quantization="4bit", gradient_checkpointing=True,
                    kbit_upcast=kbit_upcast)


PLAIN = "plain QLoRA loop (peft defaults, checkpointing)"
CACHED = "nmm QLoRA (checkpointing)"
UNCACHED = "nmm QLoRA, no vision-feature cache (a first epoch)"


def recipe_minutes(first_epoch_per_s: float, later_per_s: float, *, epochs: int = EPOCHS,
                   examples: int = EXAMPLES) -> float:
    """Minutes of `epochs` epochs of `examples`: the first at the uncached rate, the rest at the cached one."""
    return (examples / first_epoch_per_s + (epochs - 1) * examples / later_per_s) / 60


def summarise(rows: list) -> dict:
    """Issue 22's headline: the recipe's minutes from the measured uncached and cached rates, its peak."""
    by = {r.label: r for r in rows}
    ours, first, plain = by[CACHED], by[UNCACHED], by[PLAIN]
    measured = ours.value and first.value
    peaks = [r.extra.get("peak_gib", float("nan")) for r in (ours, first)]
    return {"recipe_minutes": round(recipe_minutes(first.value, ours.value), 2) if measured else None,
            "peak_gib": round(max(peaks), 2) if all(p == p for p in peaks) else None,
            "plain_recipe_minutes": round(recipe_minutes(plain.value, plain.value), 2) if plain.value else None}


def run(size: str) -> Result:
    """Plain QLoRA step vs ours, batch 16 (smoke: batch 2 on the tiny twin, CPU): cached and uncached."""
    import torch

    from nmm_bench import train_full as tf
    from nmm_core.train import TrainSettings

    scale = "full" if size == "full" else "dry"
    if scale == "full" and not torch.cuda.is_available():
        from nmm_bench.common_inputs import require_size

        require_size(size)
    config = tf._config("llava", scale) if scale == "full" else None
    batch = 16 if scale == "full" else 2
    steps = tf.WARM_STEPS + tf.TIMED_STEPS
    rows = []
    fs.reset_memory()
    model = _model(True, scale, 0.05)
    config = config or model.config
    items = fs.make_items("llava", config, scale, batch * tf.WARM_STEPS)
    times, _ = tf.plain_loop(model, items, batch, "cuda" if scale == "full" else "cpu", steps)
    rows.append(tf._row(PLAIN, batch, times, {}))
    del model
    ckpt = TrainSettings(gradient_checkpointing=True, liger="auto", cache_vision_features="auto")
    variants = {CACHED: (ckpt, batch, False),
                UNCACHED: (replace(ckpt, cache_vision_features="off"), batch, False),
                "nmm QLoRA, peft's fp32 upcast of the unquantised weights": (ckpt, batch, True)}
    if scale == "full":
        variants["nmm QLoRA (checkpointing), batch 32"] = (ckpt, 32, False)
    for label, (settings, b, upcast) in variants.items():
        fs.reset_memory()
        model = _model(False, scale, 0.0, kbit_upcast=upcast)
        items = fs.make_items("llava", config, scale, b * tf.WARM_STEPS)
        times, facts = tf.nmm_trainer(model, items, b, "full" if scale == "full" else "dry", steps, settings)
        rows.append(tf._row(label, b, times, facts))
        del model
    summary = summarise(rows)
    return Result(
        name="qlora", size=size, reference=rows[0].label,
        settings={"model": fs.MODEL_NAMES["llava"] if scale == "full" else fs.TWINS["llava"],
                  "quantization": "nf4, double quant, bf16 compute; vision tower, projector, LM head in bf16",
                  "recipe": f"{EPOCHS} epochs of {EXAMPLES}", "batch": batch,
                  "recipe_minutes": f"ours: the first epoch at '{UNCACHED}' (its images are new), the other "
                                    f"{EPOCHS - 1} at '{CACHED}' (the cache serves); plain: every epoch at its "
                                    "one rate (no cache)"},
        rows=rows,
        checks={"recipe minutes, first epoch uncached + later epochs cached": summary["recipe_minutes"],
                "target minutes": 5, "peak GiB (cached and uncached)": summary["peak_gib"], "target GiB": 14},
        summary=summary,
    )
