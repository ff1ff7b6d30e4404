"""Loading GILL's frozen parts (OPT through core, CLIP, Stable Diffusion) and building GillModel.

`--model gill` loads the real parts named in `GillSettings` (OPT-6.7B, CLIP ViT-L/14, SD1.5
pinned); `--model tiny-gill` loads core's `tiny-opt-clip` twin and a tiny SD twin (cached like
every twin), with `settings.tiny_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nmm_core.errors import DataError, PresetError
from nmm_core.models import LoadedModel
from nmm_core.workflows import ModelSettings
from nmm_memes.gill import is_gill
from nmm_memes.gill.settings import SD15, GillSettings, tiny_sizes

IMAGE_TOKEN = "<|image|>"  # GILL adds it as the tokenizer's cls token before the [IMG] tokens


@dataclass
class GillParts:
    """The frozen parts and what feeds them; `first_img` is the id of [IMG0]."""

    loaded: LoadedModel  # OPT + tokenizer, core's
    vision: Any  # CLIPVisionModel
    image_processor: Any  # CLIPImageProcessor
    sd: Any  # nmm_core.diffusion.SdParts
    first_img: int
    settings: GillSettings

    @property
    def tokenizer(self):
        return self.loaded.processor

    @property
    def device(self):
        return next(self.loaded.model.parameters()).device


def resolve_settings(model: str, settings: GillSettings) -> GillSettings:
    """A tiny GILL preset (`tiny-gill`): the twins' folders and tiny sizes; `gill`: the settings as given."""
    from nmm_core.presets import get_preset
    from nmm_core.twins import tiny_sd_path, twin_path

    if not is_gill(model):
        raise PresetError(f"'{model}' is not a GILL model (a preset of its family: gill | tiny-gill)")
    if not get_preset(model).tiny:
        return settings

    twin = twin_path(get_preset("tiny-opt-clip"))
    return replace(tiny_sizes(settings), lm=str(twin), vision=str(twin / "vision"), vision_revision=None,
                   sd=str(tiny_sd_path(cross_attention_dim=32)))


def add_img_tokens(tokenizer, count: int) -> int:
    """Add `<|image|>` and [IMG0]..[IMG{count-1}] as GILL does; the id of [IMG0] (they are contiguous)."""
    if tokenizer.cls_token is None:
        tokenizer.add_special_tokens({"cls_token": IMAGE_TOKEN})
    names = [f"[IMG{i}]" for i in range(count)]
    tokenizer.add_tokens(names)
    ids = tokenizer.convert_tokens_to_ids(names)
    if ids != list(range(ids[0], ids[0] + count)) or ids[-1] != len(tokenizer) - 1:
        raise DataError(f"the [IMG] tokens got ids {ids}: expected the last {count} ids of the tokenizer")
    return ids[0]


def load_parts(model: ModelSettings, settings: GillSettings, *, with_sd: bool = True) -> GillParts:
    """OPT (core's loader, family opt_clip), CLIP vision + image processor, SD; [IMG] tokens added."""
    from transformers import CLIPImageProcessor, CLIPVisionModel

    from nmm_core.diffusion import SD15_REPO, load_sd15
    from nmm_core.models import load_model

    settings = resolve_settings(model.model, settings)
    loaded = load_model(settings.lm, family="opt_clip", dtype=model.dtype, device=model.device,
                        quantization=None if model.quantization in ("auto", "none") else model.quantization,
                        revision=settings.lm_revision)
    first_img = add_img_tokens(loaded.processor, settings.img_tokens)
    device = next(loaded.model.parameters()).device
    try:
        vision = CLIPVisionModel.from_pretrained(settings.vision, revision=settings.vision_revision,
                                                 dtype=loaded.model.dtype).to(device).eval()
        image_processor = CLIPImageProcessor.from_pretrained(settings.vision, revision=settings.vision_revision)
    except (OSError, ValueError) as exc:
        raise PresetError(f"cannot load the CLIP vision model '{settings.vision}': "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    sd = load_sd15(SD15_REPO if settings.sd == SD15 else settings.sd, dtype=model.dtype,
                   device=model.device) if with_sd else None
    return GillParts(loaded, vision, image_processor, sd, first_img, settings)


def spec_for(parts: GillParts, **fixed: int) -> Any:
    """The GillSpec of these parts, the learned modules' sizes from its settings (or `fixed`)."""
    from nmm_memes.gill.model import GillSpec

    s = parts.settings
    unet = parts.sd.unet.config if parts.sd is not None else None
    values = dict(
        lm_dim=parts.loaded.model.config.word_embed_proj_dim, vision_dim=parts.vision.config.hidden_size,
        sd_dim=unet.cross_attention_dim if unet else fixed.get("sd_dim", 0),
        sd_tokens=parts.sd.tokenizer.model_max_length if unet else fixed.get("sd_tokens", 0),
        first_img=parts.first_img, visual_tokens=s.visual_tokens, img_tokens=s.img_tokens, ret_dim=s.ret_dim,
        mapper_dim=s.mapper_dim, mapper_heads=s.mapper_heads, mapper_layers=s.mapper_layers)
    values.update(fixed)
    return GillSpec(**values)


def build_model(parts: GillParts, lm, spec) -> Any:
    """GillModel around `lm` (the OPT, LoRA-wrapped or not) on the parts' device; learned parts fp32."""
    from nmm_memes.gill.model import GillModel

    model = GillModel(lm, parts.vision, spec, text_encoder=parts.sd.text_encoder if parts.sd is not None else None,
                      gen_loss_scale=parts.settings.gen_loss_scale, ret_loss_scale=parts.settings.ret_loss_scale)
    for name in ("visual_embeddings", "visual_fc", "ret_fc", "mapper"):
        getattr(model, name).to(parts.device)
    model.img_tokens.data = model.img_tokens.data.to(parts.device)
    model.logit_scale.data = model.logit_scale.data.to(parts.device)
    return model
