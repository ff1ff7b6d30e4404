"""Settings of the domain's methods, as dataclasses (torch-free, so `--help` stays instant).

`nmm_core.config` turns each field into a flag (`--bridge-sigma`) and a YAML key.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BridgeSettings:
    """Bridge matching: the path, the network and its training, and sampling."""

    sigma: float = field(default=1.0, metadata={"help": "diffusion coefficient (normalised units)"})
    t_max: float = field(default=0.99, metadata={"help": "training times are drawn from U[0, t_max]"})
    condition_on_x0: bool = field(default=True, metadata={"help": "the network also sees x0 (rest)"})
    hidden: int = 128
    depth: int = 2
    dropout: float = 0.1
    components: int = field(default=32, metadata={
        "help": "principal directions of the training edges the network reads and writes"})
    steps: int = field(default=2000, metadata={"help": "optimiser steps at most"})
    val_fraction: float = field(default=0.1, metadata={"help": "training subjects held out for early stopping"})
    eval_every: int = field(default=25, metadata={"help": "steps between validation losses"})
    patience: int = field(default=8, metadata={"help": "validations without improvement before stopping"})
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    # Measured on the synthetic cohort (30-40 regions, 480-800 training subjects): subject-
    # specific r falls steadily with more Euler-Maruyama steps (1: 0.69-0.70, 10: 0.67-0.69,
    # 50: 0.61-0.66, 16 samples each) on training subjects too, i.e. the learned drift's errors
    # add up along the path. 10 steps keep a real SDE solve at a small cost; `eval` also
    # reports the one-step endpoint.
    sample_steps: int = field(default=10, metadata={"help": "Euler-Maruyama steps at prediction"})
    samples: int = field(default=16, metadata={"help": "SDE samples averaged per prediction"})
    seed: int | None = field(default=None, metadata={"help": "network, split and noise draws (default: the run seed)"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda[:N] | auto"})

    def __post_init__(self) -> None:
        for name in ("components", "hidden", "depth", "steps", "eval_every", "patience", "batch_size",
                     "sample_steps", "samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"bridge.{name} must be >= 1, got {getattr(self, name)}")
        if self.sigma < 0 or not 0 < self.t_max < 1 or not 0 <= self.dropout < 1 or self.lr <= 0:
            raise ValueError("bridge: need sigma >= 0, 0 < t_max < 1, 0 <= dropout < 1, lr > 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"bridge.val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class RidgeSettings:
    """PCA + ridge regression from rest edges to task edges (alpha by leave-one-out)."""

    components: int = 50
    alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0])


@dataclass
class Sd15Settings:
    """Stable Diffusion 1.5 as an image-to-image model: rest FC image -> task FC image.

    InstructPix2Pix-style: the UNet's first convolution gets 4 more input channels (the rest
    image's latent), initialised at zero; the text condition is the empty prompt.
    """

    model: str = field(default="tiny", metadata={
        "help": "tiny (a random tiny twin, offline) | stable-diffusion-v1-5/stable-diffusion-v1-5 | a folder"})
    revision: str | None = field(default=None, metadata={"help": "pinned hub revision (SD1.5's by default)"})
    image_size: int = field(default=64, metadata={"help": "pixels per side (512 for the real SD1.5)"})
    value_range: float = field(default=1.0, metadata={"help": "FC values in [-v, v] map to pixels [-1, 1]"})
    train_unet: str = field(default="full", metadata={"help": "full | lora"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank with --sd15-train-unet lora; alpha = r (scale "
                                                     "1), SD1.5's own LoRA recipe, unlike the VLMs' 2 x r"})
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-4
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps (train --resume continues "
                                                           "from the last one)"})
    inference_steps: int = 20
    seed: int | None = field(default=None, metadata={"help": "conv_in, LoRA, noise and data order (default: the run "
                                                             "seed)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda[:N]"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16 | auto"})

    def __post_init__(self) -> None:
        if self.train_unet not in ("full", "lora"):
            raise ValueError(f"sd15.train_unet must be full or lora, got {self.train_unet!r}")
        if self.image_size % 8 or self.image_size < 16:
            raise ValueError(f"sd15.image_size must be a multiple of 8 and >= 16, got {self.image_size}")
        for name in ("steps", "batch_size", "inference_steps", "lora_r", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"sd15.{name} must be >= 1")
        if self.value_range <= 0:
            raise ValueError("sd15.value_range must be > 0")
