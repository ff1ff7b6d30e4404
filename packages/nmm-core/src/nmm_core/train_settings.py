"""`TrainSettings`: the optimisation settings of one fine-tuning run (the `--train-*` flags), checked
when made; `train` and `fit` take them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nmm_core.config import Switch, check_switch
from nmm_core.device_pixels import PIXELS_HELP
from nmm_core.errors import ConfigError
from nmm_core.validation import check_validation


@dataclass
class TrainSettings:
    """Optimisation settings of one fine-tuning run."""

    epochs: float = field(default=1.0, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimiser steps (-1: by epochs)"})
    batch_size: int | Literal["auto"] = field(default=8, metadata={
        "help": "examples per device per step; auto: from --train-batch-size-start, halved on out-of-memory "
                "(the Trainer's auto_find_batch_size), the batch found kept in the run folder for resume"})
    batch_size_start: int = field(default=32, metadata={"help": "where --train-batch-size auto starts"})
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
    seed: int = field(default=0, metadata={"help": "the run seed: adapter initialisation, data order, dropout "
                                                     "(per-part seeds left unset take it)"})
    deterministic: bool = field(default=False, metadata={
        "help": "the framework's deterministic algorithms (transformers' enable_full_determinism): the same "
                "seed gives bit-identical adapters on CPU, and on a GPU where its kernels allow",
        "aliases": ("--deterministic",)})
    num_workers: int = field(default=-1, metadata={"help": "data-loader worker processes (-1: 0 on CPU, "
                                                           "up to 8 with CUDA)"})
    answer_only_logits: bool = field(
        default=True, metadata={"help": "run the LM head at answer positions only (same loss, less memory)"}
    )
    cache_vision_features: Switch = field(
        default="auto", metadata={"help": "auto|on|off: compute each image's frozen vision features once and "
                                          "reuse them on later epochs (auto: when tower and projector are frozen)"})
    liger: Switch = field(default="auto", metadata={"help": "auto|on|off: Liger's fused RMSNorm/SwiGLU/RoPE kernels "
                                                         "(auto: with CUDA and liger-kernel installed)"})
    compile_layers: bool = field(default=False, metadata={"help": "torch.compile each decoder layer (CUDA; the "
                                                                  "first step pays the compilation)"})
    group_by_length: bool = field(default=False, metadata={"help": "batches of similar length (text + image "
                                                                   "size): less padding on variable-length data"})
    pixels_on_device: Switch = field(default="auto", metadata={"help": PIXELS_HELP})
    eval_steps: int | Literal["epoch"] | None = field(default=None, metadata={
        "help": "validation loss on the data's validation split every N optimiser steps, or each epoch "
                "(none: no validation)", "metavar": "N|epoch"})
    eval_generate_limit: int = field(default=0, metadata={
        "help": "at each validation, also generate answers for the first K validation examples (as long as "
                "eval's: the preset's max_new_tokens, else 16) and log eval_<the task's primary metric> "
                "(0: the loss only; a GILL model captions their images, scored against their image captions)"})
    keep_best: Literal["loss", "metric"] | None = field(default=None, metadata={
        "help": "the adapter holds the step with the lowest validation loss or the best primary metric "
                "(none: the last step)"})
    early_stopping_patience: int | None = field(default=None, metadata={
        "help": "stop after P validations without improvement (of keep_best's measure; the loss without it)"})

    def __post_init__(self) -> None:
        for name in ("batch_size", "batch_size_start", "grad_accum", "logging_steps", "save_steps"):
            if getattr(self, name) != "auto" and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_validation(self)
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError(f"epochs (--train-epochs) must be > 0, got {self.epochs}, unless max_steps "
                              f"(--train-max-steps) is")
        for name in ("cache_vision_features", "liger", "pixels_on_device"):
            check_switch(name, getattr(self, name))
