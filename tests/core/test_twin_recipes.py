"""A tiny twin's recipe fills the settings a user left unset; flags and YAML win; real models get none."""

from __future__ import annotations

import pytest

from nmm_core.config import _leaves, parse_config
from nmm_core.errors import PresetError
from nmm_core.presets import ModelPreset, all_presets, recommended_settings
from nmm_core.workflows import EvalConfig, TrainConfig


def test_a_twin_gets_its_recipe_where_nothing_was_given():
    cfg = parse_config(TrainConfig, argv=["--model", "tiny-qwen2-vl"])
    assert (cfg.train.lr, cfg.train.batch_size, cfg.lora.train_projector) == (3e-3, 16, True)
    assert parse_config(EvalConfig, argv=["--model", "tiny-qwen2-vl"]).generation.batch_size == 32


def test_flags_and_yaml_override_the_recipe(tmp_path):
    argv = ["--model", "tiny-qwen2-vl", "--train-lr", "1e-4", "--no-lora-train-projector"]
    cfg = parse_config(TrainConfig, argv=argv)
    assert (cfg.train.lr, cfg.lora.train_projector, cfg.train.batch_size) == (1e-4, False, 16)
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text("model: {model: tiny-qwen2-vl}\ntrain: {lr: 5.0e-4}\n")
    cfg = parse_config(TrainConfig, argv=[], yaml_path=yaml_file)
    assert (cfg.train.lr, cfg.train.batch_size) == (5e-4, 16)


def test_a_folder_or_hub_model_keeps_the_settings_defaults(tmp_path):
    plain = TrainConfig()
    for model in (str(tmp_path), "org/model"):
        cfg = parse_config(TrainConfig, argv=["--model", model])
        assert (cfg.train.lr, cfg.train.batch_size, cfg.lora.train_projector) == (
            plain.train.lr, plain.train.batch_size, plain.lora.train_projector)


def test_a_domain_recipe_goes_over_the_presets_own():
    domain = {"tiny-qwen2-vl": {"train.epochs": 3.0, "train.lr": 1e-3}, "tiny-own-twin": {"train.epochs": 2.0}}
    got = recommended_settings("tiny-qwen2-vl", domain)
    assert (got["train.epochs"], got["train.lr"], got["train.batch_size"]) == (3.0, 1e-3, 16)
    assert recommended_settings("tiny-own-twin", domain) == {"train.epochs": 2.0}
    assert recommended_settings("qwen2-vl-2b", domain) == {}


def test_every_twin_recipe_names_real_settings():
    names = {n for cls in (TrainConfig, EvalConfig) for n, _, _ in _leaves(cls)}
    for preset in all_presets().values():
        assert set(preset.recipe) <= names, preset.name


def test_only_a_tiny_twin_carries_a_recipe():
    with pytest.raises(PresetError, match="only a tiny twin"):
        ModelPreset("real", "qwen2_vl", hub_id="org/model", revision="a" * 40, recipe={"train.lr": 1.0})


def test_help_shows_the_twin_recipe_value_beside_the_default():
    from nmm_core.config import build_parser

    helps = {a.dest: a.help for a in build_parser(TrainConfig)._actions}
    assert helps["train.lr"].endswith("(default: 0.0002; tiny twin tiny-qwen2-vl: 0.003)")
    assert helps["lora.train_projector"].endswith("(default: False; tiny twin tiny-qwen2-vl: True)")
    assert helps["train.warmup"].endswith("(default: 0.03)")  # not in the recipe: the default alone
