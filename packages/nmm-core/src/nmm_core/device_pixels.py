"""Images travel to the model as uint8 and are rescaled and normalised where the model runs.

A torchvision image processor resizes uint8 images, converts them to float32 to rescale and
normalise them, and (Qwen2-VL) then cuts them into patch rows. Every copy after the conversion
moves four times the bytes: for a batch of 16 Qwen2-VL-2B charts, the float32 patchify, the
concatenation and the conversion are two thirds of the collator's time, and each batch that
DataLoader workers hand over is 124 MiB. Asked for raw pixels, the same processor stops before
the conversion; whoever feeds the batch to the model (the trainer, the evaluator) then runs the
processor's own `rescale_and_normalize` on the uint8 tensor once it is on the model's device.
The model receives the same values: patchifying only permutes pixels, and normalising is
elementwise per channel. (Not a hook on the model: transformers' `generate` encodes images by
calling `get_image_features` itself, past any forward hook.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nmm_core.errors import ConfigError
from nmm_core.families import Family

log = logging.getLogger(__name__)

# Where a batch's channel axis is. "channels": (..., channels, height, width) images.
# "patch-rows": one row per patch, holding each channel's values in turn (Qwen2-VL).
PIXEL_LAYOUTS = ("channels", "patch-rows")
RAW_KWARGS = {"do_rescale": False, "do_normalize": False}
PIXELS_HELP = ("auto|on|off: images reach the model as uint8 and are normalised there (the same values, "
               "a quarter of the bytes to copy; auto: where the family and image processor allow it)")


@dataclass(frozen=True)
class DevicePixels:
    """How one processor's raw uint8 pixels become the float32 values it would have made."""

    image_processor: Any
    layout: str

    def normalize(self, pixel_values):
        """The processor's rescale and normalisation, on `pixel_values`' own device."""
        ip = self.image_processor
        x = pixel_values
        if self.layout == "patch-rows":
            x = x.reshape(x.shape[0], len(ip.image_mean), -1, 1)
        out = ip.rescale_and_normalize(x, True, ip.rescale_factor, True,
                                       tuple(ip.image_mean), tuple(ip.image_std))
        return out.reshape(pixel_values.shape)


def _unsupported(processor, family: Family) -> str | None:
    """Why this processor cannot hand over raw pixels (None: it can)."""
    import torch
    from PIL import Image

    if family.pixel_layout is None:
        return f"the {family.name} family does not take raw pixels"
    ip = getattr(processor, "image_processor", None)
    if ip is None or not hasattr(ip, "rescale_and_normalize"):
        return f"{type(ip).__name__} is not a torchvision image processor (install torchvision)"
    if not (getattr(ip, "do_rescale", False) and getattr(ip, "do_normalize", False)):
        return f"{type(ip).__name__} does not both rescale and normalise"
    if not all(isinstance(getattr(ip, k, None), (list, tuple)) for k in ("image_mean", "image_std")):
        return f"{type(ip).__name__} has no per-channel image_mean and image_std"
    # The processor's own answer on a blank image: some backends convert to float regardless.
    probe = ip(images=[Image.new("RGB", (56, 56))], return_tensors="pt", **RAW_KWARGS)["pixel_values"]
    if probe.dtype != torch.uint8:
        return f"{type(ip).__name__} gives {probe.dtype} pixels when asked for raw ones"
    return None


def device_pixels_for(processor, family: Family, switch: str = "auto") -> DevicePixels | None:
    """What a collator needs to hand over raw pixels, or None where it should not.

    `switch` is auto|on|off; with "on", a family or processor that cannot is an error.
    """
    if switch == "off":
        return None
    why = _unsupported(processor, family)
    if why is not None:
        if switch == "on":
            raise ConfigError(f"pixels_on_device is on, but {why}: turn it off")
        log.info("pixels normalised in the data loader: %s", why)
        return None
    return DevicePixels(processor.image_processor, family.pixel_layout)


def finish_pixels(batch: dict[str, Any], pixels: DevicePixels | None) -> dict[str, Any]:
    """`batch` with raw uint8 `pixel_values` normalised where they are (float ones untouched)."""
    import torch

    pixel_values = batch.get("pixel_values")
    if pixel_values is None or pixel_values.dtype != torch.uint8:
        return batch
    if pixels is None:
        raise ConfigError("a batch holds raw uint8 pixel_values but nothing normalises them: build the "
                          "collator and its consumer with the same device_pixels")
    return {**batch, "pixel_values": pixels.normalize(pixel_values)}
