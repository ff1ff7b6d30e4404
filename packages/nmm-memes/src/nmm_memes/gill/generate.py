"""GILL inference: load a trained GILL (adapter + parts), caption an image, generate or retrieve one."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from nmm_core.errors import ConfigError, DataError
from nmm_core.workflows import ModelSettings
from nmm_memes.gill.settings import GillSettings


@dataclass
class GillCommand:
    """What every GILL command loads: the model (a GILL preset), its parts, a trained adapter."""

    model: ModelSettings = field(default_factory=partial(ModelSettings, model="tiny-gill"))
    gill: GillSettings = field(default_factory=GillSettings)
    adapter: str | None = field(default=None, metadata={"help": "GILL adapter folder from `train --model gill`"})


@dataclass
class GenerateConfig(GillCommand):
    """`generate`: an image for a caption with GILL (mapper -> SD conditioning -> SD pipeline), as PNG."""

    out: str = field(default="gill.png", metadata={"help": "PNG file to write"})
    steps: int = field(default=50, metadata={"help": "diffusion steps"})
    guidance: float = field(default=7.5, metadata={"help": "classifier-free guidance scale"})
    seed: int = 0
    caption: str = field(default="", metadata={"help": "what the image should show"})
    positional: ClassVar = {"caption": ("CAPTION", "what the image should show, quoted", None)}

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")


@dataclass
class RetrieveConfig(GillCommand):
    """`retrieve`: rank candidate images for a caption (GILL's retrieval embeddings, cosine)."""

    top: int = field(default=5, metadata={"help": "how many ranked images to print"})
    caption: str = field(default="", metadata={"help": "what the image should show"})
    images: tuple[str, ...] = field(default=(), metadata={"help": "candidate image files"})
    positional: ClassVar = {"caption": ("CAPTION", "what the image should show, quoted", None),
                            "images": ("IMAGE", "candidate image files", "+")}


@dataclass
class Gill:
    """A loaded GILL: the model and its parts (tokenizer, image processor, SD)."""

    model: Any
    parts: Any

    def caption_batch(self, captions: list[str]) -> tuple[Any, Any]:
        """Caption ids ending in the [IMG] tokens, and their mask, on the model's device."""
        from nmm_memes.gill.collate import GillCollator

        spec = self.model.spec
        collator = GillCollator(self.parts.tokenizer, None, None, first_img=spec.first_img,
                                img_tokens=spec.img_tokens, max_caption_tokens=self.parts.settings.max_caption_tokens)
        ids, mask = collator.with_img_tokens(collator.caption_ids(captions))
        return ids.to(self.parts.device), mask.to(self.parts.device)

    def pixels(self, images: list) -> Any:
        values = self.parts.image_processor(images, return_tensors="pt")["pixel_values"]
        return values.to(self.parts.device)

    def caption(self, picture, max_new_tokens: int) -> str:
        """One image's caption: the visual prefix, then greedy decoding after OPT's leading </s>."""
        tok = self.parts.tokenizer
        prompt = tok([""], return_tensors="pt")["input_ids"].to(self.parts.device)
        ids = self.model.caption(self.pixels([picture]), prompt, eos_id=tok.eos_token_id, max_new_tokens=max_new_tokens)
        return tok.decode(ids, skip_special_tokens=True).strip()


def load_gill(model: ModelSettings, settings: GillSettings, adapter: str | None, *, with_sd: bool = True) -> Gill:
    """GILL's parts + a saved adapter (LoRA merged, parts loaded); without one, fresh or published parts."""
    from nmm_core.lora import load_adapter
    from nmm_core.model_checks import check_model_source
    from nmm_memes.gill.parts import build_model, load_parts, spec_for
    from nmm_memes.gill.persist import check_spec, fresh_model, load_parts_into, read_spec

    saved = read_spec(adapter) if adapter else None
    with_sd = with_sd or saved is None  # a fresh GILL takes its sizes from SD's
    check_model_source(model, None, SimpleNamespace(gill=settings, gill_sd=with_sd))  # its hub parts, up front
    parts = load_parts(model, settings, with_sd=with_sd)
    if saved is None:
        if not settings.checkpoint:
            print("warning: no --adapter nor --gill-checkpoint: GILL's parts are untrained", file=sys.stderr)
        net = fresh_model(parts, parts.loaded.model)
    else:
        fixed = {} if parts.sd is not None else {"sd_dim": saved.sd_dim, "sd_tokens": saved.sd_tokens}
        check_spec(saved, spec_for(parts, **fixed), f"adapter {adapter}")
        # A 4/8-bit base keeps the adapter unmerged (merging would lose its precision), as core's predict.
        lm = load_adapter(parts.loaded, adapter, merge=not parts.loaded.quantization)
        net = build_model(parts, lm, saved)
        load_parts_into(net, adapter)
    return Gill(net.eval(), parts)


def _image(path: str, command: str):
    from nmm_core.records import Example, load_image

    if not Path(path).is_file():
        raise DataError(f"record '{command}' field 'image': no such file {path}")
    return load_image(Example(command, path, "", ()))


def run_caption(cfg: Any) -> str:
    """`predict` with a GILL preset: the caption of one image (visual prefix, greedy decoding), printed."""
    from nmm_core.presets import get_preset

    picture = _image(cfg.image, "predict")
    gill = load_gill(cfg.model, cfg.gill, cfg.adapter, with_sd=False)
    limit = cfg.max_new_tokens or get_preset(cfg.model.model).max_new_tokens  # none: the preset's, as core's
    caption = gill.caption(picture, limit)
    print(caption)
    return caption


def run_generate(cfg: GenerateConfig, caption: str) -> Path:
    """Generate an image for `caption` and write it as PNG to `cfg.out`; the path."""
    import torch

    from nmm_core.runs import atomic_write_bytes

    if not caption.strip():
        raise ConfigError("the caption is empty")
    out = Path(cfg.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: the image is written as PNG; give a .png file name")
    gill = load_gill(cfg.model, cfg.gill, cfg.adapter)
    ids, mask = gill.caption_batch([caption.strip()])
    conditioning, _ = gill.model.encode_captions(ids, mask)
    sd = gill.parts.sd
    generator = torch.Generator(device=sd.unet.device).manual_seed(cfg.seed)
    image = sd.pipeline()(prompt_embeds=conditioning.to(sd.unet.dtype), num_inference_steps=cfg.steps,
                          guidance_scale=cfg.guidance, generator=generator).images[0]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(out, buffer.getvalue())
    print(f"wrote {out} ({image.size[0]}x{image.size[1]})")
    return out


def run_retrieve(cfg: RetrieveConfig, caption: str, images: list[str]) -> list[tuple[str, float]]:
    """Rank `images` by GILL's retrieval similarity to `caption`; prints and returns (path, score)."""
    import torch

    if not caption.strip():
        raise ConfigError("the caption is empty")
    pictures = [_image(p, "retrieve") for p in images]
    gill = load_gill(cfg.model, cfg.gill, cfg.adapter, with_sd=False)
    ids, mask = gill.caption_batch([caption.strip()])
    with torch.no_grad():
        _, text = gill.model.encode_captions(ids, mask)
        image = gill.model.image_retrieval(gill.pixels(pictures))
    scores = (image @ text[0]).tolist()
    ranked = sorted(zip(images, scores, strict=True), key=lambda pair: -pair[1])
    for path, score in ranked[: cfg.top]:
        print(f"{score:+.4f}  {path}")
    return ranked
