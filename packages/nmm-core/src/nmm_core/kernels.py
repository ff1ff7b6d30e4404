"""Fused GPU kernels and compilation for the training step: Liger kernels, per-layer torch.compile.

Both change how the step runs, never what it computes (the losses match the plain step within
bf16 noise; benchmarks/ checks it). Both need CUDA: on CPU they are refused with what to do.
"""

from __future__ import annotations

import logging

from nmm_core.errors import ConfigError, DeviceError

log = logging.getLogger(__name__)

# Liger's fused linear cross-entropy replaces the model's forward; answer-only logits already
# shrink the head, so only the per-layer kernels are applied.
LIGER_KERNELS = {"rope": True, "rms_norm": True, "swiglu": True, "cross_entropy": False,
                 "fused_linear_cross_entropy": False}


def _require_cuda(what: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(f"{what} needs a CUDA GPU (Triton kernels); on CPU leave it off")


def liger_available() -> bool:
    """CUDA present and liger-kernel installed (what `liger="auto"` turns the kernels on for)."""
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None


def apply_liger(model) -> None:
    """Swap RMSNorm, SwiGLU MLP and RoPE of `model`'s language model for Liger's Triton kernels."""
    _require_cuda("liger")
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as exc:
        raise ConfigError("liger needs the liger-kernel package: uv sync --extra speed "
                          "(or pip install liger-kernel)") from exc
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    _apply_liger_kernel_to_instance(model=base, **LIGER_KERNELS)


def decoder_layers(model) -> list:
    """The language model's decoder layers (the repeated blocks worth compiling one by one)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ConfigError(f"no decoder layers found in {type(base).__name__} to compile")
    return list(layers)


def compile_layers(model) -> int:
    """`torch.compile` each decoder layer in place (the first step pays the compilation)."""
    _require_cuda("compile_layers")
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(dynamic=None)
    log.info("compiling %d layers on first use", len(layers))
    return len(layers)
