"""Stable Diffusion 1.5 pieces shared by the domains (GILL in memes, SD1.5 in connectome).

Needs the extra `nmm-core[diffusion]` (diffusers); nothing here imports diffusers until a
function is called, so `import nmm_core.diffusion` is cheap and works without it.

- `load_sd15`: the real model from the hub at a pinned revision, or from a local folder in
  diffusers layout, as `SdParts` (UNet, VAE, CLIP text encoder + tokenizer, scheduler); no
  safety checker is loaded.
- `build_tiny_sd`: a tiny twin built in code from the same classes (diffusers' test-size
  UNet/VAE, a 2-layer CLIP text tower, a real `CLIPTokenizer` on a byte-level vocabulary), with
  SD1.5's ratios: 8x VAE down-sampling, 4 latent channels, 77 text positions, the same
  scheduler. `SdParts.save` writes it in diffusers layout, so it loads through `load_sd15` as a
  user's checkpoint would.
- `encode_latents` / `decode_latents`: images in [-1, 1] <-> scaled VAE latents.
- `build_sd15_random`: the full-size architecture with random weights (configs below), for
  benchmarks without a download (on the meta device it costs nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmm_core.errors import ConfigError, DeviceError, PresetError

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
# The repository's `main` commit pinned by several public projects (checked in their sources);
# the model files have not changed there since the runwayml original's final commit.
SD15_REVISION = "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"
SD15_SCALING_FACTOR = 0.18215  # absent from SD1.5's vae/config.json: diffusers' default
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

# SD1.5's configs (hub `unet/`, `vae/`, `text_encoder/`, `scheduler/` config.json), the values
# that define the architecture; parameter counts: UNet 859,520,964, VAE 83,653,863, text 123,060,480.
SD15_UNET = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_VAE = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD15_TEXT = {
    "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu",
    "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "num_attention_heads": 12, "num_hidden_layers": 12,
    "pad_token_id": 1, "projection_dim": 768, "vocab_size": 49408,
}
SD15_SCHEDULER = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
    "clip_sample": False,
}


def require_diffusers():
    """The diffusers module, or a DeviceError saying how to install it."""
    try:
        import diffusers
    except ImportError:
        raise DeviceError("Stable Diffusion needs diffusers: install nmm-core[diffusion] "
                          "(uv pip install 'nmm-core[diffusion]')") from None
    return diffusers


@dataclass
class SdParts:
    """The components of a Stable Diffusion 1.x model.

    unet : UNet2DConditionModel, vae : AutoencoderKL, text_encoder : CLIPTextModel,
    tokenizer : CLIPTokenizer, scheduler : a diffusers scheduler (PNDM for SD1.5)
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    source: str = ""

    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", SD15_SCALING_FACTOR))

    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell along each side (8 for SD1.5)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def pipeline(self):
        """A `StableDiffusionPipeline` over these parts (no safety checker)."""
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                                       unet=self.unet, scheduler=self.scheduler, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)

    def save(self, folder: str | Path) -> Path:
        """Write the parts in diffusers layout (`model_index.json`, one folder per part)."""
        self.pipeline().save_pretrained(folder, safe_serialization=True)
        return Path(folder)

    def to(self, device=None, dtype=None) -> SdParts:
        moves = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        for module in (self.unet, self.vae, self.text_encoder):
            module.to(**moves)
        return self

    def encode_text(self, prompts: list[str]):
        """Prompts -> text-encoder hidden states, shape (bs, 77, cross_attention_dim)."""
        import torch

        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return self.text_encoder(ids.to(self.text_encoder.device))[0]


def load_sd15(source: str | Path = SD15_REPO, *, revision: str | None = None, dtype: str = "auto",
              device: str = "auto", variant: str | None = None) -> SdParts:
    """SD1.5 (or any SD1.x in diffusers layout) from a local folder or the hub.

    A hub id needs a pinned 40-hex `revision`; for `SD15_REPO` the default is `SD15_REVISION`.
    `dtype` auto is bf16 on a bf16-capable GPU and fp32 elsewhere; `variant="fp16"` downloads
    the half-size weight files.
    """
    require_diffusers()
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from nmm_core.devices import pick_device, pick_dtype

    local = Path(source).is_dir()
    if local:
        if not (Path(source) / "model_index.json").is_file():
            raise PresetError(f"{source}: not a diffusers folder (no model_index.json)")
        kwargs: dict[str, Any] = {}
    else:
        if revision is None and str(source) == SD15_REPO:
            revision = SD15_REVISION
        if revision is None or not _HEX40.match(revision):
            raise ConfigError(f"{source}: give a pinned 40-hex revision (got {revision!r}); a branch or tag "
                              "can change under you")
        kwargs = {"revision": revision}
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    try:
        parts = SdParts(
            unet=UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch_dtype,
                                                      variant=variant, **kwargs),
            vae=AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=torch_dtype, variant=variant,
                                              **kwargs),
            text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=torch_dtype,
                                                       variant=variant, **kwargs),
            tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kwargs),
            scheduler=PNDMScheduler.from_pretrained(source, subfolder="scheduler", **kwargs),
            source=f"{source}@{revision}" if revision else str(source),
        )
    except (OSError, ValueError) as e:
        where = "local folder" if local else f"hub revision {revision}"
        detail = " ".join(str(e).split())[:300]
        raise PresetError(f"cannot load Stable Diffusion from {source} ({where}): {detail}") from None
    return parts.to(device=dev)


