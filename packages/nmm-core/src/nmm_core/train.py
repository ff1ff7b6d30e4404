"""The one fine-tuning entry point for every VLM domain, on transformers' `Trainer`.

`Trainer` brings checkpointing, resume, gradient accumulation and checkpointing, logging and
`accelerate launch` multi-GPU; we bring the collator (answer-only labels), the run folder and
the JSONL log. Domains change what goes in (examples, task, preset), never the loop.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmm_core.chat import VlmCollator
from nmm_core.checkpoints import (
    LOSS_TALLY,
    best_checkpoint,
    checkpoint_step,
    keep_rows_until,
    last_checkpoint,
    read_tally,
)
from nmm_core.device_pixels import device_pixels_for, finish_pixels
from nmm_core.errors import ConfigError
from nmm_core.feature_cache import EXAMPLE_IDS, WithIds, cache_for_training, release_speedups
from nmm_core.metric import Metric
from nmm_core.records import Example
from nmm_core.runs import INCOMPLETE_SUFFIX, append_jsonl, atomic_write_json
from nmm_core.task import Task
from nmm_core.train_settings import TrainSettings
from nmm_core.validation import Answer, evaluation_arguments, generation_metric

log = logging.getLogger(__name__)


class _ExampleDataset:
    """A map-style dataset over records; the collator does all the processing."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


_IN_RUNNING_FOLDER = re.compile(re.escape(INCOMPLETE_SUFFIX) + r"(?=[/\\]|$)")


def completed_args(args: Any) -> Any:
    """A copy of TrainingArguments whose paths name the run folder as it is once complete (no `.incomplete`)."""
    import copy
    import dataclasses

    recorded = copy.copy(args)
    for f in dataclasses.fields(args):
        value = getattr(args, f.name, None)
        if isinstance(value, str) and INCOMPLETE_SUFFIX in value:
            setattr(recorded, f.name, _IN_RUNNING_FOLDER.sub("", value))
    return recorded


