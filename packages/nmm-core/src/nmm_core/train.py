"""The one fine-tuning entry point for every VLM domain, on transformers' `Trainer`.

`Trainer` brings checkpointing, resume, gradient accumulation and checkpointing, logging and
`accelerate launch` multi-GPU; we bring the collator (answer-only labels), the run folder and
the JSONL log. Domains change what goes in (examples, task, preset), never the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmm_core.chat import VlmCollator
from nmm_core.errors import ConfigError
from nmm_core.records import Example
from nmm_core.runs import append_jsonl
from nmm_core.task import Task

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Optimisation settings of one fine-tuning run."""

    epochs: float = field(default=1.0, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimiser steps (-1: by epochs)"})
    batch_size: int = field(default=8, metadata={"help": "examples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate"})
    warmup: float = field(default=0.03, metadata={"help": "warm-up: a ratio (<1) or a step count"})
    weight_decay: float = 0.0
    scheduler: str = field(default="linear", metadata={"help": "transformers lr scheduler type"})
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    logging_steps: int = 5
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N optimiser steps"})
    save_total_limit: int = 2
    seed: int = 0
    num_workers: int = field(default=0, metadata={"help": "data-loader worker processes"})
    answer_only_logits: bool = field(
        default=True, metadata={"help": "run the LM head at answer positions only (same loss, less memory)"}
    )

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("give epochs > 0 or max_steps > 0")


class _ExampleDataset:
    """A map-style dataset over records; the collator does all the processing."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def _trainer_class(answer_only: bool):
    from transformers import Trainer

    if not answer_only:
        return Trainer

    class AnswerOnlyTrainer(Trainer):
        """`Trainer` whose loss runs the LM head at answer positions only."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Our loss takes num_items_in_batch: Trainer must count answer tokens across the
            # accumulated micro-batches and must not divide by the accumulation steps again.
            self.model_accepts_loss_kwargs = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            from nmm_core.answer_loss import answer_only_loss

            loss, outputs = answer_only_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as Trainer does for model losses
            return (loss, outputs) if return_outputs else loss

    return AnswerOnlyTrainer


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
    train_loss: float
    log_history: list[dict[str, Any]]
    resumed_from: str | None


def train(model, processor, family, examples: Sequence[Example], *, task: Task,
          settings: TrainSettings, run_dir: Path, resume: bool = False,
          bf16: bool = False, use_cpu: bool = False, callbacks: Sequence[Any] = (),
          collator=None) -> TrainOutcome:
    """Fine-tune `model` (already wrapped with LoRA) on `examples`; checkpoints in run_dir.

    `collator` replaces the chat collator for a model that takes its own batch and returns its
    own `loss` (train it with `answer_only_logits=False`).
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers import TrainingArguments
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_utils import get_last_checkpoint

    if not examples:
        raise ConfigError("nothing to train on: the training set is empty")
    checkpoints = run_dir / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if resume and checkpoints.is_dir() else None
    if resume and last is None:
        log.warning("no checkpoint in %s: starting from step 0", checkpoints)
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr,
        warmup_steps=settings.warmup,
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.scheduler,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=bf16,
        use_cpu=use_cpu,
        dataloader_num_workers=settings.num_workers,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        ddp_find_unused_parameters=False,
    )
    trainer = _trainer_class(settings.answer_only_logits)(
        model=model,
        args=args,
        train_dataset=_ExampleDataset(examples),
        data_collator=collator or VlmCollator(processor, family, prompt_fn=task.prompt, train=True),
        callbacks=[
            _jsonl_logger(run_dir / "metrics.jsonl"),
            TensorBoardCallback(SummaryWriter(log_dir=str(run_dir / "tensorboard"))),
            *callbacks,
        ],
    )
    result = trainer.train(resume_from_checkpoint=last)
    return TrainOutcome(
        global_step=result.global_step,
        train_loss=float(result.training_loss),
        log_history=list(trainer.state.log_history),
        resumed_from=last,
    )
