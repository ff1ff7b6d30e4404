"""LoRA's scale (alpha / r) means one thing on every VLM path: alpha is 2 x r unless given."""

from __future__ import annotations

import yaml

from nmm_core.config import dump_yaml, parse_config
from nmm_core.lora import LoraSettings
from nmm_core.workflows import TrainConfig


def test_a_larger_rank_keeps_the_scale():
    assert parse_config(TrainConfig, argv=["--lora-r", "64"]).lora.alpha == 128


def test_an_explicit_alpha_is_kept():
    lora = parse_config(TrainConfig, argv=["--lora-r", "64", "--lora-alpha", "16"]).lora
    assert (lora.r, lora.alpha) == (64, 16)
    assert (LoraSettings(r=8).alpha, LoraSettings(r=8, alpha=4).alpha) == (16, 4)


def test_the_default_is_the_studies_recipe():
    lora = parse_config(TrainConfig, argv=[]).lora
    assert (lora.r, lora.alpha) == (16, 32)


def test_a_rank_from_yaml_derives_alpha_and_config_yaml_records_it(tmp_path):
    (tmp_path / "in.yaml").write_text("lora:\n  r: 4\n")
    cfg = parse_config(TrainConfig, argv=[], yaml_path=tmp_path / "in.yaml")
    assert cfg.lora.alpha == 8
    dump_yaml(cfg, tmp_path / "config.yaml")
    recorded = yaml.safe_load((tmp_path / "config.yaml").read_text())["lora"]
    assert (recorded["r"], recorded["alpha"]) == (4, 8)
    # the recorded file read back (a resume, a rerun) gives the same settings
    assert parse_config(TrainConfig, argv=[], yaml_path=tmp_path / "config.yaml").lora == cfg.lora


def test_the_help_says_so():
    from nmm_core.config import build_parser

    assert "unless given, 2 x r" in " ".join(build_parser(TrainConfig).format_help().split())


def test_peft_scales_by_two_at_rank_64():
    from nmm_core.lora import apply_lora
    from nmm_core.models import load_model

    lora = parse_config(TrainConfig, argv=["--lora-r", "64"]).lora
    model = apply_lora(load_model("tiny-qwen2-vl"), lora)
    scalings = {s["default"] for m in model.modules() if isinstance(getattr(m, "scaling", None), dict)
                for s in [m.scaling]}
    assert scalings == {2.0}
