"""Presets: exact names, pinned revisions, one owner per name."""

from __future__ import annotations

import json

import pytest

from nmm_core import presets
from nmm_core.errors import PresetError
from nmm_core.presets import ModelPreset


def test_core_registers_a_twin_of_every_family():
    names = presets.all_presets()
    assert {"tiny-qwen2-vl", "tiny-smolvlm", "tiny-llava-1.5", "tiny-tinyllava", "tiny-opt-clip"} <= set(names)
    assert presets.preset_owner("tiny-qwen2-vl") == "nmm-core"


def test_unknown_name_lists_known_presets_without_fuzzy_matching():
    with pytest.raises(PresetError, match="unknown preset 'tiny-qwen2'.*tiny-qwen2-vl"):
        presets.get_preset("tiny-qwen2")


@pytest.mark.parametrize("revision", [None, "main", "v1.0", "abc123"])
def test_hub_presets_must_pin_their_revision(revision):
    with pytest.raises(PresetError, match="not pinned"):
        ModelPreset("x", "qwen2_vl", hub_id="org/x", revision=revision)


@pytest.mark.parametrize("revision", ["a" * 40, "2025-01-09"])
def test_commits_and_dated_tags_are_pinned(revision):
    assert ModelPreset("x", "qwen2_vl", hub_id="org/x", revision=revision).revision == revision


def test_a_name_claimed_twice_names_both_packages(monkeypatch):
    monkeypatch.setattr(presets, "_registry", presets._Registry())
    presets.register([ModelPreset("dup", "llava", tiny=True)], owner="pkg-a")
    with pytest.raises(PresetError, match="registered twice: by pkg-a and by pkg-b"):
        presets.register([ModelPreset("dup", "llava", tiny=True)], owner="pkg-b")


def test_unknown_family_is_refused():
    with pytest.raises(PresetError, match="unknown model family 'qwen'"):
        ModelPreset("x", "qwen", tiny=True)


def test_building_a_twin_leaves_the_callers_random_state_alone(tmp_path):
    import torch

    from nmm_core.twins import build_twin

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    build_twin("qwen2_vl", tmp_path / "twin")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert (tmp_path / "twin" / "config.json").exists() and (tmp_path / "twin" / "nmm.json").exists()


def test_a_revision_pins_a_bare_hub_id_and_is_refused_for_presets(tmp_path):
    from nmm_core.errors import PresetError
    from nmm_core.models import resolve_source
    from nmm_core.workflows import ModelSettings, check_model_source

    commit = "a" * 40
    source = resolve_source("org/model", family="qwen2_vl", revision=commit)
    assert (source.location, source.revision) == ("org/model", commit)
    with pytest.raises(PresetError, match="pinned to its own revision"):
        check_model_source(ModelSettings(model="tiny-qwen2-vl", revision=commit))
    with pytest.raises(PresetError, match="a local folder"):
        resolve_source(str(tmp_path), revision=commit)


def test_a_family_that_names_its_trainee_trains_its_presets_with_it(monkeypatch):
    """As GILL's does: `run_train` builds such a family's presets with its trainee; its real preset may
    name no checkpoint (its trainee loads its own parts); other families keep core's LoRA trainee."""
    import json
    from dataclasses import replace

    from nmm_core import families
    from nmm_core.models import load_model
    from nmm_core.workflows import ModelSettings, family_trainee, lora_trainee

    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    monkeypatch.setattr(presets, "_registry", presets._Registry(loaded=True))
    own = families.register_family(replace(families.get_family("opt_clip"), name="own", model_types=(),
                                           trainee="json:dumps"))
    presets.register([ModelPreset("tiny-own", "own", tiny=True), ModelPreset("own", "own"),
                      ModelPreset("tiny-llava", "llava", tiny=True)], owner="pkg")
    assert family_trainee(ModelSettings(model="tiny-own")) is json.dumps
    assert family_trainee(ModelSettings(model="own")) is json.dumps
    assert family_trainee(ModelSettings(model="tiny-llava")) is lora_trainee
    with pytest.raises(PresetError, match="'tiny-own' is a own model: it is built by its own trainee"):
        load_model("tiny-own")  # core's loader (eval, predict) never builds a twin it cannot use
    assert families.register_family(own) is own  # the same declaration again (a module re-read) is fine
    with pytest.raises(PresetError, match="'own' is registered twice, differently"):
        families.register_family(replace(own, trainee="json:loads"))
    with pytest.raises(PresetError, match="either hub_id or tiny"):
        ModelPreset("x", "llava")  # a family without its own trainee: a real preset names its checkpoint


def test_offline_a_hub_model_missing_from_the_local_cache_is_refused_by_the_source_check(hf_cache, monkeypatch):
    from nmm_core.errors import ConfigError
    from nmm_core.presets import all_presets
    from nmm_core.twins import twin_path
    from nmm_core.workflows import ModelSettings, check_model_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = all_presets()["qwen2-vl-2b"]
    with pytest.raises(ConfigError, match=rf"^--model qwen2-vl-2b: '{preset.hub_id}' at revision {preset.revision} "
                                          r"is not in the local Hugging Face cache \(no config.json\) and "
                                          "HF_HUB_OFFLINE is set"):
        check_model_source(ModelSettings(model="qwen2-vl-2b"))
    with pytest.raises(ConfigError, match="'org/model' is not in the local Hugging Face cache"):
        check_model_source(ModelSettings(model="org/model", family="qwen2_vl"))
    # the hub's cache layout, holding the preset's pinned snapshot: only whole, it passes
    hf_cache(preset.hub_id, preset.revision, "config.json", "tokenizer_config.json")
    with pytest.raises(ConfigError, match=r"\(no weights\)"):
        check_model_source(ModelSettings(model="qwen2-vl-2b"))
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (hf_cache(preset.hub_id, preset.revision, "model-00001-of-00002.safetensors")
     / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match=r"\(no model-00002-of-00002.safetensors\)"):  # a download cut short
        check_model_source(ModelSettings(model="qwen2-vl-2b"))
    hf_cache(preset.hub_id, preset.revision, "model-00002-of-00002.safetensors")
    check_model_source(ModelSettings(model="qwen2-vl-2b"))
    # tiny twins and local folders never need the hub
    check_model_source(ModelSettings(model="tiny-qwen2-vl"))
    check_model_source(ModelSettings(model=str(twin_path(all_presets()["tiny-smolvlm"]))))
