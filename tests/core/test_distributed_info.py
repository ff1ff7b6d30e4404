"""`nmm info` reports the launcher's ranks, the visible GPUs and the accelerate config, joining nothing."""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _clear(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES", "ACCELERATE_CONFIG_FILE",
                "ACCELERATE_USE_FSDP", "FSDP_VERSION", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_MIXED_PRECISION",
                "ACCELERATE_DEEPSPEED_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)


def test_info_shows_a_launched_rank_its_gpus_and_configs(monkeypatch, tmp_path, capsys):
    from accelerate.commands.config import config_args

    from nmm_core.cli import main

    _clear(monkeypatch)
    default = tmp_path / "default_config.yaml"
    default.write_text((ROOT / "configs/accelerate/deepspeed-zero3.yaml").read_text())
    monkeypatch.setattr(config_args, "default_config_file", str(default))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    env = {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "4,5,6,7",
           "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "ACCELERATE_MIXED_PRECISION": "bf16",
           "ACCELERATE_CONFIG_FILE": str(ROOT / "configs/accelerate/fsdp2-qlora.yaml")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    assert main(["info"]) == 0
    out = capsys.readouterr().out.split("distributed", 1)[1]
    assert "WORLD_SIZE=8, RANK=5, LOCAL_RANK=1" in out
    assert "accelerate launch set: FSDP version 2" in out
    assert "accelerate mixed precision: bf16" in out
    assert "visible GPUs: 4 (CUDA_VISIBLE_DEVICES=4,5,6,7)" in out
    assert "fsdp2-qlora.yaml (FSDP, 2 processes, mixed precision bf16, fsdp_version 2)" in out
    assert f"{default} (DEEPSPEED, 2 processes" in out and "deepspeed_config_file configs/deepspeed/zero3.json" in out
    assert not torch.distributed.is_initialized()  # info looked; it did not join the group


def test_info_outside_a_launcher_says_single_process_and_no_config(monkeypatch, tmp_path):
    from accelerate.commands.config import config_args

    from nmm_core.distributed import distributed_text

    _clear(monkeypatch)
    monkeypatch.setattr(config_args, "default_config_file", str(tmp_path / "absent.yaml"))
    text = distributed_text(gpus=0)
    assert "process: single" in text and "visible GPUs: 0" in text
    assert f"accelerate default config: none at {tmp_path / 'absent.yaml'}" in text
    assert "FSDP" not in text and "DeepSpeed" not in text


def test_a_broken_accelerate_config_is_named_not_raised(monkeypatch, tmp_path):
    from accelerate.commands.config import config_args

    from nmm_core.distributed import distributed_text

    _clear(monkeypatch)
    bad = tmp_path / "default_config.yaml"
    bad.write_text("distributed_type: FSDP\nnum_procesess: 2\n")
    monkeypatch.setattr(config_args, "default_config_file", str(bad))
    text = distributed_text(gpus=1)
    assert f"{bad} (unreadable: The config file at {bad} had unknown keys (['num_procesess'])" in text
