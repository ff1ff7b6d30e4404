"""MemeCap and MemeCraft loaders on real records (fixtures/), the seeded split, the synthetic set."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from nmm_core.errors import ConfigError, DataError
from nmm_core.records import load_image
from nmm_memes.data import (
    MemeDataSettings,
    MemeSource,
    SyntheticSettings,
    load_memecap,
    load_memecraft,
    load_memes,
    split_caption,
    synthesize,
)
from nmm_memes.synthetic import TEMPLATES, make_memes

FIXTURES = Path(__file__).parent / "fixtures"


def _png(path: Path, colour=(200, 10, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _memecap(tmp_path, missing=("memes_d2rm3s.png",), nested=False):
    records = json.loads((FIXTURES / "memecap-test-first6.json").read_text())
    folder = tmp_path / "meme-cap"
    folder.mkdir()
    shutil.copy(FIXTURES / "memecap-test-first6.json", folder / "memes-test.json")
    images = tmp_path / "images"
    for r in records:
        if r["img_fname"] not in missing:
            _png(images / ("memes" if nested else "") / r["img_fname"])
    return records, folder, images


def test_memecap_uses_all_meme_captions_and_names_missing_images(tmp_path):
    records, folder, images = _memecap(tmp_path)
    report = load_memecap(folder, split="test", images=images)
    assert report.total == 6 and len(report.kept) == 5 and report.skipped == 1
    [problem] = report.problems
    assert problem.id == "d2rm3s" and problem.field == "image" and "memes_d2rm3s.png" in problem.why
    assert "1 image missing" in report.summary()
    first = report.kept[0]
    assert first.id == records[0]["post_id"] and first.prompt == "He did it"
    assert list(first.answers) == [c.strip() for c in records[0]["meme_captions"]] and len(first.answers) == 3
    assert first.meta["img_captions"] == records[0]["img_captions"]
    assert load_image(first).size == (8, 8)


def test_memecap_reads_the_zips_memes_folder_and_refuses_bad_fields(tmp_path):
    records, folder, images = _memecap(tmp_path, missing=(), nested=True)
    records[1]["meme_captions"] = []
    del records[2]["title"]
    (folder / "memes-test.json").write_text(json.dumps(records))
    report = load_memecap(folder, split="test", images=images)
    assert len(report.kept) == 4
    assert {(p.id, p.field) for p in report.problems} == {(records[1]["post_id"], "meme_captions"),
                                                         (records[2]["post_id"], "title")}
    with pytest.raises(DataError, match=r"\(test\): 2 of 6 records are invalid: record 'd2rm3s' field 'meme_captions'"):
        load_memes(MemeDataSettings(source=str(folder), images=str(images), on_bad_record="stop"), "test")
    with pytest.raises(ConfigError, match="--data-images"):
        load_memecap(folder, split="test", images=None)


def test_command_loader_lists_skips_in_the_run_and_refuses_an_empty_split(tmp_path):
    from nmm_core.runs import RunDir
    from nmm_core.workflows import load_split

    records, folder, images = _memecap(tmp_path)
    run = RunDir.create(tmp_path / "runs", "compete", "m")
    data = MemeDataSettings(source=str(folder), images=str(images))
    assert len(load_split(data, "test", run, source=MemeSource(data).resolve())) == 5
    assert json.loads(run.file("problems-test.jsonl").read_text())["id"] == "d2rm3s"
    (tmp_path / "empty").mkdir()
    _, empty, no_images = _memecap(tmp_path / "empty", missing=[r["img_fname"] for r in records])
    no_images.mkdir()
    empty_data = MemeDataSettings(source=str(empty), images=str(no_images))
    with pytest.raises(DataError, match=r"no usable records \(kept 0 of 6 records; skipped 6: 6 image missing\)"):
        load_split(empty_data, "test", run, source=MemeSource(empty_data))


def test_memecap_validation_split_is_seeded_ten_percent_of_trainval(tmp_path):
    recs = [dict(r, post_id=f"p{i:03d}", img_fname=f"memes_p{i:03d}.png")
            for i, r in enumerate(make_memes(50, seed=3, split="x", image_size=32)[k][0] for k in range(50))]
    folder, images = tmp_path / "mc", tmp_path / "img"
    folder.mkdir()
    (folder / "memes-trainval.json").write_text(json.dumps(recs))
    for r in recs:
        _png(images / r["img_fname"])
    train = load_memecap(folder, split="train", images=images, seed=7).kept
    val = load_memecap(folder, split="validation", images=images, seed=7).kept
    assert len(val) == 5 and len(train) == 45 and not {e.id for e in train} & {e.id for e in val}
    assert val[0].meta["split_seed"] == 7
    assert [e.id for e in load_memecap(folder, split="validation", images=images, seed=7).kept] == [e.id for e in val]
    other = load_memecap(folder, split="validation", images=images, seed=8).kept
    assert {e.id for e in other} != {e.id for e in val}
    with pytest.raises(DataError, match="memes-test.json"):
        load_memecap(folder, split="test", images=images)


def _memecraft_tree(tmp_path) -> Path:
    """The fixtures put back at their upstream paths, with images for some captions."""
    root = tmp_path / "dataset"
    for f in (FIXTURES / "memecraft").glob("*.json"):
        upstream = f.name.split(".first")[0].replace("__", "/") + ".json"
        (root / upstream).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / upstream)
    return root


def test_memecraft_value_shapes_filters_and_image_paths(tmp_path):
    root = _memecraft_tree(tmp_path)
    llava = root / "gender_inequality_memes/imgflip_LLaVA"
    _png(llava / "Solutions_Non-COT" / "where's waldo.jpg")
    _png(llava / "Solutions_Non-COT" / "And everybody loses their minds.jpg")
    _png(root / "baseline_memes/imgflip_dank/memes/Two Buttons.jpg")
    _png(root / "baseline_memes/imgflip_online_random/memes/Two Buttons.jpg")
    chatgpt = root / "climate_action_memes/imgflip_ChatGPT"
    _png(chatgpt / "Benefits_COT" / "So I Got That Goin For Me Which Is Nice.jpg")
    report = load_memecraft(root)
    assert report.total == 50
    assert sum(p.kind.startswith("filtered") for p in report.problems) == 8  # 3 climate + 5 gender
    assert sum(p.kind == "image missing" for p in report.problems) == 50 - 8 - 4
    # an image may exist for a caption marked Hateful upstream: it stays out
    [waldo] = [p for p in report.problems if p.id.endswith(":where's waldo")]
    assert waldo.kind == "filtered Hateful"
    by_id = {e.id.split(":", 1)[1] + "@" + e.meta["generator"]: e for e in report.kept}
    assert len(report.kept) == 4
    nice = by_id["So I Got That Goin For Me Which Is Nice@ChatGPT"]
    assert nice.meta["top"] == "When climate change brings warmer weather"
    assert nice.meta["bottom"] == "I can finally show off my summer toothbrushing routine!"
    assert nice.meta["stance"] == "Denier" and nice.meta["context"] == "Benefits" and nice.meta["cot"] == "COT"
    assert by_id["Two Buttons@online_random"].answers == ("start a fire - fix all the characters",)  # bare string
    assert by_id["Two Buttons@dank"].meta["kind"] == "baseline"  # list of one
    assert by_id["And everybody loses their minds@LLaVA"].meta["bottom"].startswith("after all")  # " - " split


def test_memecraft_odd_template_names_and_caption_split(tmp_path):
    folder = tmp_path / "climate_action_memes" / "imgflip_ChatGPT"
    folder.mkdir(parents=True)
    names = [":badluckbrian:", "Is This A Pigeon?", "Ça va? / oui"]
    data = {n: [f"top {i} <-> bottom - {i}", "raw"] for i, n in enumerate(names)}
    (folder / "climate_change_Supporter_Evidence of Absence_COT_caption.json").write_text(json.dumps(data))
    for n in names:
        _png(folder / "Evidence_of_Absence_COT" / (n.replace("/", "") + ".jpg"))
    report = load_memecraft(folder)
    assert len(report.kept) == 3 and not report.problems
    assert report.kept[2].prompt == "Ça va? / oui"
    assert split_caption("a <-> b - c") == ("a", "b - c")
    assert split_caption("a - b") == ("a", "b") and split_caption("no separator") == ("no separator", "")
    assert load_memes(MemeDataSettings(source=str(folder)), "test").total == 3  # format detected


def test_synthetic_set_is_seeded_and_its_meaning_follows_the_drawing(tmp_path):
    a = make_memes(12, seed=1, split="train", image_size=48)
    assert a == make_memes(12, seed=1, split="train", image_size=48)
    assert a != make_memes(12, seed=2, split="train", image_size=48)
    for record, png in a:
        feeling = record["meme_captions"][0].split()[3]
        [template] = [t for t in TEMPLATES if t.feeling == feeling]
        topic = record["meme_captions"][0].split()[-1]
        assert topic in record["title"]
        corner = Image.open(io.BytesIO(png)).convert("RGB").getpixel((0, 20))
        assert corner == template.background  # the feeling is readable off the image
    folder = synthesize(SyntheticSettings(seed=0, trainval_size=20, test_size=4, image_size=48), tmp_path / "s",
                        progress=False)
    report = load_memecap(folder, split="test", images=folder / "images")
    assert len(report.kept) == 4 and not report.problems
