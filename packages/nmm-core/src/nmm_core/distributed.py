"""What distributed set-up a process was started in, read from its environment without joining it."""

from __future__ import annotations

import os
from collections.abc import Mapping

# what `accelerate launch` / torchrun set in each process they start
_RANK_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def _launcher_lines(env: Mapping[str, str]) -> list[str]:
    if not any(v in env for v in _RANK_VARS):
        return ["  process: single (WORLD_SIZE, RANK, LOCAL_RANK unset: not started by a launcher)"]
    ranks = ", ".join(f"{v}={env.get(v, 'unset')}" for v in _RANK_VARS)
    lines = [f"  process: {ranks}"]
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        lines.append(f"  accelerate launch set: FSDP version {env.get('FSDP_VERSION', '1')}")
    elif env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        ds = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or f"stage {env.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '?')}"
        lines.append(f"  accelerate launch set: DeepSpeed ({ds})")
    if env.get("ACCELERATE_MIXED_PRECISION"):
        lines.append(f"  accelerate mixed precision: {env['ACCELERATE_MIXED_PRECISION']}")
    return lines


def _gpu_line(env: Mapping[str, str], gpus: int | None) -> str:
    if gpus is None:
        try:
            import torch

            gpus = torch.cuda.device_count()  # counts devices; starts no process group
        except Exception as exc:  # a broken torch install is worth seeing, not crashing on
            return f"  visible GPUs: unknown ({exc})"
    mask = env.get("CUDA_VISIBLE_DEVICES")
    return f"  visible GPUs: {gpus}" + (f" (CUDA_VISIBLE_DEVICES={mask})" if mask is not None else "")


def _config_summary(path: str) -> str:
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        config = load_config_from_file(path)
    except Exception as exc:  # a broken config is what the user needs to see here
        return f"{path} (unreadable: {str(exc).splitlines()[0]})"
    kind = getattr(config.distributed_type, "value", config.distributed_type)
    parts = [str(kind), f"{config.num_processes} processes", f"mixed precision {config.mixed_precision}"]
    if config.fsdp_config:
        parts.append(f"fsdp_version {config.fsdp_config.get('fsdp_version', 1)}")
    if config.deepspeed_config.get("deepspeed_config_file"):
        parts.append(f"deepspeed_config_file {config.deepspeed_config['deepspeed_config_file']}")
    return f"{path} ({', '.join(parts)})"


def _config_lines(env: Mapping[str, str]) -> list[str]:
    from accelerate.commands.config import config_args

    lines = []
    named = env.get("ACCELERATE_CONFIG_FILE")
    if named:
        seen = _config_summary(named) if os.path.isfile(named) else f"{named} (missing)"
        lines.append(f"  ACCELERATE_CONFIG_FILE: {seen}; accelerate launch reads it only as --config_file")
    default = config_args.default_config_file  # accelerate's own path, under HF_HOME
    if os.path.isfile(default):
        summary = _config_summary(default)
        lines.append(f"  accelerate default config (used by a launch without --config_file): {summary}")
    else:
        lines.append(f"  accelerate default config: none at {default}")
    return lines


def distributed_text(env: Mapping[str, str] | None = None, *, gpus: int | None = None) -> str:
    """The ranks, visible GPUs and accelerate config this process sees; joins no process group."""
    env = os.environ if env is None else env
    lines = ["distributed (what this process sees; no process group is started):"]
    lines += _launcher_lines(env)
    lines.append(_gpu_line(env, gpus))
    lines += _config_lines(env)
    return "\n".join(lines)
