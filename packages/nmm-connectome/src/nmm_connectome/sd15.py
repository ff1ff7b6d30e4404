"""Stable Diffusion 1.5 for rest FC -> task FC: a matrix <-> image codec and an
InstructPix2Pix-style conditioned UNet (the rest image's latent as 4 extra input channels).

The SD pieces (loading at a pinned revision, the tiny twin, latents, widening the UNet's first
convolution) are `nmm_core.diffusion`'s; this module adds only what is FC-specific. The
objective is the standard noise-prediction one (DDPM noise, MSE on the noise); core's trainer
runs it, with its checkpoints, resume, progress and logs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from nmm_connectome.data import Cohort
from nmm_connectome.evaluate import from_edges, pearson_rows, to_edges
from nmm_connectome.settings import Sd15Settings
from nmm_core.errors import ConfigError, DataError
from nmm_core.runs import RunDir, atomic_write_json
from nmm_core.seeds import part_seed


class MatrixCodec:
    """FC matrices (n, R, R) <-> RGB images (n, 3, S, S) in [-1, 1].

    to_image: values / value_range, clipped to [-1, 1], nearest-neighbour up-sampling, the same
    value in the three channels (SD's VAE sees a grey image). to_matrix: channel mean, area
    down-sampling to R x R, symmetrised, the diagonal set. Exact when S is a multiple of R and
    |FC| <= value_range; otherwise the error is what `round_trip` measures.
    """

    def __init__(self, n_regions: int, image_size: int, value_range: float = 1.0, diagonal: float = 1.0):
        self.n_regions, self.image_size = n_regions, image_size
        self.value_range, self.diagonal = value_range, diagonal

    def to_image(self, mats: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(mats, np.float32)).clamp(-self.value_range, self.value_range)
        x = torch.nn.functional.interpolate(x[:, None] / self.value_range, size=self.image_size, mode="nearest")
        return x.expand(-1, 3, -1, -1).contiguous()

    def to_matrix(self, images: torch.Tensor) -> np.ndarray:
        x = images.float().mean(dim=1, keepdim=True)
        x = torch.nn.functional.adaptive_avg_pool2d(x, self.n_regions)[:, 0] * self.value_range
        x = (x + x.transpose(1, 2)) / 2
        m = x.cpu().numpy()
        idx = np.arange(self.n_regions)
        m[:, idx, idx] = self.diagonal
        return m

    def round_trip(self, mats: np.ndarray, vae=None, *, batch_size: int = 16) -> dict[str, float]:
        """MAE and mean Pearson r of the edges after matrix -> image [-> VAE latent -> image] -> matrix."""
        from nmm_core.diffusion import decode_latents, encode_latents

        back = []
        for start in range(0, len(mats), batch_size):
            images = self.to_image(mats[start:start + batch_size])
            if vae is not None:
                with torch.no_grad():
                    images = decode_latents(vae, encode_latents(vae, images))
            back.append(self.to_matrix(images))
        a, b = to_edges(np.asarray(mats)), to_edges(np.concatenate(back))
        return {"mae": float(np.abs(a - b).mean()), "r": float(pearson_rows(a, b).mean())}


def load_parts(settings: Sd15Settings):
    """The SD parts named by `settings.model` (`tiny`: the seeded tiny twin, no download)."""
    from nmm_core.diffusion import build_tiny_sd, load_sd15

    if settings.model == "tiny":
        return build_tiny_sd(seed=part_seed(settings.seed), sample_size=settings.image_size // 8)
    return load_sd15(settings.model, revision=settings.revision, dtype=settings.dtype, device=settings.device)


class NoisePrediction(torch.nn.Module):
    """The widened UNet and its training objective as one model that core's trainer drives: a
    batch of (task, rest) latents in, the MSE of the predicted DDPM noise out."""

    def __init__(self, unet, scheduler, text: torch.Tensor) -> None:
        super().__init__()
        self.unet = unet
        self.scheduler = scheduler
        self.register_buffer("text", text, persistent=False)

    def forward(self, task: torch.Tensor, rest: torch.Tensor) -> dict[str, torch.Tensor]:
        noise = torch.randn_like(task)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(task),), device=task.device)
        noisy = self.scheduler.add_noise(task, noise, t)
        dtype = self.unet.dtype
        pred = self.unet(torch.cat([noisy, rest], dim=1).to(dtype), t,
                         encoder_hidden_states=self.text.expand(len(task), -1, -1).to(dtype)).sample
        return {"loss": torch.nn.functional.mse_loss(pred.float(), noise)}


def unet_lora_config(settings: Sd15Settings):
    """The UNet's LoRA: alpha = r (scale 1), the published SD1.5 LoRA recipe (diffusers' train_text_to_image_lora)."""
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_r, init_lora_weights="gaussian",
                      target_modules=["to_q", "to_k", "to_v", "to_out.0"])


def train_sd15(train: Cohort, settings: Sd15Settings, run: RunDir, *, resume: bool = False,
               deterministic: bool = False) -> dict:
    """Fine-tune the widened UNet on the training subjects with core's trainer (checkpoints in
    `run/checkpoints`, resumable; bf16 autocast over fp32 weights on a GPU); save it under `run/model/`.
    `deterministic`: the framework's deterministic algorithms."""
    from nmm_core.devices import pick_device
    from nmm_core.diffusion import encode_latents, expand_unet_inputs, noise_scheduler
    from nmm_core.seeds import seed_run
    from nmm_core.train import TrainSettings, fit

    if settings.dtype == "float16":
        # fp16 weights would train without loss scaling (and fp16 AdamW states): fp32 weights with
        # bf16 autocast, or plain bf16, train safely
        raise ConfigError("sd15 trains in float32 (bf16 autocast on a GPU that has bf16) or bfloat16: "
                          "drop --sd15-dtype float16")
    seed = part_seed(settings.seed)
    seed_run(seed, deterministic=deterministic)  # conv_in's new channels and LoRA are drawn before the trainer seeds
    device = pick_device(settings.device, flag="--sd15-device")
    if device.type == "cuda" and (device.index or 0) != 0:
        # transformers' Trainer trains on the first visible GPU (all of them, with DataParallel)
        raise ConfigError(f"sd15.device {settings.device}: choose the GPU with CUDA_VISIBLE_DEVICES={device.index} "
                          "and --sd15-device cuda")
    parts = load_parts(settings).to(device=device)
    codec = _codec(train, settings)
    round_trip = {"codec": codec.round_trip(train.task[:64]),
                  "codec + VAE": codec.round_trip(train.task[:64], parts.vae)}
    unet = expand_unet_inputs(parts.unet, parts.unet.config.in_channels + 4).to(device)
    if settings.train_unet == "lora":
        unet.requires_grad_(False)
        unet.add_adapter(unet_lora_config(settings))
        unet.conv_in.requires_grad_(True)  # the new input channels must learn
    with torch.no_grad():
        rest_lat = _latents(parts, codec, train.rest, encode_latents)
        task_lat = _latents(parts, codec, train.task, encode_latents)
        text = parts.encode_text([""]).float()
    model = NoisePrediction(unet, noise_scheduler(parts), text)
    outcome = fit(
        model, torch.utils.data.StackDataset(task=task_lat, rest=rest_lat), torch.utils.data.default_collate,
        # the loop it replaces: constant learning rate, no warm-up, batches drawn at random
        settings=TrainSettings(max_steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
                               warmup=0, scheduler="constant", logging_steps=min(20, settings.steps),
                               save_steps=settings.save_steps, seed=seed, deterministic=deterministic,
                               num_workers=0,
                               answer_only_logits=False, cache_vision_features="off", liger="off"),
        # bf16 autocast where the card has bf16 (not a T4 or V100: fp32 there)
        run_dir=run.path, resume=resume, bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        use_cpu=device.type == "cpu")
    model_dir = run.subdir("model")
    if settings.train_unet == "lora":
        unet.fuse_lora()  # fold the adapters into the weights: the saved UNet is a plain one
        unet.unload_lora()
    unet.save_pretrained(model_dir / "unet", safe_serialization=True)
    atomic_write_json(model_dir / "sd15.json", {"settings": asdict(settings), "n_regions": train.n_regions,
                                                "kind": train.kind, "round_trip": round_trip})
    losses = [row["loss"] for row in outcome.log_history if "loss" in row]
    return {"round_trip": round_trip, "final_loss": losses[-1] if losses else outcome.train_loss,
            "global_step": outcome.global_step,
            "resumed_from": outcome.resumed_from and str(run.final(outcome.resumed_from))}