def _byte_vocabulary() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def tiny_clip_tokenizer():
    """A real `CLIPTokenizer` with a byte-level vocabulary (514 entries + start/end tokens).

    Like SD1.5's: 77 positions, `<|startoftext|>` then `<|endoftext|>` as the last two ids,
    padding with `<|endoftext|>`. No merges, so words become characters: fine for a twin.
    """
    from transformers import CLIPTokenizer

    chars = _byte_vocabulary()
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_sd(*, seed: int = 0, unet_in_channels: int = 4, sample_size: int = 8,
                  cross_attention_dim: int = 32) -> SdParts:
    """A tiny SD1.5 twin with random weights: UNet ~0.4M, VAE ~0.1M, text tower ~0.06M params.

    sample_size is the UNet's latent side; images are `8 * sample_size` pixels. An
    InstructPix2Pix-style UNet takes `unet_in_channels=8` (noisy latent + source latent).
    """
    require_diffusers()
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        unet = UNet2DConditionModel(
            sample_size=sample_size, in_channels=unet_in_channels, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross_attention_dim,
            attention_head_dim=8, norm_num_groups=32)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1, norm_num_groups=8, sample_size=8 * sample_size)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            hidden_size=cross_attention_dim, intermediate_size=4 * cross_attention_dim, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=77, vocab_size=len(tokenizer),
            projection_dim=cross_attention_dim, hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    finally:
        torch.random.set_rng_state(state)  # leave the caller's random stream alone
    return SdParts(unet.eval(), vae.eval(), text_encoder.eval(), tokenizer, PNDMScheduler.from_config(SD15_SCHEDULER),
                   source=f"tiny-sd (seed {seed})")


def build_sd15_random(*, device: str = "meta", dtype: str = "float32") -> SdParts:
    """SD1.5's full-size UNet, VAE and text encoder with random weights (no download)."""
    require_diffusers()
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch_dtype = getattr(torch, dtype)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET).to(torch_dtype)
        vae = AutoencoderKL(**SD15_VAE).to(torch_dtype)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).to(torch_dtype)
    return SdParts(unet, vae, text_encoder, tiny_clip_tokenizer(), PNDMScheduler.from_config(SD15_SCHEDULER),
                   source="sd15 architecture, random weights")


def encode_latents(vae, images, *, scaling_factor: float | None = None, sample: bool = False,
                   generator=None):
    """images (bs, 3, H, W) in [-1, 1] -> latents (bs, 4, H / 8, W / 8), times the scaling factor.

    The posterior mean by default (deterministic); `sample=True` draws from it, as SD training does.
    """
    factor = vae.config.scaling_factor if scaling_factor is None else scaling_factor
    dist = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
    latents = dist.sample(generator=generator) if sample else dist.mean
    return latents * factor


def decode_latents(vae, latents, *, scaling_factor: float | None = None):
    """Scaled latents (bs, 4, h, w) -> images (bs, 3, 8h, 8w), clamped to [-1, 1]."""
    factor = vae.config.scaling_factor if scaling_factor is None else scaling_factor
    images = vae.decode(latents.to(device=vae.device, dtype=vae.dtype) / factor).sample
    return images.clamp(-1, 1)


def noise_scheduler(parts: SdParts):
    """A DDPM scheduler with the parts' noise schedule, for training (add_noise, velocity, ...)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(parts.scheduler.config)


def expand_unet_inputs(unet, in_channels: int):
    """A copy of `unet` taking `in_channels` inputs (InstructPix2Pix): the first conv keeps its
    weights for the original channels and starts the new ones at zero, so the output is
    unchanged until training uses them."""
    import torch
    from diffusers import UNet2DConditionModel

    old = unet.conv_in
    if in_channels < old.in_channels:
        raise ConfigError(f"cannot shrink the UNet input from {old.in_channels} to {in_channels} channels")
    config = dict(unet.config)
    config["in_channels"] = in_channels
    new = UNet2DConditionModel.from_config(config).to(old.weight.device)
    if old.weight.dtype != torch.float32:
        new = new.to(old.weight.dtype)
    state = unet.state_dict()
    weight = torch.zeros(old.out_channels, in_channels, *old.kernel_size, dtype=old.weight.dtype,
                         device=old.weight.device)
    weight[:, : old.in_channels] = old.weight.detach()
    state["conv_in.weight"] = weight
    new.load_state_dict(state)
    return new
