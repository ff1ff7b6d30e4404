"""LoRA / QLoRA: settings from flat fields, apply, save (peft format), reload, merge."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmm_core.errors import ConfigError, PresetError
from nmm_core.files import build_folder
from nmm_core.models import LoadedModel

ADAPTER_MARKER = "nmm_adapter.json"  # beside peft's files: which base the adapter belongs to
ADAPTER_PRECISIONS = ("fp32-master", "fp32-autocast", "fp32", "bf16")


@dataclass
class LoraSettings:
    """LoRA hyper-parameters and which parts of the model train."""

    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int | None = field(default=None, metadata={
        "help": "LoRA alpha (scale = alpha / r); unless given, 2 x r, so the scale is 2 whatever the rank "
                "(32 at the default r 16: the studies' recipe)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input (0: the input is not "
                                                              "copied, a faster step)"})
    targets: tuple[str, ...] = field(
        default=(), metadata={"help": "projection names to adapt; empty: the family's default"}
    )
    train_projector: bool = field(
        default=False, metadata={"help": "fully train the vision-language projector too"}
    )
    train_vision: bool = field(
        default=False, metadata={"help": "put LoRA on the vision tower's projections too"}
    )
    precision: str = field(
        default="fp32-master",
        metadata={"help": "adapter weights: fp32-master (fp32 weights cast to bf16 inside each adapter, no "
                          "autocast), fp32-autocast (fp32 weights, the whole model under bf16 autocast), "
                          "fp32 (peft's default: activations cast to fp32), bf16 (weights in bf16)"},
    )

    kbit_upcast: bool = field(
        default=False,
        metadata={"help": "QLoRA: cast the weights left unquantised (norms, embeddings, vision tower) to fp32, "
                          "as peft's prepare_model_for_kbit_training does; off keeps them in the compute dtype "
                          "(a bf16 residual stream: half the activation memory, no casts around each 4-bit layer)"},
    )

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ConfigError(f"lora.r must be positive, got {self.r}")
        if self.alpha is None:
            self.alpha = 2 * self.r
            # config's builder takes a nested default's values as given ones: this one follows r
            self.derived_settings = ("alpha",)
        elif self.alpha <= 0:
            raise ConfigError(f"lora.alpha must be positive, got {self.alpha}")
        if self.precision not in ADAPTER_PRECISIONS:
            raise ConfigError(f"lora.precision must be one of {', '.join(ADAPTER_PRECISIONS)}, got {self.precision!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}")


_SHAPE_KEY = re.compile(r"model_type|size|layers|heads|vocab|dim|patch|token_id|merge|scale")


def _shape_fields(config: dict[str, Any]) -> dict[str, Any]:
    # Only what fixes the weights' shapes: training flips runtime fields such as use_cache.
    return {
        k: _shape_fields(v) if isinstance(v, dict) else v
        for k, v in sorted(config.items())
        if isinstance(v, dict) or _SHAPE_KEY.search(str(k))
    }


def _fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_shape_fields(config), default=str).encode()).hexdigest()[:16]


def base_fingerprint(model) -> str:
    """A hash of the base architecture's shapes (not its path): what an adapter must match.

    The same for the base loaded in 4/8-bit or unquantised: a QLoRA adapter merges into the latter.
    """
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    return _fingerprint(config)


def accepted_fingerprints(model) -> set[str]:
    """`base_fingerprint` and the form adapters saved before it ignored quantisation carry (an
    empty `quantization_config` entry when their base was 4/8-bit)."""
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    return {_fingerprint(config), _fingerprint({**config, "quantization_config": {}})}


def lora_config(loaded: LoadedModel, settings: LoraSettings):
    """The peft `LoraConfig` for `loaded`'s family and these settings."""
    from peft import LoraConfig

    family = loaded.family
    preset_targets = loaded.source.preset.lora_projections if loaded.source.preset else None
    projections = settings.targets or preset_targets or family.lora_projections
    pattern = family.lora_target_regex(tuple(projections))
    if settings.train_vision:
        vision = "|".join(p.replace(".", r"\.") for p in family.vision_prefixes[:1])
        pattern = rf"({pattern})|(^({vision})\..*\b(q_proj|k_proj|v_proj|qkv|proj|fc1|fc2)$)"
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=pattern,
        modules_to_save=[family.projector] if settings.train_projector and family.projector else None,
        task_type="CAUSAL_LM",
    )


