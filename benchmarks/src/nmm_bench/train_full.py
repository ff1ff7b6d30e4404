"""Benchmark 1 at full size: our trainer against the plain loop, `Trainer` and TRL's `SFTTrainer`.

Same model (real architecture, random weights), same synthetic batches, same LoRA (r=16, alpha 32
on the language model's projections) for every contender. Steady state: the first pass over the
data (one "epoch" of `WARM_STEPS` steps, which also fills the vision-feature cache) is warm-up,
the next `TIMED_STEPS` steps are timed. Each lever of ours is measured alone and together.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from nmm_bench import fullsize as fs
from nmm_bench.harness import Row, sync

log = logging.getLogger(__name__)
WARM_STEPS, TIMED_STEPS, LOSS_STEPS = 4, 8, 20
EPOCH = 1200  # the studies' training-set size


def _lora_config(family: str, dropout: float):
    from peft import LoraConfig

    from nmm_core.families import get_family

    fam = get_family("llava" if family == "tinyllava" else family)
    return LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules=fam.lora_target_regex(),
                      task_type="CAUSAL_LM")


def _peft_default(family: str, scale: str, *, dropout: float = 0.05, seed: int = 0, quantization: str | None = None):
    """The model with LoRA as a plain peft user gets it (fp32 adapters on a bf16 base; with
    `quantization`, peft's k-bit preparation with gradient checkpointing, the QLoRA recipe)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    torch.manual_seed(seed)
    model = fs.build_quantized(family, scale) if quantization else fs.build_model(family, scale)[0]
    torch.manual_seed(seed + 1)
    if quantization:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return get_peft_model(model, _lora_config(family, dropout))


def _ours(family: str, scale: str, *, precision: str = "fp32-master", dropout: float = 0.0, seed: int = 0,
          quantization: str | None = None, gradient_checkpointing: bool = False, kbit_upcast: bool = False):
    import torch

    from nmm_core.families import get_family
    from nmm_core.lora import LoraSettings, apply_lora
    from nmm_core.models import LoadedModel, ModelSource

    torch.manual_seed(seed)
    model = fs.build_quantized(family, scale) if quantization else fs.build_model(family, scale)[0]
    fam = get_family(family)
    loaded = LoadedModel(model, None, fam, ModelSource(f"{family} ({scale})", "", None, fam, None), quantization)
    torch.manual_seed(seed + 1)
    return apply_lora(loaded, LoraSettings(r=16, alpha=32, dropout=dropout, precision=precision,
                                           kbit_upcast=kbit_upcast),
                      gradient_checkpointing=gradient_checkpointing)


def _device(scale: str) -> str:
    return "cuda" if scale == "full" else "cpu"


def plain_loop(model, items: list[fs.Item], batch: int, device: str, steps: int) -> tuple[list[float], list[float]]:
    """(step seconds, losses): `model(**batch).loss.backward()`, AdamW; host batches copied each step."""
    import torch

    batches = [fs.collate(items[i:i + batch]) for i in range(0, len(items), batch)]
    if device == "cuda":
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    times, losses = [], []
    for step in range(steps):
        sync()
        t0 = time.perf_counter()
        loss = model(**fs.to_device(batches[step % len(batches)], device)).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    return times, losses


def fast_loop(model, items: list[fs.Item], batch: int, device: str, steps: int, *, liger: bool,
              compile_layers: bool) -> list[float]:
    """Losses of our fast path's math (autocast, answer-only logits, kernels) in the plain loop's order."""
    import torch

    from nmm_core.answer_loss import answer_only_loss
    from nmm_core.kernels import apply_liger
    from nmm_core.kernels import compile_layers as compile_each
    from nmm_core.lora import needs_autocast

    if liger:
        apply_liger(model)
    if compile_layers:
        compile_each(model)
    batches = [fs.collate(items[i:i + batch]) for i in range(0, len(items), batch)]
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    losses = []
    autocast = device == "cuda" and needs_autocast(model)  # as the trainer decides
    for step in range(steps):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = answer_only_loss(model, fs.to_device(batches[step % len(batches)], device))
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


class _StepClock:
    def __init__(self) -> None:
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                sync()
                clock.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                sync()
                clock.times.append(time.perf_counter() - clock.t0)

        self.times: list[float] = []
        self.t0 = 0.0
        self.callback = Callback()


def _collator(items):
    return fs.collate(items)


def hf_trainer(model, items, batch: int, scale: str, steps: int) -> tuple[list[float], float]:
    """transformers' `Trainer`, its defaults (model's own loss, bf16 autocast, no workers)."""
    from transformers import Trainer, TrainingArguments

    clock = _StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps,
                                 learning_rate=2e-4, bf16=scale == "full", use_cpu=scale != "full",
                                 report_to="none", save_strategy="no", logging_steps=10 ** 6,
                                 remove_unused_columns=False)
        trainer = Trainer(model=model, args=args, train_dataset=fs.Items(items), data_collator=_collator,
                          callbacks=[clock.callback])
        t0 = time.perf_counter()
        trainer.train()
        return clock.times, time.perf_counter() - t0