def _tensorboard_callback(writer: Any) -> Any:
    """transformers' TensorBoardCallback, logging the arguments with the completed run's paths."""
    from transformers.integrations import TensorBoardCallback

    class CompletedPathsTensorBoard(TensorBoardCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            super().on_train_begin(completed_args(args), state, control, **kwargs)

    return CompletedPathsTensorBoard(writer)


def _trainer_class():
    import torch
    from transformers import Trainer
    from transformers.trainer import TRAINING_ARGS_NAME

    class NmmTrainer(Trainer):
        """`Trainer` with answer-only logits and the vision-feature cache as switches."""

        def __init__(self, *args, answer_only: bool = True, feature_cache=None, lengths=None,
                     device_pixels=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.answer_only = answer_only
            self.device_pixels = device_pixels
            self.feature_cache = feature_cache
            self.lengths = lengths
            self.resume_tally: dict[str, float] | None = None  # a checkpoint's loss sums, restored at start
            self.resume_best: str | None = None  # the best checkpoint so far, in this run folder, restored at start
            self.add_callback(_tally_restore(self))
            if answer_only:
                # Our loss takes num_items_in_batch: Trainer must count answer tokens across the
                # accumulated micro-batches and must not divide by the accumulation steps again.
                self.model_accepts_loss_kwargs = True

        def _get_train_sampler(self, *args, **kwargs):
            if self.lengths is None:
                return super()._get_train_sampler(*args, **kwargs)
            # shuffled, then sorted by length within mega-batches of 50 batches (transformers' own)
            return _epoch_seeded_length_sampler()(
                self._train_batch_size * self.args.gradient_accumulation_steps,
                lengths=self.lengths, seed=self.args.seed)

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            if self.args.should_save:  # written again: Trainer's copy names the `.incomplete` folder
                folder = Path(output_dir if output_dir is not None else self.args.output_dir)
                torch.save(completed_args(self.args), folder / TRAINING_ARGS_NAME)

        def _save_checkpoint(self, model, trial):
            # Trainer keeps its running loss sums in memory only; saved with the checkpoint (before
            # the trainer state that marks it complete), a resumed run logs as if it never stopped
            from transformers.trainer_pt_utils import nested_gather

            pending = nested_gather(self._tr_loss, self.args.parallel_mode).mean().item()
            if self.args.should_save:
                folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
                atomic_write_json(folder / LOSS_TALLY, {"total": self._total_loss_scalar, "pending": pending,
                                                        "last_logged": self._globalstep_last_logged})
            super()._save_checkpoint(model, trial)

        def log(self, logs, start_time=None):
            if "train_loss" in logs and self.state.global_step:
                # Trainer's own is the mean over this call's steps; a resumed run's covers them all
                logs["train_loss"] = self._total_loss_scalar / self.state.global_step
            super().log(logs, start_time)

        def train(self, *args, **kwargs):
            if not self.args.auto_find_batch_size:
                return super().train(*args, **kwargs)
            from nmm_core.auto_batch import halving_on_oom

            with halving_on_oom():
                return super().train(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            from nmm_core.answer_loss import answer_only_loss

            inputs = finish_pixels(dict(inputs), self.device_pixels)
            ids = inputs.pop(EXAMPLE_IDS, None)
            if self.feature_cache is not None:
                self.feature_cache.keys = ids
            try:
                if not self.answer_only:
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
                loss, outputs = answer_only_loss(model, inputs, num_items_in_batch)
            finally:
                if self.feature_cache is not None:
                    self.feature_cache.keys = None
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as Trainer does for model losses
            return (loss, outputs) if return_outputs else loss

    return NmmTrainer


def _tally_restore(trainer):
    """A callback that puts a checkpoint's loss sums back after Trainer zeroes them in `train()`."""
    from transformers import TrainerCallback

    class TallyRestore(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if trainer.resume_best is not None:
                # the state's path is where the folder was (`X.incomplete`, another working directory)
                state.best_model_checkpoint = trainer.resume_best
            if trainer.resume_tally is not None:
                trainer._total_loss_scalar = float(trainer.resume_tally["total"])
                trainer._tr_loss += float(trainer.resume_tally["pending"])
                trainer._globalstep_last_logged = int(trainer.resume_tally["last_logged"])

    return TallyRestore()


def _epoch_seeded_length_sampler():
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochSeededLengthSampler(LengthGroupedSampler):
        """transformers' length-grouped order, drawn from (seed, epoch): a resumed run's epochs get the
        same orders as the uninterrupted run's (one generator carried across epochs would restart)."""

        def __init__(self, batch_size: int, *, lengths, seed: int) -> None:
            import torch

            super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
            self.seed = seed
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            self.generator.manual_seed(self.seed + epoch)

    return EpochSeededLengthSampler


def _workers(requested: int, use_cpu: bool) -> int:
    import os

    import torch

    if requested >= 0:
        return requested
    if use_cpu or not torch.cuda.is_available():
        return 0
    return max(0, min(8, (os.cpu_count() or 1) // 2))


def _jsonl_logger(path: Path):
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                append_jsonl(path, {"step": state.global_step, "epoch": state.epoch, **logs})

    return JsonlLogger()


@dataclass
class TrainOutcome:
    """What a finished training run reports."""

    global_step: int
    train_loss: float  # the mean over every step, a resumed run's too
    log_history: list[dict[str, Any]]
    resumed_from: str | None
    feature_cache: dict[str, int] | None = None  # this process's vision-feature cache hits and misses
    batch_size: int | None = None  # the batch per device it trained at (`--train-batch-size auto`: the one found)
    weights: dict[str, Any] | None = None  # which step's weights the model holds, and why
    stopped_early: bool = False  # early stopping ended the run before its last step


def train(model, processor, family, examples: Sequence[Example], *, task: Task,
          settings: TrainSettings, run_dir: Path, resume: bool = False,
          bf16: bool = False, use_cpu: bool = False, callbacks: Sequence[Any] = (),
          collator=None, eval_examples: Sequence[Example] = (), max_new_tokens: int | None = None,
          answer: Answer | None = None) -> TrainOutcome:
    """Fine-tune `model` (already wrapped with LoRA) on `examples`; checkpoints in run_dir.

    `collator` replaces the chat collator for a model that takes its own batch and returns its
    own `loss` (train it with `answer_only_logits=False`). `eval_examples`: the validation set
    `settings.eval_steps` scores (its loss; the first `eval_generate_limit` also generated, answers
    capped at `max_new_tokens`: `evaluate.answer_length` for the model, as `eval` caps them; by
    `answer` where the model generates its own way, GILL's).
    """
    if not examples:
        raise ConfigError("nothing to train on: the training set is empty")
    if settings.eval_steps is not None and not eval_examples:
        raise ConfigError("eval_steps needs validation examples: the validation set is empty")
    if collator is None:
        pixels = device_pixels_for(processor, family, settings.pixels_on_device)
        collator = VlmCollator(processor, family, prompt_fn=task.prompt, train=True, device_pixels=pixels)
    if settings.eval_generate_limit:
        shown = list(eval_examples[: settings.eval_generate_limit])
        callbacks = [generation_metric(processor, family, shown, task=task, batch_size=settings.batch_size,
                                       max_new_tokens=max_new_tokens, answer=answer),
                     *callbacks]
    return fit(model, _ExampleDataset(examples), collator, settings=settings, run_dir=run_dir, resume=resume,
               bf16=bf16, use_cpu=use_cpu, callbacks=callbacks,
               eval_dataset=_ExampleDataset(eval_examples) if settings.eval_steps is not None else None,
               eval_metric=task.primary_metric)


def fit(model, dataset, collator, *, settings: TrainSettings, run_dir: Path, resume: bool = False,
        bf16: bool = False, use_cpu: bool = False, callbacks: Sequence[Any] = (), eval_dataset=None,
        eval_metric: Metric | str | None = None) -> TrainOutcome:
    """`make_trainer` + train (from the last complete checkpoint with `resume`), speed-ups released.

    A resumed run's records continue as if it had never stopped: the rows the interrupted process
    logged after its checkpoint are dropped (they are logged again), and the loss sums restart from
    the checkpoint's.
    """
    checkpoints = run_dir / "checkpoints"
    last = last_checkpoint(checkpoints) if resume else None
    if resume and last is None:
        log.warning("no checkpoint in %s: starting from step 0", checkpoints)
    step = checkpoint_step(last) if last else None
    trainer = make_trainer(model, dataset, collator, settings=settings, run_dir=run_dir,
                           bf16=bf16, use_cpu=use_cpu, callbacks=callbacks, resumed_step=step,
                           eval_dataset=eval_dataset, eval_metric=eval_metric)
    if step is not None and trainer.is_world_process_zero():  # the process that writes the log
        keep_rows_until(run_dir / "metrics.jsonl", step)
        print(f"resuming from {last} (step {step})", file=sys.stderr)
    trainer.resume_tally = read_tally(last)
    trainer.resume_best = best_checkpoint(last, checkpoints)
    try:
        global_step, train_loss = run_trainer(trainer, last)
    finally:
        cache = release_speedups(trainer)
    return TrainOutcome(
        global_step=global_step,
        train_loss=train_loss,
        log_history=list(trainer.state.log_history),
        resumed_from=last,
        feature_cache=cache,
        batch_size=trainer._train_batch_size,
        weights=kept_weights(trainer.state, trainer.args, global_step),
        stopped_early=bool(settings.early_stopping_patience) and 0 < global_step < trainer.state.max_steps,
    )


def kept_weights(state, args, global_step: int) -> dict[str, Any]:
    """Which step's weights the trained model holds, and why: the best validated step where the
    Trainer loaded it at the end, else the last step."""
    best = state.best_model_checkpoint
    if args.load_best_model_at_end and best:
        metric = args.metric_for_best_model
        return {"step": checkpoint_step(best), "reason": f"best {metric} {state.best_metric:.4g}"}
    return {"step": global_step, "reason": "last step"}


def run_trainer(trainer, checkpoint: str | None) -> tuple[int, float]:
    """`trainer.train(resume_from_checkpoint=checkpoint)`: (optimiser steps, mean training loss over
    every step, those before the checkpoint included).

    A checkpoint that already holds every step (the process stopped after saving it), or the one
    early stopping ended the run at, is loaded (with the best step's weights where those are kept),
    not trained on: transformers would take more steps from it.
    """
    from transformers.trainer_callback import TrainerState

    if checkpoint is not None:
        state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
        if _stopped_at(state):
            log.info("%s holds all %d steps: nothing left to train", checkpoint, state.global_step)
            trainer._load_from_checkpoint(checkpoint)
            trainer.state = state
            state.best_model_checkpoint = trainer.resume_best
            if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
                trainer._load_best_model()  # as the uninterrupted run did at its end
            tally = trainer.resume_tally
            if tally is not None:
                return state.global_step, (tally["total"] + tally["pending"]) / state.global_step
            losses = [row["loss"] for row in state.log_history if "loss" in row]
            return state.global_step, sum(losses) / len(losses) if losses else float("nan")
    result = trainer.train(resume_from_checkpoint=checkpoint)
    return result.global_step, trainer._total_loss_scalar / max(result.global_step, 1)


def _stopped_at(state) -> bool:
    """Whether a checkpoint's state is where its run ended: its last step, or early stopping's stop
    (the Trainer saves its control, which says so, with the checkpoint)."""
    control = state.stateful_callbacks.get("TrainerControl") or {}
    stop = isinstance(control, dict) and bool(control.get("args", {}).get("should_training_stop"))
    return bool(state.max_steps and state.global_step >= state.max_steps) or stop


def make_trainer(model, dataset, collator, *, settings: TrainSettings, run_dir: Path, bf16: bool = False,
                 use_cpu: bool = False, callbacks: Sequence[Any] = (), resumed_step: int | None = None,
                 eval_dataset=None, eval_metric: Metric | str | None = None):
    """The configured `Trainer` (speed switches applied to `model`); benchmarks time it directly.

    `resumed_step`: the checkpoint a resumed run continues from (TensorBoard drops later events).
    `eval_dataset`: the validation set of `settings.eval_steps`; `eval_metric`: the task's primary
    metric, which `keep_best metric` watches.
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers import EarlyStoppingCallback, TrainingArguments

    from nmm_core.kernels import apply_liger, compile_layers, liger_available
    from nmm_core.lora import frozen_dtypes, half_precision, needs_autocast

    workers = _workers(settings.num_workers, use_cpu)
    autocast = bf16 and needs_autocast(model)
    fp16 = {str(d) for d in frozen_dtypes(model)} == {"torch.float16"}
    if fp16 and use_cpu:
        raise ConfigError("a float16 base trains with loss scaling on a GPU only: on CPU load it in float32 "
                          "(--model-dtype float32)")
    if not bf16 and needs_autocast(model) and half_precision(model) and not all(
            getattr(m, "cast_input_dtype_enabled", True) for m in model.modules()):
        raise ConfigError("fp32-autocast adapters on a bf16 base train under bf16 autocast: pass bf16=True "
                          "(or lora precision fp32-master)")
    auto_batch = settings.batch_size == "auto"
    if auto_batch:
        from nmm_core.auto_batch import batch_recorder, recorded_batch

        start = recorded_batch(run_dir) or settings.batch_size_start  # a resumed run starts where it fit
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=start if auto_batch else settings.batch_size,
        auto_find_batch_size=auto_batch,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr,
        warmup_steps=settings.warmup,
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.scheduler,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="epoch" if settings.keep_best and settings.eval_steps == "epoch" else "steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        seed=settings.seed,
        data_seed=settings.seed,
        full_determinism=settings.deterministic,
        # bf16 autocast only where fp32 weights need it: over a bf16 model it can only add casts
        # (on CUDA it runs LayerNorm, pow, softmax and more in fp32).
        bf16=autocast and not fp16,
        fp16=fp16,  # fp16 gradients underflow without the loss scaling this brings (with fp32 adapters)
        use_cpu=use_cpu,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        ddp_find_unused_parameters=False,
        **evaluation_arguments(settings, eval_metric),
    )
    if args.mixed_precision == "bf16" and not args.bf16 and half_precision(model):
        # `accelerate launch --mixed_precision bf16` (or an accelerate config saying bf16) puts it in
        # the environment; over a bf16 model with self-casting adapters autocast only adds casts
        log.info("ACCELERATE_MIXED_PRECISION=bf16 not applied: the model already computes in bf16 and "
                 "needs no autocast (lora precision fp32-autocast asks for it)")
        args.mixed_precision = "no"
    if settings.liger == "on" or (settings.liger == "auto" and liger_available()):
        apply_liger(model)
    if settings.compile_layers:
        compile_layers(model)
    # the collator that hands over raw pixels says how they are normalised
    pixels = getattr(collator, "device_pixels", None)
    cache = None
    if settings.cache_vision_features != "off":
        cache = cache_for_training(model, dataset, explicit=settings.cache_vision_features == "on")
        if cache is not None:
            collator = WithIds(collator)
    if settings.early_stopping_patience:
        callbacks = [*callbacks, EarlyStoppingCallback(settings.early_stopping_patience)]  # after the metric's
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        answer_only=settings.answer_only_logits,
        feature_cache=cache,
        device_pixels=pixels,
        lengths=approximate_lengths(dataset.examples) if settings.group_by_length else None,
        callbacks=[
            _jsonl_logger(run_dir / "metrics.jsonl"),
            _tensorboard_callback(SummaryWriter(log_dir=str(run_dir / "tensorboard"),
                                                purge_step=None if resumed_step is None else resumed_step + 1)),
            *callbacks,
        ],
    )
    if auto_batch:
        trainer.add_callback(batch_recorder(trainer, run_dir, settings.batch_size_start))
    for callback in trainer.callback_handler.callbacks:
        if getattr(callback, "attach_trainer", False):
            callback.trainer = trainer
    return trainer


def approximate_lengths(examples: Sequence[Example]) -> list[int]:
    """A sort key per example: text characters / 4 plus image pixels / 28^2 (a Qwen2-VL token's
    area), read from image headers; only the order matters to the sampler."""
    from nmm_core.records import image_size

    out = []
    for ex in examples:
        width, height = image_size(ex)
        answer = ex.answers[0] if ex.answers else ""
        out.append((len(ex.prompt) + len(answer)) // 4 + width * height // 784)
    return out