def apply_lora(loaded: LoadedModel, settings: LoraSettings, *, gradient_checkpointing=False):
    """Wrap `loaded.model` with fresh LoRA adapters (base weights frozen); returns the peft model."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    model = loaded.model
    if settings.kbit_upcast and not loaded.quantization:
        raise ConfigError("lora.kbit_upcast applies to a 4/8-bit base only: add --model-quantization 4bit, "
                          "or leave kbit_upcast off")
    if loaded.quantization and settings.kbit_upcast:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    else:
        model.requires_grad_(False)  # all of peft's k-bit preparation but its fp32 upcast
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
    # peft keeps adapters in fp32 on a half-precision base and casts every adapted activation to
    # fp32 and back. Both fp32-* precisions keep fp32 weights but skip those activation casts:
    # "fp32-master" casts the small adapter weights to the activations' dtype inside each adapter,
    # so the frozen base runs exactly as a plain bf16 model; "fp32-autocast" leaves that to the
    # trainer's bf16 autocast, which also runs the base's LayerNorms, pow and softmax in fp32 on
    # CUDA (slower on Phi-2 and SigLIP, whose LayerNorm outputs are then cast once per projection).
    try:
        peft_model = get_peft_model(model, lora_config(loaded, settings),
                                    autocast_adapter_dtype=settings.precision != "bf16")
    except ValueError as exc:  # peft's NoMatchingPeftModuleError (a ValueError), its text varies by case
        if type(exc).__name__ != "NoMatchingPeftModuleError" and "not found in the base model" not in str(exc):
            raise
        raise ConfigError(f"--lora-targets {','.join(settings.targets) or '(family default)'}: no such module "
                          f"in {loaded.family.language_prefix}; its linear layers: "
                          f"{', '.join(linear_names(model, loaded.family.language_prefix))}") from None
    if not any(p.requires_grad for p in peft_model.parameters()):
        raise ConfigError("no LoRA target matched this model: check lora.targets")
    if settings.precision in ("fp32-master", "fp32-autocast") and half_precision(peft_model):
        set_input_casting(peft_model, enabled=False)
        if settings.precision == "fp32-master":
            cast_adapter_weights(peft_model, enabled=True)
        upcast_saved_modules(peft_model, cast=settings.precision == "fp32-master")
    return peft_model


def linear_names(model, prefix: str) -> list[str]:
    """The distinct last names of the linear layers under `prefix` (what --lora-targets may name)."""
    from torch import nn

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if name.startswith(prefix + ".") and isinstance(module, nn.Linear)})


def upcast_saved_modules(model, *, cast: bool) -> int:
    """Give the fully trained copies of peft's `modules_to_save` (train_projector) fp32 master weights.

    peft copies them in the base's dtype: a bf16 projector would take its AdamW updates in bf16,
    where most steps of lr 2e-4 round away (prepare_model_for_kbit_training's upcast used to cover
    QLoRA). With `cast`, their plain linears compute in the input's dtype as the adapters do; what
    else they hold (a LayerNorm) leaves fp32 weights that `needs_autocast` hands to the trainer.
    Their linears stay self-casting after training: with fp32 weights they need it in evaluation.
    Returns how many parameters it upcast.
    """
    import torch
    from torch import nn

    cast_class = _weight_cast_linear()
    count = 0
    for wrapper in model.modules():
        copies = getattr(wrapper, "modules_to_save", None)
        if not isinstance(copies, nn.ModuleDict):
            continue
        for module in copies.values():
            for p in module.parameters():
                if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16):
                    p.data = p.data.float()
                    count += 1
            for sub in module.modules():
                if cast and type(sub) is nn.Linear and sub.weight.dtype == torch.float32:
                    sub.__class__ = cast_class
    return count


def frozen_dtypes(model) -> set:
    """The dtypes of the frozen floating-point weights: the compute dtype of a LoRA base (a 4/8-bit
    base's packed weights are integers: what it left unquantised counts)."""
    return {p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()}


def half_precision(model) -> bool:
    """True when the frozen floating-point weights are bf16/fp16 (not an fp32 base)."""
    import torch

    frozen = frozen_dtypes(model)
    return bool(frozen) and frozen <= {torch.bfloat16, torch.float16}


def set_input_casting(model, *, enabled: bool) -> None:
    """Turn peft's cast of each adapted layer's input to the adapter dtype on or off.

    Off needs the adapter weights cast instead: by `cast_adapter_weights`, or by autocast around
    the forward (the trainer's bf16 mode); `train` turns it back on when training ends.
    """
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = enabled


@functools.cache
def _weight_cast_linear():
    """The class, built on first use (this module does not import torch at import time)."""
    import torch.nn.functional as F
    from torch import nn

    class WeightCastLinear(nn.Linear):
        """nn.Linear that computes in its input's dtype: fp32 master weights, bf16 matmul."""

        def forward(self, x):
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return F.linear(x, self.weight.to(x.dtype), bias)

    return WeightCastLinear


def cast_adapter_weights(model, *, enabled: bool) -> int:
    """Make every LoRA A/B linear of `model` compute in its input's dtype (or back); returns how many.

    The weights stay fp32 parameters (the optimiser's master copy); the forward uses a bf16 copy
    and the gradient flows back through the cast, as under autocast, without autocasting the base.
    """
    from torch import nn

    cast_class = _weight_cast_linear()
    count = 0
    for module in model.modules():
        if not hasattr(module, "cast_input_dtype_enabled"):
            continue  # not a peft LoRA layer
        for linear in [*getattr(module, "lora_A", {}).values(), *getattr(module, "lora_B", {}).values()]:
            if type(linear) in (nn.Linear, cast_class):
                linear.__class__ = cast_class if enabled else nn.Linear
                count += 1
    return count


def needs_autocast(model) -> bool:
    """True when fp32 weights train without casts of their own (fp32-autocast or peft's default
    adapters, a domain's fp32 head): the trainer then runs the step under bf16 autocast."""
    import torch

    cast_class = _weight_cast_linear()
    cast = {id(p) for m in model.modules() if isinstance(m, cast_class) for p in m.parameters()}
    return any(p.requires_grad and p.dtype == torch.float32 and id(p) not in cast for p in model.parameters())


def save_adapter(peft_model, folder: str | Path, *, base_name: str, family: str,
                 image_tokens: dict[str, int] | None = None) -> Path:
    """Save the adapter in peft's format (plain `PeftModel.from_pretrained` loads it), atomically;
    `image_tokens` ({"min", "max"}) is the image-token budget it was trained at."""
    def build(tmp: Path) -> None:
        peft_model.save_pretrained(tmp)
        marker = {
            "base": base_name,
            "family": family,
            "base_fingerprint": base_fingerprint(peft_model.get_base_model()),
        }
        if image_tokens is not None:
            marker["image_tokens"] = image_tokens
        (tmp / ADAPTER_MARKER).write_text(json.dumps(marker, indent=2) + "\n")

    return build_folder(folder, build)


def read_adapter_marker(folder: str | Path) -> dict[str, Any]:
    """The `nmm_adapter.json` of an adapter folder ({} for a plain peft one); PresetError if not an adapter."""
    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise PresetError(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
    marker_file = folder / ADAPTER_MARKER
    return json.loads(marker_file.read_text()) if marker_file.is_file() else {}


def mark_adapter(folder: str | Path, **fields: Any) -> None:
    """Add `fields` to the adapter's marker file (atomically); a folder without one is left as it is."""
    from nmm_core.runs import atomic_write_json

    marker = Path(folder) / ADAPTER_MARKER
    if marker.is_file():
        atomic_write_json(marker, {**json.loads(marker.read_text()), **fields})


def check_adapter(loaded: LoadedModel, folder: str | Path) -> dict[str, Any]:
    """Fail before any work if `folder` is not an adapter for `loaded`'s base model."""
    marker = read_adapter_marker(folder)
    expected = marker.get("base_fingerprint")
    other_family = marker.get("family") not in (None, loaded.family.name)
    if other_family or expected and expected not in accepted_fingerprints(loaded.model):
        raise PresetError(
            f"adapter {folder} was trained for base '{marker.get('base')}' "
            f"({marker.get('family')}), not for '{loaded.source.name}' ({loaded.family.name})"
        )
    return marker


def load_adapter(loaded: LoadedModel, folder: str | Path, *, merge: bool = False):
    """Attach a saved adapter to `loaded.model`; with `merge`, fold it into the weights."""
    from peft import PeftModel

    check_adapter(loaded, folder)
    try:
        model = PeftModel.from_pretrained(loaded.model, str(folder))
    except (KeyError, ValueError, TypeError, OSError, RuntimeError) as exc:  # a damaged or foreign adapter
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise PresetError(f"adapter {folder}: cannot load it ({type(exc).__name__}: {reason})") from None
    model.eval()
    if merge:
        if loaded.quantization:
            raise ConfigError(
                "merging into a 4/8-bit base loses the adapter's precision; load the base "
                "without quantization to merge, or keep the adapter unmerged"
            )
        return model.merge_and_unload()
    return model
