"""GILL's settings: which parts to load and the sizes of the learned modules (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from nmm_core.errors import ConfigError

OPT_6_7B = "facebook/opt-6.7b"
CLIP_L14 = "openai/clip-vit-large-patch14"
SD15 = "sd15"  # nmm_core.diffusion's pinned SD1.5 (SD15_REPO at SD15_REVISION)


@dataclass
class GillSettings:
    """GILL's parts and learned-module sizes (defaults: the published GILL's, `model_args.json`)."""

    lm: str = field(default=OPT_6_7B, metadata={"help": "OPT causal LM: hub id or local folder"})
    lm_revision: str | None = field(default=None, metadata={"help": "hub revision of the OPT model (pin it)"})
    vision: str = field(default=CLIP_L14, metadata={"help": "CLIP vision encoder: hub id or local folder"})
    vision_revision: str | None = field(default=None, metadata={"help": "hub revision of the CLIP model (pin it)"})
    sd: str = field(default=SD15, metadata={"help": "Stable Diffusion: 'sd15' (pinned) or a diffusers folder"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "GILL's published pretrained_ckpt.pth.tar: start from its [IMG] rows, projections, mapper"})
    visual_tokens: int = field(default=4, metadata={"help": "visual prefix length (n_visual_tokens)"})
    img_tokens: int = field(default=8, metadata={"help": "[IMG0]..[IMGr-1] tokens (num_tokens)"})
    ret_dim: int = field(default=256, metadata={"help": "retrieval embedding size (ret_emb_dim)"})
    mapper_dim: int = field(default=512, metadata={"help": "GILLMapper width"})
    mapper_heads: int = 4
    mapper_layers: int = field(default=4, metadata={"help": "encoder and decoder layers of the mapper"})
    max_caption_tokens: int = field(default=32, metadata={"help": "captions are cut to this many tokens"})
    gen_loss_scale: float = field(default=1.0, metadata={"help": "weight of the mapper's MSE loss"})
    ret_loss_scale: float = field(default=1.0, metadata={"help": "weight of the contrastive loss (0: off)"})

    def __post_init__(self) -> None:
        for name in ("visual_tokens", "img_tokens", "ret_dim", "mapper_dim", "mapper_heads", "mapper_layers",
                     "max_caption_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"gill.{name} must be at least 1, got {getattr(self, name)}")
        if self.mapper_dim % self.mapper_heads:
            raise ConfigError(f"gill.mapper_dim ({self.mapper_dim}) must divide by gill.mapper_heads "
                              f"({self.mapper_heads})")


def tiny_sizes(settings: GillSettings) -> GillSettings:
    """The twin's sizes: GILL's structure (8 [IMG] tokens, 4-token prefix), small widths."""
    return replace(settings, visual_tokens=4, img_tokens=8, ret_dim=32, mapper_dim=32, mapper_heads=4,
                   mapper_layers=1)


def hub_parts(cfg) -> list[tuple[str, str, str | None, str]]:
    """GILL's parts for `cfg` (its `gill` settings; another command's: the defaults), for core's check."""
    from nmm_core.diffusion import SD15_REPO, SD15_REVISION

    s = getattr(cfg, "gill", None) or GillSettings()
    with_sd = s.sd == SD15 and getattr(cfg, "gill_sd", True)  # False: a caption or ranking from an adapter
    sd = [("--gill-sd", SD15_REPO, SD15_REVISION, "model_index.json")] if with_sd else []
    return [("--gill-lm", s.lm, s.lm_revision, "config.json"),
            ("--gill-vision", s.vision, s.vision_revision, "config.json"), *sd]
