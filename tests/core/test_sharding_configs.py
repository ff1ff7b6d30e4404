"""The accelerate configs in configs/accelerate/ read through accelerate's own launcher, and 4-bit storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))

# DeepSpeed keys these JSONs may use (DeepSpeed's config names), and those of them the Trainer
# fills when set to "auto" (transformers' HfTrainerDeepSpeedConfig.trainer_config_process/_finalize)
DS_TOP = {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
          "gradient_clipping", "bf16", "fp16", "zero_optimization"}
DS_ZERO = {"stage", "overlap_comm", "contiguous_gradients", "reduce_scatter", "allgather_partitions",
           "reduce_bucket_size", "allgather_bucket_size", "stage3_prefetch_bucket_size",
           "stage3_param_persistence_threshold", "stage3_max_live_parameters", "stage3_max_reuse_distance",
           "stage3_gather_16bit_weights_on_model_save"}
TRAINER_FILLS = {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                 "gradient_clipping", "bf16.enabled", "fp16.enabled", "zero_optimization.reduce_bucket_size",
                 "zero_optimization.stage3_prefetch_bucket_size",
                 "zero_optimization.stage3_param_persistence_threshold"}


def _launch(path: Path, monkeypatch):
    """What `accelerate launch --config_file path -m nmm_core.cli train` sets up, and its plugin."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    monkeypatch.chdir(ROOT)  # the DeepSpeed JSON paths are relative to the repository root
    args = launch_command_parser().parse_args(["--config_file", str(path), "--num_processes", "2",
                                               "-m", "nmm_core.cli", "train"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as accelerate's launch_command does before its deepspeed launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        env = prepare_deepspeed_cmd_env(args)[1]
    else:
        env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin() if args.use_deepspeed else FullyShardedDataParallelPlugin()
    return args, defaults, plugin


def test_the_four_configs_are_in_the_repo():
    assert {p.name for p in CONFIGS} >= {"fsdp2-lora.yaml", "fsdp2-qlora.yaml",
                                         "deepspeed-zero2.yaml", "deepspeed-zero3.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_key_is_one_accelerate_knows(path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    config = load_config_from_file(str(path))  # unknown top-level keys raise here
    dests = {a.dest for a in launch_command_parser()._actions}
    # nested keys become launcher arguments (fsdp_config.x -> fsdp_x) and an unknown one is dropped
    # silently by accelerate, so a typo there is caught only by this check
    for section in ("fsdp_config", "deepspeed_config"):
        for key in getattr(config, section):
            name = key if section != "fsdp_config" or key.startswith("fsdp_") else f"fsdp_{key}"
            assert name in dests, f"{path.name}: {section}.{key} is not an accelerate launch setting"


@pytest.mark.parametrize("name", ["fsdp2-lora.yaml", "fsdp2-qlora.yaml"])
def test_fsdp_configs_give_fsdp2_with_the_models_own_layers(name, monkeypatch):
    args, _, plugin = _launch(ROOT / "configs" / "accelerate" / name, monkeypatch)
    assert args.use_fsdp and os.environ["FSDP_VERSION"] == "2"
    assert plugin.fsdp_version == 2
    assert plugin.use_orig_params is None  # not a setting of FSDP2
    assert plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap is None  # -> the model's `_no_split_modules`
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs_read_their_json_with_the_stage_in_their_name(stage, monkeypatch):
    path = ROOT / "configs" / "accelerate" / f"deepspeed-zero{stage}.yaml"
    args, defaults, plugin = _launch(path, monkeypatch)
    assert args.use_deepspeed and plugin.zero_stage == stage
    ds_file = ROOT / defaults.deepspeed_config["deepspeed_config_file"]
    assert ds_file.name == f"zero{stage}.json"
    ds = json.loads(ds_file.read_text())
    assert set(ds) <= DS_TOP, set(ds) - DS_TOP
    assert set(ds["zero_optimization"]) <= DS_ZERO, set(ds["zero_optimization"]) - DS_ZERO
    autos = {k for k, v in ds.items() if v == "auto"}
    autos |= {f"{k}.{kk}" for k, v in ds.items() if isinstance(v, dict) for kk, vv in v.items() if vv == "auto"}
    assert autos <= TRAINER_FILLS, autos - TRAINER_FILLS  # an "auto" nobody fills stops DeepSpeed


def test_deepspeed_is_an_extra_of_nmm_core_only():
    import tomllib

    core = tomllib.loads((ROOT / "packages" / "nmm-core" / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("deepspeed") for r in core["optional-dependencies"]["deepspeed"])
    assert not any(r.startswith("deepspeed") for r in core["dependencies"])
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any("deepspeed" in r for r in root)  # `uv sync` does not build it


def test_4bit_storage_dtype_reaches_bitsandbytes_config():
    pytest.importorskip("bitsandbytes")
    from nmm_core.config import parse_config
    from nmm_core.families import get_family
    from nmm_core.models import quantization_config
    from nmm_core.workflows import TrainConfig

    family = get_family("llava")
    assert quantization_config(family, "4bit", torch.bfloat16).bnb_4bit_quant_storage == torch.uint8
    cfg = parse_config(TrainConfig, argv=["--model-quant-storage", "bfloat16"])
    assert cfg.model.quant_storage == "bfloat16"
    bnb = quantization_config(family, "4bit", torch.bfloat16, storage=cfg.model.quant_storage)
    assert bnb.bnb_4bit_quant_storage == torch.bfloat16


def test_4bit_weights_load_packed_in_bf16():
    bnb = pytest.importorskip("bitsandbytes")
    from nmm_core.models import load_model

    loaded = load_model("tiny-llava-1.5", quantization="4bit", device="cpu", dtype="bfloat16",
                        quant_storage="bfloat16")
    layer = loaded.model.model.language_model.layers[0].mlp.down_proj
    assert isinstance(layer, bnb.nn.Linear4bit) and layer.weight.dtype == torch.bfloat16
    # every weight FSDP would shard in this layer is now one dtype
    assert {p.dtype for p in loaded.model.model.language_model.layers[0].parameters()} == {torch.bfloat16}


def test_storage_without_4bit_is_a_config_error():
    from nmm_core.errors import ConfigError
    from nmm_core.models import load_model

    with pytest.raises(ConfigError, match="--model-quant-storage bfloat16 applies to 4-bit"):
        load_model("tiny-qwen2-vl", device="cpu", quant_storage="bfloat16")
