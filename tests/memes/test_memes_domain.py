"""nmm-memes as a kit domain: its data source, its seeds, and GILL reached through its presets' family."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nmm_core.domain import domain_verbs
from nmm_core.workflows import ModelSettings, family_trainee, lora_trainee
from nmm_memes.cli import MEMES
from nmm_memes.data import MemeDataSettings, MemeSource, SyntheticSettings


def test_the_generated_set_is_spelt_synthetic_and_an_empty_source_stays_its_alias(tmp_path):
    assert MemeDataSettings().source == "synthetic"
    for spelling in ("synthetic", "", " synthetic "):
        data = MemeSource(MemeDataSettings(source=spelling, format="auto"), lambda: tmp_path).resolve().settings
        assert (data.source, data.images, data.format) == (str(tmp_path), str(tmp_path / "images"), "memecap")
    own = MemeDataSettings(source="meme-cap/", images="imgs/")
    assert MemeSource(own, lambda: tmp_path).resolve().settings == own  # a user's folder is left as given


def test_an_unset_synthetic_and_split_seed_take_the_run_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("NMM_CACHE", str(tmp_path))
    train_config = domain_verbs(MEMES)["train"][0]  # memes' `train` settings, made by the kit
    cfg = train_config(synthetic=SyntheticSettings(trainval_size=4, test_size=2, image_size=32))
    cfg.train = replace(cfg.train, seed=5)
    source = MEMES.source_of(cfg)
    assert json.loads((Path(source.settings.source) / "synthetic.json").read_text())["seed"] == 5
    assert source.settings.split_seed == 5
    assert source.load("test").total == 2


@pytest.mark.parametrize("name", ["gill", "tiny-gill"])
def test_gill_presets_reach_gills_trainee_through_their_family(name):
    from nmm_core.presets import get_preset
    from nmm_memes.gill.train import gill_trainee

    assert get_preset(name).family == "gill"
    assert family_trainee(ModelSettings(model=name)) is gill_trainee
    assert family_trainee(ModelSettings(model="tiny-tinyllava")) is lora_trainee


def test_a_synthesized_folder_is_inspected_without_naming_its_images(tmp_path, capsys):
    from nmm_memes.cli import main

    out = tmp_path / "memes-data"
    sizes = ["--synthetic-seed", "1", "--synthetic-trainval-size", "12", "--synthetic-test-size", "4",
             "--synthetic-image-size", "32", "--no-progress"]
    assert main(["data", "synthesize", *sizes, "--out", str(out)]) == 0
    capsys.readouterr()
    # what `data synthesize --out` wrote, read back with its images/ found beside the JSON
    assert main(["data", "inspect", "--data-source", str(out)]) == 0
    assert "[test] kept 4 of 4" in capsys.readouterr().out
    # a bad trainval record: listed once (under train), and each split says where the rest of trainval went
    first = json.loads((out / "memes-trainval.json").read_text())[0]
    (out / "images" / first["img_fname"]).unlink()
    problems = out / "problems.jsonl"
    assert main(["data", "inspect", "--data-source", str(out), "--problems", str(problems)]) == 0
    text = capsys.readouterr().out
    assert "[train] kept 10 of 12 records (1 went to validation); skipped 1: 1 image missing" in text
    assert "[validation] kept 1 of 12 records (10 went to train); skipped 1: 1 image missing" in text
    assert text.count(first["img_fname"]) == 1 and "skipped the same 1 as [train] (listed there)" in text
    rows = [json.loads(line) for line in problems.read_text().splitlines()]
    assert [(r["split"], r["id"], r["field"]) for r in rows] == [("train", first["post_id"], "image")]


def test_compete_refuses_a_missing_adapter_before_any_run_or_answer(tmp_path, capsys):
    from nmm_memes.cli import main

    runs = tmp_path / "runs"
    assert main(["compete", "--adapter", str(tmp_path / "no-such-adapter"), "--output-dir", str(runs)]) == 2
    assert "not a LoRA adapter folder" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())  # no failed run folder, no base answers generated


def test_memes_model_takes_its_own_presets_gill_included_and_lists_only_those(tmp_path, capsys):
    from nmm_memes.cli import main

    nowhere = ["--data-source", str(tmp_path / "no-data"), "--output-dir", str(tmp_path / "runs")]
    assert main(["train", "--model", "tiny-gill", *nowhere]) == 2  # taken: it fails on the data alone
    err = capsys.readouterr().err
    assert "no-data" in err and "--model" not in err
    assert main(["train", "--model", "tiny-qwen2-vl", "--output-dir", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --model tiny-qwen2-vl is a preset of nmm-charts, not of nmm-memes "
                   "(its presets: gill, tiny-gill, tiny-tinyllava)")
    assert main(["eval", "--model", "no-such-model"]) == 2
    assert capsys.readouterr().err.strip().endswith("known presets: gill, tiny-gill, tiny-tinyllava")
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("verb", ["train", "eval"])
@pytest.mark.parametrize("name", ["no-such-folder", "gone/memes.json"])
def test_a_missing_data_source_stops_before_any_run_folder(tmp_path, capsys, verb, name):
    from nmm_memes.cli import main

    runs, missing = tmp_path / "runs", str(tmp_path / name)
    runs.mkdir()
    assert main([verb, "--data-source", missing, "--output-dir", str(runs)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: --data-source {missing}: no such file or folder"
    assert list(runs.iterdir()) == []  # no failed run left behind
