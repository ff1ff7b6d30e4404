"""Settings dataclasses: defaults < YAML < flags, types, errors and the YAML round trip."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from nmm_core.config import (
    add_command,
    add_dataclass_arguments,
    build_parser,
    config_from_parsed,
    config_to_dict,
    dump_yaml,
    load_yaml_config,
    parse_config,
)
from nmm_core.errors import ConfigError
from nmm_core.train import TrainSettings


@dataclass
class LoraSettings:
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: float = 32.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass
class TrainConfig:
    """Fine-tune a model."""

    preset: str = "tiny"
    lr: float = field(default=1e-4, metadata={"help": "learning rate (100% of it)"})
    epochs: int = 3
    mode: Literal["sft", "dpo"] = "sft"
    bf16: bool = True
    max_steps: int | None = None
    seed: Optional[int] = 0  # noqa: UP045 - the typing.Optional spelling must work too
    output: Path = Path("runs")
    tags: list[str] = field(default_factory=list)
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")


@dataclass
class WideLora:
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(r=64))


@dataclass
class NeedsName:
    name: str
    count: int = 1


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- precedence ---------------------------------------------------------------------------


def test_defaults_only():
    assert parse_config(TrainConfig) == TrainConfig()


def test_yaml_overrides_defaults(tmp_path):
    cfg = parse_config(TrainConfig, yaml_path=_yaml(tmp_path, "epochs: 5\nlr: 0.01\n"))
    assert (cfg.epochs, cfg.lr, cfg.preset) == (5, 0.01, "tiny")


def test_flags_override_yaml_and_absent_flags_do_not(tmp_path):
    path = _yaml(tmp_path, "epochs: 5\nlr: 0.01\n")
    cfg = parse_config(TrainConfig, argv=["--config", str(path), "--epochs", "7"])
    assert cfg.epochs == 7
    assert cfg.lr == 0.01  # --lr was not given, so its default must not clobber YAML


def test_flag_equal_to_default_still_beats_yaml(tmp_path):
    path = _yaml(tmp_path, "epochs: 5\nbf16: false\nmode: dpo\n")
    cfg = parse_config(TrainConfig, argv=["--config", str(path), "--epochs", "3", "--bf16",
                                          "--mode", "sft"])
    assert (cfg.epochs, cfg.bf16, cfg.mode) == (3, True, "sft")


def test_build_parser_and_config_from_parsed(tmp_path):
    path = _yaml(tmp_path, "preset: big\n")
    parser = build_parser(TrainConfig, prog="nmm train", description="train it")
    ns = parser.parse_args(["--config", str(path), "--lr", "0.5"])
    cfg = config_from_parsed(TrainConfig, ns)
    assert (cfg.preset, cfg.lr) == ("big", 0.5)


def test_explicit_yaml_path_wins_over_namespace_config(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("epochs: 9\n")
    ns = build_parser(TrainConfig).parse_args(["--config", str(_yaml(tmp_path, "epochs: 2\n"))])
    assert parse_config(TrainConfig, ns, yaml_path=other).epochs == 9


# ---- nested dataclasses -------------------------------------------------------------------


def test_nested_flags():
    cfg = parse_config(TrainConfig, argv=["--lora-r", "8", "--lora-alpha", "4"])
    assert cfg.lora == LoraSettings(r=8, alpha=4.0)


def test_nested_yaml_merges_with_nested_flags(tmp_path):
    path = _yaml(tmp_path, "lora:\n  r: 4\n  target_modules: [k_proj]\n")
    cfg = parse_config(TrainConfig, argv=["--lora-alpha", "1"], yaml_path=path)
    assert cfg.lora == LoraSettings(r=4, alpha=1.0, target_modules=("k_proj",))


def test_nested_yaml_keeps_parent_default_instance(tmp_path):
    cfg = load_yaml_config(WideLora, _yaml(tmp_path, "lora: {alpha: 2}\n"))
    assert (cfg.lora.r, cfg.lora.alpha) == (64, 2.0)


def test_nested_yaml_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="field 'lora': expected a mapping"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "lora: 8\n"))


# ---- types --------------------------------------------------------------------------------


def test_bool_flags_and_yaml(tmp_path):
    assert parse_config(TrainConfig, argv=["--no-bf16"]).bf16 is False
    assert parse_config(TrainConfig, argv=["--bf16"]).bf16 is True
    assert load_yaml_config(TrainConfig, _yaml(tmp_path, "bf16: no\n")).bf16 is False
    with pytest.raises(ConfigError, match="field 'bf16': expected a bool"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "bf16: maybe\n"))


def test_optional_values(tmp_path):
    assert parse_config(TrainConfig, argv=["--max-steps", "10"]).max_steps == 10
    assert parse_config(TrainConfig, argv=["--seed", "none"]).seed is None
    assert parse_config(TrainConfig, argv=["--seed", "NULL"]).seed is None
    assert load_yaml_config(TrainConfig, _yaml(tmp_path, "seed: null\n")).seed is None
    with pytest.raises(ConfigError, match=r"--max-steps: expected an int or none, got 'abc'"):
        parse_config(TrainConfig, argv=["--max-steps", "abc"])


def test_literal_choices():
    assert parse_config(TrainConfig, argv=["--mode", "dpo"]).mode == "dpo"
    with pytest.raises(ConfigError) as info:
        parse_config(TrainConfig, argv=["--mode", "ppo"])
    assert str(info.value) == "--mode: expected one of 'sft', 'dpo', got 'ppo'"


def test_literal_rejected_in_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'mode': expected one of 'sft', 'dpo', got 'x'"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "mode: x\n"))


def test_sequences_paths_and_scientific_floats(tmp_path):
    cfg = parse_config(TrainConfig, argv=["--lora-target-modules", "a,b", "--tags", "x", "y",
                                          "--output", "/tmp/out"])
    assert cfg.lora.target_modules == ("a", "b")
    assert cfg.tags == ["x", "y"]
    assert cfg.output == Path("/tmp/out")
    assert parse_config(TrainConfig, argv=["--tags"]).tags == []
    # PyYAML reads 1e-4 (no dot) as a string; it must still become a float.
    assert load_yaml_config(TrainConfig, _yaml(tmp_path, "lr: 1e-4\n")).lr == 1e-4


def test_wrong_flag_type_message():
    with pytest.raises(ConfigError) as info:
        parse_config(TrainConfig, argv=["--lr", "abc"])
    assert str(info.value) == "--lr: expected a float, got 'abc'"


def test_wrong_yaml_type_message(tmp_path):
    path = _yaml(tmp_path, "epochs: x\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_config(TrainConfig, path)
    assert str(info.value) == f"{path}: field 'epochs': expected an int, got 'x'"


def test_unknown_yaml_key_names_key_and_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown setting 'epoch' \(valid: preset, lr, epochs"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "epoch: 3\n"))
    with pytest.raises(ConfigError, match=r"unknown setting 'lora.rank' \(valid: r, alpha"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "lora: {rank: 3}\n"))


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*No such file"):
        load_yaml_config(TrainConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected a mapping of settings"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml_config(TrainConfig, _yaml(tmp_path, "a: [1\n"))
    assert load_yaml_config(TrainConfig, _yaml(tmp_path, "")) == TrainConfig()


# ---- validation and required fields -------------------------------------------------------


def test_post_init_value_error_becomes_config_error():
    with pytest.raises(ConfigError, match="epochs must be at least 1, got 0") as info:
        parse_config(TrainConfig, argv=["--epochs", "0"])
    assert isinstance(info.value.__cause__, ValueError)


def test_required_field(tmp_path):
    with pytest.raises(ConfigError, match="missing required setting 'name' \\(pass --name"):
        parse_config(NeedsName)
    assert parse_config(NeedsName, argv=["--name", "a"]) == NeedsName(name="a")
    assert load_yaml_config(NeedsName, _yaml(tmp_path, "name: b\n")) == NeedsName(name="b")


# ---- parsers ------------------------------------------------------------------------------


def test_help_lists_flags_help_and_defaults(capsys):
    text = build_parser(TrainConfig, prog="nmm-train").format_help()
    for expected in ("--config FILE", "--lora-r", "--no-bf16", "LoRA rank (default: 16)",
                     "learning rate (100% of it) (default: 0.0001)", "{sft,dpo}",
                     "(default: q_proj,v_proj)", "Fine-tune a model."):
        assert expected in text, expected


def test_subcommands_and_prefix():
    parser = argparse.ArgumentParser(prog="nmm-charts")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub, "train", TrainConfig, help="train")
    evaluate = sub.add_parser("eval")
    add_dataclass_arguments(evaluate, LoraSettings, prefix="eval")
    ns = parser.parse_args(["train", "--epochs", "4", "--lora-r", "2"])
    cfg = config_from_parsed(TrainConfig, ns)
    assert (ns.command, cfg.epochs, cfg.lora.r) == ("train", 4, 2)
    ns = parser.parse_args(["eval", "--eval-r", "5"])
    assert config_from_parsed(LoraSettings, ns, prefix="eval") == LoraSettings(r=5)


def test_abbreviated_flags_are_not_accepted():
    with pytest.raises(SystemExit):
        build_parser(TrainConfig).parse_args(["--epoch", "2"])


# ---- output -------------------------------------------------------------------------------


def _custom() -> TrainConfig:
    return TrainConfig(preset="ünï", lr=2.5e-5, epochs=2, mode="dpo", bf16=False, max_steps=7,
                       seed=None, output=Path("/data/out"), tags=["a", "b"],
                       lora=LoraSettings(r=4, alpha=8.0, target_modules=("q", "k", "v")))


def test_config_to_dict_is_plain_data():
    data = config_to_dict(_custom())
    assert data["output"] == "/data/out"
    assert data["lora"] == {"r": 4, "alpha": 8.0, "target_modules": ["q", "k", "v"]}
    assert list(data) == ["preset", "lr", "epochs", "mode", "bf16", "max_steps", "seed",
                          "output", "tags", "lora"]


def test_dump_load_round_trip(tmp_path):
    cfg = _custom()
    path = tmp_path / "run" / "config.yaml"
    dump_yaml(cfg, path)
    assert load_yaml_config(TrainConfig, path) == cfg
    text = path.read_text(encoding="utf-8")
    assert "!!" not in text and "ünï" in text
    assert yaml.safe_load(text)["lora"]["r"] == 4
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yaml"]
    dump_yaml(TrainConfig(), path)  # overwrite in place
    assert load_yaml_config(TrainConfig, path) == TrainConfig()


def test_alias_flags_set_the_nested_field():
    import argparse as _argparse

    from nmm_core.config import add_config_argument, add_dataclass_arguments, config_from_parsed
    from nmm_core.workflows import TrainConfig

    parser = add_dataclass_arguments(add_config_argument(_argparse.ArgumentParser()), TrainConfig)
    ns = parser.parse_args(["--model", "tiny-smolvlm", "--data", "some/folder"])
    cfg = config_from_parsed(TrainConfig, ns)
    assert cfg.model.model == "tiny-smolvlm" and cfg.data.source == "some/folder"
    ns = parser.parse_args(["--model-model", "tiny-llava-1.5"])
    assert config_from_parsed(TrainConfig, ns).model.model == "tiny-llava-1.5"


@dataclass
class WithTrainSettings:
    train: TrainSettings = field(default_factory=TrainSettings)


def test_switches_take_unquoted_on_and_off_from_yaml_and_flags(tmp_path):
    """YAML 1.1 reads `liger: off` as False: a switch takes it as "off", as a user means it."""
    cfg = load_yaml_config(WithTrainSettings, _yaml(tmp_path, "train:\n  liger: off\n  pixels_on_device: on\n"))
    assert (cfg.train.liger, cfg.train.pixels_on_device, cfg.train.cache_vision_features) == ("off", "on", "auto")
    assert parse_config(WithTrainSettings, argv=["--train-liger", "on"]).train.liger == "on"
    with pytest.raises(ConfigError, match="train.liger.*expected one of 'auto', 'on', 'off', got 'yes please'"):
        load_yaml_config(WithTrainSettings, _yaml(tmp_path, "train:\n  liger: yes please\n"))


@dataclass
class DomainCommand:
    """A domain's command: its group defaults differ from the group class's own."""

    train: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=3.0))
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(r=4))


def test_help_shows_the_defaults_a_command_really_starts_with():
    text = build_parser(DomainCommand).format_help()
    assert "passes over the training set (default: 3.0)" in text
    assert "LoRA rank (default: 4)" in text
    assert parse_config(DomainCommand, argv=[]).train.epochs == 3.0