def _codec(cohort: Cohort, s: Sd15Settings) -> MatrixCodec:
    return MatrixCodec(cohort.n_regions, s.image_size, s.value_range, 1.0 if cohort.kind == "correlation" else 0.0)


def _latents(parts, codec: MatrixCodec, mats: np.ndarray, encode, batch_size: int = 32) -> torch.Tensor:
    out = [encode(parts.vae, codec.to_image(mats[i:i + batch_size])).float().cpu()
           for i in range(0, len(mats), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def predict_sd15(model_dir: str | Path, rest_edges: np.ndarray, settings: Sd15Settings | None = None,
                 *, seed: int | None = None) -> np.ndarray:
    """(n, E) rest edges -> (n, E) task edges: DDIM sampling conditioned on the rest latent (noise drawn
    with `seed`, by default the run's sd15 seed)."""
    from diffusers import DDIMScheduler, UNet2DConditionModel

    from nmm_core.devices import pick_device
    from nmm_core.diffusion import decode_latents, encode_latents

    model_dir = Path(model_dir)
    try:
        meta = json.loads((model_dir / "sd15.json").read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{model_dir}: not a saved SD1.5 model ({e})") from None
    s = Sd15Settings(**meta["settings"]) if settings is None else settings
    device = pick_device(s.device, flag="--sd15-device")
    parts = load_parts(s).to(device=device)
    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet").to(device).eval()
    diagonal = 1.0 if meta["kind"] == "correlation" else 0.0
    codec = MatrixCodec(meta["n_regions"], s.image_size, s.value_range, diagonal)
    rest = from_edges(np.asarray(rest_edges, np.float32), diagonal)
    cond = _latents(parts, codec, rest, encode_latents).to(device)
    sched = DDIMScheduler.from_config(parts.scheduler.config)
    sched.set_timesteps(s.inference_steps)
    gen = torch.Generator().manual_seed(part_seed(s.seed) if seed is None else seed)
    x = torch.randn(cond.shape, generator=gen).to(device) * sched.init_noise_sigma
    text = parts.encode_text([""]).expand(len(cond), -1, -1)
    dtype = next(unet.parameters()).dtype
    for t in sched.timesteps:
        inp = sched.scale_model_input(x, t)
        eps = unet(torch.cat([inp, cond], dim=1).to(dtype), t, encoder_hidden_states=text.to(dtype)).sample
        x = sched.step(eps.float(), t, x).prev_sample
    images = torch.cat([decode_latents(parts.vae, x[i:i + 32]) for i in range(0, len(x), 32)])
    return to_edges(codec.to_matrix(images))
