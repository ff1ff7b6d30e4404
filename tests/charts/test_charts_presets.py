"""Chart presets: registered through the entry point, pinned, processor settings that load."""

from __future__ import annotations

import json
import re

import pytest

from nmm_charts.presets import PRESETS
from nmm_core.presets import all_presets, preset_owner


def test_charts_presets_are_registered_by_this_package_with_pinned_commits():
    presets = all_presets()
    assert {"qwen2-vl-2b", "smolvlm", "smolvlm-instruct", "moondream2"} <= set(presets)
    for preset in PRESETS:
        assert preset_owner(preset.name) == "nmm-charts"
        # moondream2 publishes dated release tags; the others are pinned to commits
        pattern = r"\d{4}-\d{2}-\d{2}" if preset.name == "moondream2" else r"[0-9a-f]{40}"
        assert re.fullmatch(pattern, preset.revision), preset
    assert presets["qwen2-vl-2b"].hub_id == "Qwen/Qwen2-VL-2B-Instruct"
    assert presets["qwen2-vl-2b"].family == "qwen2_vl"
    assert presets["smolvlm-instruct"].family == "idefics3"
    assert (presets["smolvlm"].hub_id, presets["smolvlm"].family) == ("HuggingFaceTB/SmolVLM-Base", "idefics3")
    # the last 2024 release, whose SigLIP + MLP + Phi layout core's `moondream` family implements
    assert (presets["moondream2"].hub_id, presets["moondream2"].revision) == ("vikhyatk/moondream2", "2024-08-26")
    assert presets["moondream2"].family == "moondream"


def test_charts_qwen_pixel_budget_is_understood_by_the_real_processor_class():
    from dataclasses import replace

    from PIL import Image

    from nmm_core.models import load_processor, resolve_source

    preset = all_presets()["qwen2-vl-2b"]
    # the twin's files (same processor class, patch 14, 2x2 merge) with the real preset's settings
    source = replace(resolve_source("tiny-qwen2-vl"), preset=preset, revision=None)
    image_processor = load_processor(source).image_processor
    assert image_processor.size.shortest_edge == preset.processor_kwargs["min_pixels"] == 256 * 28 * 28
    assert image_processor.size.longest_edge == preset.processor_kwargs["max_pixels"]

    def tokens(w, h):
        return int(image_processor(Image.new("RGB", (w, h)))["image_grid_thw"].prod()) // 4

    assert 256 <= tokens(120, 90) <= 300  # a thumbnail is scaled up to the floor
    assert 600 <= tokens(800, 600) <= 620  # a typical ChartQA chart keeps its resolution
    assert tokens(1800, 1350) <= 1024  # a large one is capped


def test_moondream2_offline_fails_with_one_clear_error_and_leaves_no_partial_conversion(tmp_path, monkeypatch):
    from nmm_core.errors import PresetError
    from nmm_core.models import load_model

    monkeypatch.setenv("NMM_CACHE", str(tmp_path))
    with pytest.raises(PresetError, match=r"cannot load 'vikhyatk/moondream2' at revision 2024-08-26 \(HF_HUB_OFFLINE"):
        load_model("moondream2")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("preset", [p.name for p in PRESETS])
def test_a_study_preset_keeps_lora_r16_alpha32_and_a_twin_takes_the_common_default(preset):
    from nmm_charts.cli import CHARTS
    from nmm_core.config import parse_config
    from nmm_core.domain import standard_verbs

    ChartTrainConfig = standard_verbs(CHARTS)["train"][0]
    lora = parse_config(ChartTrainConfig, argv=["--model", preset]).lora
    assert (lora.r, lora.alpha) == (16, 32)
    twin = parse_config(ChartTrainConfig, argv=["--lora-r", "64"]).lora  # tiny-qwen2-vl, with its recipe
    assert (twin.r, twin.alpha) == (64, 128)


