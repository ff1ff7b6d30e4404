"""One image-token budget: each family's mapping against its processor's own input_ids, and the
budget carried from train to eval/compare."""

from __future__ import annotations

import json
import logging

import pytest

from nmm_core import cli
from nmm_core.errors import ConfigError
from nmm_core.image_budget import encode_probe, image_token_id
from nmm_core.models import load_processor, resolve_source


def _processor(preset: str):
    source = resolve_source(preset)
    return load_processor(source), source.family


def _image_tokens(processor, family, size) -> int:
    """The processor's own count: image tokens in the input_ids it gives one image of `size`."""
    ids = encode_probe(processor, family, *size)["input_ids"][0]
    return int((ids == image_token_id(processor)).sum())


SIZES = [(20, 20), (64, 48), (300, 300), (400, 100), (100, 400)]


@pytest.mark.parametrize(("preset", "budget", "expected"), [
    # Qwen2-VL: 28x28 px per token; 9 tokens max = 84x84 px, 4 min = 56x56 px (hand-computed)
    ("tiny-qwen2-vl", (4, 9), {(20, 20): 4, (300, 300): 9}),
    # Idefics3 twin: 4 tokens a 32 px tile; max 40 = a 3x3 tiling + global (4 x 10), a one-row strip 4 x 4
    ("tiny-smolvlm", (None, 40), {(300, 300): 40, (20, 20): 40}),
])
def test_a_budget_bounds_what_the_processor_gives(preset, budget, expected):
    processor, family = _processor(preset)
    family.set_image_budget(processor, *budget)
    low, high = family.image_token_range(processor)
    counts = {size: _image_tokens(processor, family, size) for size in SIZES}
    assert all(low <= n <= high for n in counts.values()), (low, high, counts)
    if budget[0] is not None:
        assert low >= budget[0]
    assert high <= budget[1]
    for size, n in expected.items():
        assert counts[size] == n


def test_idefics3_range_is_what_a_thin_and_a_square_image_get():
    processor, family = _processor("tiny-smolvlm")
    assert family.image_token_range(processor) == (4, 4)  # the twin: one tile, no splitting
    assert {_image_tokens(processor, family, s) for s in SIZES} == {4}
    family.set_image_budget(processor, None, 40)
    assert family.image_token_range(processor) == (16, 40)
    assert _image_tokens(processor, family, (1000, 40)) == 16  # 1 row x 3 tiles + global
    assert _image_tokens(processor, family, (300, 300)) == 40  # 3 x 3 tiles + global


@pytest.mark.parametrize(("preset", "count"), [("tiny-llava-1.5", 16), ("tiny-tinyllava", 15)])
def test_a_fixed_count_is_reported_and_cannot_be_changed(preset, count):
    processor, family = _processor(preset)
    assert family.image_token_range(processor) == (count, count)
    assert {_image_tokens(processor, family, s) for s in SIZES} == {count}
    family.set_image_budget(processor, None, count + 100)  # a budget containing it changes nothing
    with pytest.raises(ConfigError, match=f"fixed {count} image tokens"):
        family.set_image_budget(processor, None, count - 1)
    with pytest.raises(ConfigError, match=f"fixed {count} image tokens"):
        family.set_image_budget(processor, count + 1, None)


def test_moondream_budget_sets_its_crop_grid():
    processor, family = _processor("tiny-moondream")
    seq = processor.image_seq_length  # the language model's image tokens, whatever the crops
    assert family.image_token_range(processor) == (seq, seq * 5)  # up to 2x2 crops + the global view
    for budget, views in ((None, 5), (seq * 5 - 1, 1)):
        family.set_image_budget(processor, None, budget)
        batch = encode_probe(processor, family, 300, 300)
        assert int((batch["input_ids"][0] == image_token_id(processor)).sum()) == seq
        rows, cols = batch["image_crops"][0].tolist()
        assert 1 + rows * cols == views
    with pytest.raises(ConfigError, match=f"cannot be below {seq}"):
        family.set_image_budget(processor, None, seq - 1)


