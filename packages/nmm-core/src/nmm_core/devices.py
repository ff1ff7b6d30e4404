"""Device and dtype choice: CUDA + bf16 when present, CPU + fp32 otherwise."""

from __future__ import annotations

from nmm_core.errors import DeviceError


def pick_device(requested: str = "auto", *, flag: str = "--model-device"):
    """`auto` -> cuda if available else cpu; an explicit cuda request without CUDA fails naming `flag`."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise DeviceError(f"{flag} {requested}: not a device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"{flag} {requested}: CUDA is not available here; use {flag} cpu"
        )
    return device


def pick_dtype(requested: str, device):
    """`auto` -> bfloat16 on a bf16-capable GPU, float32 elsewhere (CPU bf16 is slow and lossy)."""
    import torch

    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if requested == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if requested not in names:
        raise DeviceError(f"dtype must be auto, {', '.join(names)}; got '{requested}'")
    return names[requested]


def require_bitsandbytes(quantization: str) -> None:
    """Fail with what to do when `quantization` needs bitsandbytes that cannot run here."""
    try:
        import bitsandbytes
    except Exception as exc:  # ImportError, or a broken native library
        raise DeviceError(
            f"{quantization} quantization needs bitsandbytes >= 0.50 ({exc}); install "
            "'nmm-core[qlora]', or train without --model-quantization (plain LoRA runs on CPU)"
        ) from None
    major, minor = (int(x) for x in bitsandbytes.__version__.split(".")[:2])
    import torch

    if (major, minor) < (0, 50) and not torch.cuda.is_available():
        raise DeviceError(
            f"bitsandbytes {bitsandbytes.__version__} has no CPU support; 4/8-bit on CPU needs "
            ">= 0.50, or train without --model-quantization"
        )
