"""PathVQA records: the generated set, local copies in the hub's shape, closed/open, bad records; presets."""

from __future__ import annotations

import json

import pytest

from nmm_core.errors import DataError
from nmm_core.presets import all_presets, is_pinned, preset_owner
from nmm_core.records import Example, validate
from nmm_pathology.data import (
    HUB_ID,
    clean_question,
    is_closed,
    load_pathvqa,
    make_synthetic_pathvqa,
    split_by_kind,
    write_pathvqa_folder,
)


def test_pathology_synthetic_set_is_seeded_and_mixed():
    a = make_synthetic_pathvqa(40, seed=3)
    b = make_synthetic_pathvqa(40, seed=3)
    c = make_synthetic_pathvqa(40, seed=4)
    assert [(e.prompt, e.answers) for e in a] == [(e.prompt, e.answers) for e in b]
    assert a[0].image.tobytes() == b[0].image.tobytes()
    assert [(e.prompt, e.answers) for e in a] != [(e.prompt, e.answers) for e in c]
    kinds = split_by_kind(a)
    assert 10 <= len(kinds["closed"]) <= 30 and kinds["open"]
    assert {ex.answers[0] for ex in kinds["closed"]} == {"yes", "no"}
    assert all(ex.meta["kind"] == ("closed" if is_closed(ex) else "open") for ex in a)


def test_pathology_synthetic_answers_follow_the_image():
    # the stain question's answer is the image's dominant colour family: learnable from pixels
    from nmm_pathology.data import STAINS

    for ex in make_synthetic_pathvqa(60, seed=0):
        if ex.prompt == "what stain is used?":
            colours = ex.image.getcolors(64 * 64)
            dominant = max(colours)[1]
            nearest = min(STAINS, key=lambda s: sum((a - b) ** 2 for a, b in zip(STAINS[s][0], dominant, strict=True)))
            assert nearest == ex.answers[0]


def test_pathology_local_copy_loads_like_the_hub(tmp_path):
    examples = make_synthetic_pathvqa(12, seed=1, split="test")
    write_pathvqa_folder({"test": examples}, tmp_path)
    row = json.loads((tmp_path / "test.jsonl").read_text().splitlines()[0])
    assert set(row) == {"id", "image", "question", "answer"}  # the hub's columns (+ id)
    loaded = load_pathvqa(tmp_path, split="test")
    assert [e.id for e in loaded] == [e.id for e in examples]
    assert [e.answers for e in loaded] == [e.answers for e in examples]
    assert all(e.meta["kind"] in ("closed", "open") for e in loaded)
    assert validate(loaded).skipped == 0


def test_pathology_csv_copy_without_id_column_and_original_spacing(tmp_path):
    # the original release: mixed case with " ?"; no id column (ids come from the split)
    (tmp_path / "validation.csv").write_text(
        "image,question,answer\n,Where are liver stem cells located ?,in the canals of hering\n,is this normal ?,no\n")
    loaded = load_pathvqa(tmp_path, split="val")  # `val` finds the hub's `validation`
    assert [e.prompt for e in loaded] == ["Where are liver stem cells located?", "is this normal?"]
    assert [e.meta["kind"] for e in loaded] == ["open", "closed"]
    assert loaded[0].id.endswith("-0")


def test_pathology_empty_answer_is_a_counted_skip(tmp_path):
    (tmp_path / "test.jsonl").write_text(
        '{"image": null, "question": "what is present?", "answer": ""}\n'
        '{"image": null, "question": "is it?", "answer": "yes"}\n')
    report = validate(load_pathvqa(tmp_path, split="test"))
    assert len(report.kept) == 1 and report.problems[0].field == "answers"
    assert "answer empty" in report.summary()


def test_pathology_missing_column_names_it(tmp_path):
    (tmp_path / "test.jsonl").write_text('{"image": null, "query": "what?", "answer": "x"}\n')
    with pytest.raises(DataError, match="'question' not found"):
        load_pathvqa(tmp_path, split="test")


def test_pathology_hub_offline_is_one_clear_error():
    with pytest.raises(DataError, match="path-vqa"):
        load_pathvqa(HUB_ID, split="test")


def test_pathology_clean_question():
    assert clean_question("  Is  this  normal ?") == "Is this normal?"
    assert clean_question("what is present?") == "what is present?"
    assert not is_closed(Example("x", None, "is it?", ("fibrin",)))


def test_pathology_presets_registered_pinned_and_qlora():
    presets = all_presets()
    for name, hub in (("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf"), ("llava-1.5-13b", "llava-hf/llava-1.5-13b-hf")):
        p = presets[name]
        assert (p.family, p.hub_id, p.quantization) == ("llava", hub, "4bit")
        assert is_pinned(p.revision) and len(p.revision) == 40
        assert preset_owner(name) == "nmm-pathology"
    assert presets["tiny-llava-1.5"].family == "llava"  # what the tests train


def test_vqa_data_synthesize_writes_the_set_train_uses_and_flags_override(tmp_path, capsys):
    from nmm_pathology.cli import main

    def lines(folder):
        return {split: len((folder / f"{split}.jsonl").read_text().splitlines())
                for split in ("train", "validation", "test")}

    # the default model's recipe, as `vqa train` and `vqa data inspect` take it (was 400 / 30 / 60)
    assert main(["vqa", "data", "synthesize", "--out", str(tmp_path / "a"), "--synthetic-image-size", "8"]) == 0
    assert lines(tmp_path / "a") == {"train": 1200, "validation": 100, "test": 200}
    assert main(["vqa", "data", "synthesize", "--out", str(tmp_path / "b"), "--synthetic-image-size", "8",
                 "--synthetic-train-size", "6", "--synthetic-test-size", "4"]) == 0
    assert lines(tmp_path / "b") == {"train": 6, "validation": 2, "test": 4}
    assert "  train: 6 questions" in capsys.readouterr().out