def test_a_study_preset_missing_offline_is_refused_before_any_data_is_prepared(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from nmm_charts.cli import main
    from nmm_core.domain import Domain

    def prepare(*args, **kwargs):
        raise AssertionError("the chart data was prepared before the model was checked")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setattr(Domain, "source_of", prepare)
    assert main(["train", "--model", "qwen2-vl-2b", "--output-dir", str(tmp_path / "runs")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: --model qwen2-vl-2b: 'Qwen/Qwen2-VL-2B-Instruct' at revision ")
    assert "not in the local" in last
    assert not (tmp_path / "runs").exists()


# what `--model` takes in nmm-charts: its own presets and core's twins of their families
CHART_MODELS = {"qwen2-vl-2b", "smolvlm", "smolvlm-instruct", "moondream2", "tiny-qwen2-vl", "tiny-smolvlm",
                "tiny-moondream"}


def test_charts_refuses_another_domains_preset_in_one_line_before_any_run_folder(tmp_path, capsys):
    from nmm_charts.cli import main

    runs = tmp_path / "runs"
    nowhere = ["--data-source", str(tmp_path / "no-data"), "--output-dir", str(runs)]  # taken: fails on the data
    for verb, name, owner in (("train", "tiny-gill", "nmm-memes"), ("eval", "llava-1.5-7b", "nmm-pathology"),
                              ("train", "tiny-llava-1.5", "nmm-pathology")):
        assert main([verb, "--model", name, *nowhere]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --model {name} is a preset of {owner}, not of nmm-charts"), err
        assert "\n" not in err and set(err.split("(its presets: ")[1].rstrip(")").split(", ")) == CHART_MODELS
    own = ["--data-source", str(tmp_path / "no-data"), "--output-dir", str(tmp_path / "own")]
    assert main(["train", "--model", "tiny-smolvlm", *own]) == 2  # its own: refused for the data alone
    assert "no-data" in capsys.readouterr().err
    llava = tmp_path / "llava-folder"  # a model folder of a family charts does not take
    llava.mkdir()
    (llava / "config.json").write_text(json.dumps({"model_type": "llava"}))
    assert main(["eval", "--model", str(llava), *nowhere]) == 2
    assert f"--model {llava} is a 'llava' model folder; nmm-charts takes family" in capsys.readouterr().err
    assert main(["eval", "--model", "org/model", "--model-family", "llava", *nowhere]) == 2
    assert "--model-family llava: nmm-charts takes family qwen2_vl, idefics3, moondream" in capsys.readouterr().err
    assert not runs.exists()


def test_charts_unknown_preset_help_and_info_list_only_its_presets(capsys):
    from nmm_charts.cli import main

    assert main(["eval", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert set(err.split("known presets: ")[1].split(", ")) == CHART_MODELS
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"--model takes a preset ({', '.join(sorted(CHART_MODELS))})" in shown and "gill" not in shown
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith("presets nmm-charts takes (7 of the")]
    assert {line.split()[0] for line in lines[at + 1: at + 8]} == CHART_MODELS
    assert lines[at + 8].startswith("CUDA:")


def test_moondream2_missing_offline_is_refused_up_front_until_its_pinned_files_or_converted_copy_are_there(
        hf_cache, tmp_path, capsys, monkeypatch):
    """Its checkpoint is converted on first load: offline, that needs the pinned release's config,
    tokenizer and weights in the Hugging Face cache, or the converted copy in the nmm cache."""
    from nmm_charts.cli import main
    from nmm_core.domain import Domain
    from nmm_core.errors import ConfigError
    from nmm_core.families.moondream_convert import converted_folder
    from nmm_core.twins import MARKER
    from nmm_core.workflows import ModelSettings, check_model_source

    def prepare(*args, **kwargs):
        raise AssertionError("the chart data was prepared before the model was checked")

    monkeypatch.setattr(Domain, "source_of", prepare)
    hub_id, revision = "vikhyatk/moondream2", "2024-08-26"
    hf_cache(hub_id, "2025-01-09", "config.json", "tokenizer_config.json", "model.safetensors")  # another release
    runs = tmp_path / "runs"
    assert main(["train", "--model", "moondream2", "--output-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"error: --model moondream2: '{hub_id}' at revision {revision} is not in the local Hugging Face cache "
        "(no config.json) and HF_HUB_OFFLINE is set")
    assert not runs.exists()
    hf_cache(hub_id, revision, "config.json", "tokenizer_config.json")
    with pytest.raises(ConfigError, match=r"\(no weights\)"):
        check_model_source(ModelSettings(model="moondream2"))
    hf_cache(hub_id, revision, "model.safetensors")
    check_model_source(ModelSettings(model="moondream2"))
    # converted once, the hub's files are no longer needed
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "emptied"))
    with pytest.raises(ConfigError, match="no config.json"):
        check_model_source(ModelSettings(model="moondream2"))
    converted_folder(hub_id, revision).mkdir(parents=True)
    (converted_folder(hub_id, revision) / MARKER).write_text("{}")
    check_model_source(ModelSettings(model="moondream2"))