def _train_with_budget(tmp_path, max_tokens: int):
    from nmm_core.data import write_jsonl_dataset
    from nmm_core.testing.shapes import make_shapes_dataset

    data = tmp_path / "data"
    examples = make_shapes_dataset(12, seed=4)
    write_jsonl_dataset(examples[:8], data, split="train")
    write_jsonl_dataset(examples[8:], data, split="test")
    common = ["--data-source", str(data), "--data-prompt-column", "prompt", "--data-answers-column", "answers"]
    assert cli.main(["train", *common, "--train-max-steps", "1", "--lora-r", "4",
                     "--model-max-image-tokens", str(max_tokens), "--output-dir", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    return run, common


def test_the_budget_goes_from_train_to_compare_and_a_change_is_named(tmp_path, caplog):
    run, common = _train_with_budget(tmp_path, 9)
    assert "max_image_tokens: 9" in (run / "config.yaml").read_text()
    marker = json.loads((run / "adapter" / "nmm_adapter.json").read_text())
    assert marker["image_tokens"] == {"min": 4, "max": 9}

    adapter = ["--adapter", str(run / "adapter")]
    assert cli.main(["compare", *common, *adapter, "--output-dir", str(tmp_path / "cmp")]) == 0
    (cmp_run,) = (tmp_path / "cmp").iterdir()
    assert "max_image_tokens: 9" in (cmp_run / "config.yaml").read_text()
    assert "trained at" not in caplog.text

    with caplog.at_level(logging.WARNING):
        assert cli.main(["eval", *common, *adapter, "--model-max-image-tokens", "4",
                         "--output-dir", str(tmp_path / "ev")]) == 0
    assert "trained at 9 image tokens, evaluating at 4" in caplog.text
    (ev,) = (tmp_path / "ev").iterdir()
    assert "max_image_tokens: 4" in (ev / "config.yaml").read_text()


def test_info_prints_the_tokens_of_an_image_size(capsys):
    assert cli.main(["info", "--model", "tiny-qwen2-vl", "--image", "300x300",
                     "--model-max-image-tokens", "9"]) == 0
    out = capsys.readouterr().out
    assert "300x300 image: 9 image tokens" in out
    processor, family = _processor("tiny-qwen2-vl")
    family.set_image_budget(processor, None, 9)
    ids = encode_probe(processor, family, 300, 300)["input_ids"][0]
    assert f"sequence with a question: {ids.numel()} tokens" in out


def test_an_adapters_budget_is_used_unless_another_is_given(tmp_path, caplog):
    from nmm_core.workflows import ModelSettings, budget_for

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "nmm_adapter.json").write_text(json.dumps({"family": "qwen2_vl",
                                                          "image_tokens": {"min": 4, "max": 1024}}))
    used = budget_for(ModelSettings(), str(adapter))
    assert (used.min_image_tokens, used.max_image_tokens) == (4, 1024)
    assert budget_for(ModelSettings(), None) == ModelSettings()  # no adapter: the processor's own

    with caplog.at_level(logging.WARNING):
        told = budget_for(ModelSettings(max_image_tokens=256), str(adapter))
    assert (told.min_image_tokens, told.max_image_tokens) == (None, 256)
    assert "trained at 1024 image tokens, evaluating at 256" in caplog.text


@pytest.mark.parametrize(("verb", "preset", "count"), [("train", "tiny-llava-1.5", 16), ("eval", "tiny-tinyllava", 15)])
def test_a_budget_a_fixed_count_family_cannot_keep_is_refused_before_a_run_folder(verb, preset, count,
                                                                                  tmp_path, capsys):
    from nmm_core.data import write_jsonl_dataset
    from nmm_core.testing.shapes import make_shapes_dataset

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(4, seed=4), data, split="test" if verb == "eval" else "train")
    runs = tmp_path / "runs"
    assert cli.main([verb, "--data-source", str(data), "--data-prompt-column", "prompt", "--data-answers-column",
                     "answers", "--model", preset, "--model-max-image-tokens", str(count - 1),
                     "--output-dir", str(runs)]) == 2
    assert f"fixed {count} image tokens" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not runs.exists()  # no failed run left behind


def test_info_of_a_hub_model_missing_offline_is_refused_before_its_processor_loads(tmp_path, capsys, monkeypatch):
    """Offline, `nmm info --model HUB_ID --image WxH` says the model is not cached at once, instead
    of waiting on the hub library's retries and wrapping its message."""
    from huggingface_hub import constants

    from nmm_core import models

    def load(*args, **kwargs):
        raise AssertionError("the processor was loaded before the cache was checked")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setattr(models, "load_processor", load)
    assert cli.main(["info", "--model", "qwen2-vl-2b", "--image", "1024x768"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: --model qwen2-vl-2b: 'Qwen/Qwen2-VL-2B-Instruct' at revision ")
    assert "not in the local" in last


def test_info_of_a_hub_model_needs_only_its_processor_files_in_the_cache(hf_cache, capsys, monkeypatch):
    """What `AutoProcessor.from_pretrained` downloaded is enough for `nmm info --image` offline: no weights."""
    from nmm_core import models
    from nmm_core.presets import all_presets

    def load(*args, **kwargs):
        raise ConfigError("the processor is loaded")

    preset = all_presets()["qwen2-vl-2b"]
    hf_cache(preset.hub_id, preset.revision, "config.json", "tokenizer_config.json", "preprocessor_config.json")
    monkeypatch.setattr(models, "load_processor", load)
    assert cli.main(["info", "--model", "qwen2-vl-2b", "--image", "1024x768"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: the processor is loaded"