def sft_trainer(model, items, batch: int, scale: str, steps: int) -> tuple[list[float], float]:
    """TRL's `SFTTrainer` on the same ready-made batches (its dataset preparation skipped)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    clock = _StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps, learning_rate=2e-4,
                         bf16=scale == "full", use_cpu=scale != "full", report_to="none", save_strategy="no",
                         logging_steps=10 ** 6, remove_unused_columns=False,
                         dataset_kwargs={"skip_prepare_dataset": True})
        # SFTTrainer takes a `datasets.Dataset`: rows carry an index, the collator the same tensors
        rows = Dataset.from_dict({"idx": list(range(len(items)))})
        # it also wants a tokenizer (for padding only here: the collator pads nothing)
        from nmm_core.testing.tokenizer import build_bpe_tokenizer

        tokenizer = build_bpe_tokenizer(special_tokens=["<pad>", "<eos>"], pad_token="<pad>", eos_token="<eos>")
        trainer = SFTTrainer(model=model, args=args, train_dataset=rows, callbacks=[clock.callback],
                             processing_class=tokenizer,
                             data_collator=lambda batch: fs.collate([items[r["idx"]] for r in batch]))
        t0 = time.perf_counter()
        trainer.train()
        return clock.times, time.perf_counter() - t0


def nmm_trainer(model, items, batch: int, scale: str, steps: int, settings) -> tuple[list[float], dict[str, Any]]:
    """Our trainer (`nmm_core.train.make_trainer`) with the given speed switches: step seconds, and
    the whole run's seconds with the vision-feature cache's hits and misses (None: no cache)."""
    from nmm_core.train import make_trainer, release_speedups

    clock = _StepClock()
    settings = replace(settings, batch_size=batch, max_steps=steps, lr=2e-4, save_steps=10 ** 6,
                       logging_steps=10 ** 6)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = make_trainer(model, fs.Items(items), _collator, settings=settings, run_dir=Path(tmp),
                               bf16=scale == "full", use_cpu=scale != "full", callbacks=[clock.callback])
        trainer.args.save_strategy = "no"
        try:
            trainer.train()
            cache = trainer.feature_cache
            facts = {"whole_run_s": time.perf_counter() - t0, "cache_hits": cache and cache.hits,
                     "cache_misses": cache and cache.misses}
        finally:
            release_speedups(trainer)
        return clock.times, facts


def _row(label: str, batch: int, times: list[float], extra: dict[str, Any]) -> Row:
    steady = times[WARM_STEPS:] or times
    per_s = batch * len(steady) / sum(steady)
    return Row(label, per_s, "examples/s", times,
               {"batch": batch, "s_per_step": sum(steady) / len(steady), "epoch_s": EPOCH / per_s,
                "first_pass_s": sum(times[:WARM_STEPS]), "peak_gib": fs.peak_gib(), **extra})


def contenders(family: str, scale: str, batch: int, big_batch: int) -> list[tuple[str, Any]]:
    """(label, thunk returning a Row) for every contender, in an order where patches cannot leak:
    Liger patches the model classes for the rest of the process, so its rows come last."""
    from nmm_core.train import TrainSettings

    steps = WARM_STEPS + TIMED_STEPS
    base = TrainSettings(answer_only_logits=False, liger="off", cache_vision_features="off")
    on = replace(base, answer_only_logits=True)
    levers = {
        "nmm: trainer, peft-default adapters": (replace(base), "fp32", 0.05, batch),
        "nmm: + fp32-master adapters, dropout 0": (replace(base), "fp32-master", 0.0, batch),
        "nmm: + answer-only logits": (on, "fp32-master", 0.0, batch),
        "nmm: + vision-feature cache": (replace(on, cache_vision_features="on"), "fp32-master", 0.0, batch),
        "nmm: bf16 adapters instead": (replace(on, cache_vision_features="on"), "bf16", 0.0, batch),
        "nmm: + liger, no cache (a first epoch)": (replace(on, liger="on"), "fp32-master", 0.0, batch),
        "nmm defaults (+ liger + cache)": (TrainSettings(), "fp32-master", 0.0, batch),
        "nmm defaults, fp32-autocast adapters (model-wide autocast)": (TrainSettings(), "fp32-autocast", 0.0, batch),
        "nmm defaults, no vision-feature cache (a first epoch)": (TrainSettings(cache_vision_features="off"),
                                                                  "fp32-master", 0.0, batch),
        f"nmm defaults, batch {big_batch}": (TrainSettings(), "fp32-master", 0.0, big_batch),
        "nmm defaults + compile": (TrainSettings(compile_layers=True), "fp32-master", 0.0, batch),
    }
    if family != "qwen2_vl":  # the full lever matrix once; the defaults on every other family
        levers = {k: v for k, v in levers.items() if k.startswith("nmm defaults") and "compile" not in k}
    device = _device(scale)

    def plain() -> Row:
        items = fs.make_items(family, _config(family, scale), scale, batch * WARM_STEPS)
        times, _ = plain_loop(_peft_default(family, scale), items, batch, device, steps)
        return _row("plain loop (peft defaults)", batch, times, {})

    def trainer_row(kind: str):
        def go() -> Row:
            items = fs.make_items(family, _config(family, scale), scale, batch * WARM_STEPS)
            fn = hf_trainer if kind == "trainer" else sft_trainer
            times, total = fn(_peft_default(family, scale), items, batch, scale, steps)
            label = "transformers Trainer" if kind == "trainer" else "TRL SFTTrainer"
            return _row(label, batch, times, {"whole_run_s": total})
        return go

    def ours(label: str, settings, precision: str, dropout: float, b: int):
        def go() -> Row:
            items = fs.make_items(family, _config(family, scale), scale, b * WARM_STEPS)
            model = _ours(family, scale, precision=precision, dropout=dropout)
            times, facts = nmm_trainer(model, items, b, scale, steps, settings)
            return _row(label, b, times, {**facts, "precision": precision, "dropout": dropout,
                                          "settings": {k: getattr(settings, k) for k in (
                                              "answer_only_logits", "cache_vision_features", "liger",
                                              "compile_layers")}})
        return go

    out = [("plain loop (peft defaults)", plain), ("transformers Trainer", trainer_row("trainer"))]
    if family == "qwen2_vl":
        out.append(("TRL SFTTrainer", trainer_row("sft")))
    out += [(label, ours(label, *spec)) for label, spec in levers.items()]
    return out


_CONFIGS: dict[tuple[str, str], Any] = {}


def _config(family: str, scale: str):
    if (family, scale) not in _CONFIGS:
        if scale == "full":
            from nmm_core.fullsize import reference_config

            _CONFIGS[family, scale] = reference_config(family)
        else:
            _CONFIGS[family, scale] = fs.build_model(family, scale)[1]
    return _CONFIGS[family, scale]


def run_rows(family: str, scale: str, batch: int, big_batch: int, only: set[str] | None = None) -> list[Row]:
    """Every contender's row; one that fails is recorded with its error, the rest still run."""
    rows = []
    skip = set(os.environ.get("NMM_BENCH_SKIP", "").split(","))  # labels to leave out of a run
    for label, go in contenders(family, scale, batch, big_batch):
        if (only and label not in only) or label in skip:
            continue
        fs.reset_memory()
        try:
            rows.append(go())
        except Exception as exc:  # a failing contender is a finding, not the end of the run
            log.error("%s failed: %s", label, exc)
            rows.append(Row(label, 0.0, "examples/s", [], {"error": f"{type(exc).__name__}: {exc}",
                                                           "trace": traceback.format_exc()[-2000:]}))
        print(f"  {family} {label}: {rows[-1].value:.2f} examples/s {rows[-1].extra.get('peak_gib', '')}",
              flush=True)
    return rows


def _no_dropout(model):
    # The model's own dropout (Phi-2: resid_pdrop 0.1) draws different masks in the two loops
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def loss_agreement(family: str, scale: str, batch: int, *, liger: bool) -> dict[str, Any]:
    """Losses of the first LOSS_STEPS steps, plain loop vs our fast path, LoRA dropout off in both."""
    device = _device(scale)
    items = fs.make_items(family, _config(family, scale), scale, batch * 4, seed=7)
    fs.reset_memory()
    _, plain = plain_loop(_no_dropout(_peft_default(family, scale, dropout=0.0)), items, batch, device, LOSS_STEPS)
    fs.reset_memory()
    fast = fast_loop(_no_dropout(_ours(family, scale)), items, batch, device, LOSS_STEPS, liger=liger,
                     compile_layers=False)
    diffs = [abs(a - b) for a, b in zip(plain, fast, strict=True)]
    return {"plain": plain, "fast": fast, "max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs)}
