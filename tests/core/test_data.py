"""Data: local files and folders, save_to_disk, hub ids (offline), column maps, splits, export."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import datasets
import pytest
from PIL import Image

from nmm_core.data import ColumnMap, load_examples, split_examples, write_jsonl_dataset
from nmm_core.errors import ConfigError, DataError
from nmm_core.records import Example, load_image

CHARTQA = ColumnMap(id=None, prompt="query", answers="label", meta=("human_or_machine",))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the hub, whatever the environment says."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    # Both libraries read the variables at import time, so set their flags as well.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()


def png(color, mode: str = "RGB", size=(3, 2)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels(example: Example, mode: str | None = "RGB") -> tuple[str, bytes]:
    image = load_image(example, mode=mode)
    return image.mode, image.tobytes()


def chart_dataset(n: int = 4) -> datasets.Dataset:
    """A ChartQA-shaped dataset: RGBA PNG images, list-of-str labels, a ClassLabel column."""
    features = datasets.Features({
        "image": datasets.Image(),
        "query": datasets.Value("string"),
        "label": datasets.Sequence(datasets.Value("string")),
        "human_or_machine": datasets.ClassLabel(names=["human", "machine"]),
    })
    return datasets.Dataset.from_dict({
        "image": [{"bytes": png((i, 0, 0, 0 if i == 0 else 255), "RGBA"), "path": None}
                  for i in range(n)],
        "query": [f"What is value {i}?" for i in range(n)],
        "label": [[str(i * 10)] for i in range(n)],
        "human_or_machine": [i % 2 for i in range(n)],
    }, features=features)


def pathvqa_dataset(split: str, n: int) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string")})
    return datasets.Dataset.from_dict({
        "image": [{"bytes": png((0, i, 0)), "path": None} for i in range(n)],
        "question": [f"{split} question {i}?" for i in range(n)],
        "answer": ["yes" if i % 2 else "no" for i in range(n)],
    }, features=features)


# --- JSONL round trip ----------------------------------------------------------------------


def test_write_then_load_jsonl_round_trips_exactly(tmp_path):
    jpeg = tmp_path / "src" / "photo.jpg"
    jpeg.parent.mkdir()
    Image.new("RGB", (8, 8), (30, 60, 90)).save(jpeg)
    originals = [
        Example("memes/1:a?", png((1, 2, 3, 0), "RGBA"), "Explain.", ("one", "uno"),
                {"category": "memes", "scores": [1, 2], "nested": {"k": None}}),
        Example("chart-2", jpeg, "Value in 2020?", ("47",), {"source": "gh"}),
        Example("pil-3", Image.new("L", (2, 2), 9), "Grey?", ("yes",)),
        Example("text-4", None, "No image \ufffd here", ("ok",)),
    ]
    target = write_jsonl_dataset(originals, tmp_path / "out", split="train")
    assert target == tmp_path / "out" / "train.jsonl"
    first = json.loads(target.read_text(encoding="utf-8").splitlines()[0])
    assert first["image"].startswith("images/") and first["image"].endswith(".png")
    assert first["answers"] == ["one", "uno"] and first["meta"]["category"] == "memes"

    loaded = load_examples(str(tmp_path / "out"), split="train", columns=ColumnMap.NMM_JSONL)
    assert [(e.id, e.prompt, e.answers, dict(e.meta)) for e in loaded] == [
        (e.id, e.prompt, e.answers, dict(e.meta)) for e in originals
    ]
    for before, after in zip(originals[:3], loaded[:3], strict=False):
        assert isinstance(after.image, str) and Path(after.image).is_file()  # lazy: a path
        assert pixels(after, mode=None) == pixels(before, mode=None)
    assert loaded[3].image is None
    files = [p.name for p in (tmp_path / "out").rglob("*")]
    assert not [name for name in files if ".tmp" in name]


def test_jsonl_relative_images_resolve_against_image_root(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(png("red"))
    data = tmp_path / "meta" / "records.jsonl"
    data.parent.mkdir()
    row = {"id": 7, "image": "a.png", "question": "q", "answer": "r"}
    data.write_text(json.dumps(row) + "\n\n")
    [example] = load_examples(str(data), image_root=tmp_path / "pics")
    assert example.id == "7" and example.image == str(tmp_path / "pics" / "a.png")
    assert load_image(example).getpixel((0, 0)) == (255, 0, 0)


def test_bad_jsonl_line_is_named(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n{oops\n')
    with pytest.raises(DataError, match=r"train\.jsonl line 2: invalid JSON"):
        load_examples(str(data))


# --- CSV, JSON, parquet ---------------------------------------------------------------------


def test_csv_keeps_text_and_reads_answer_lists(tmp_path):
    (tmp_path / "img.png").write_bytes(png("blue"))
    with (tmp_path / "test.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer", "image"])
        writer.writerow(["How many?", "014", "img.png"])
        writer.writerow(["Which?", '["Texas", "TX"]', ""])
    rows = load_examples(str(tmp_path), split="test")
    assert [(e.id, e.answers) for e in rows] == [("test-0", ("014",)), ("test-1", ("Texas", "TX"))]
    assert rows[0].image == str(tmp_path / "img.png") and rows[1].image is None


def test_chartqa_github_json_with_string_labels(tmp_path):
    records = [{"imgname": "41699051005347.png", "query": "How many food item?", "label": "14"},
               {"imgname": "multi_col_803.png", "query": "How many stores?", "label": "47"}]
    (tmp_path / "val.json").write_text(json.dumps(records))
    cmap = ColumnMap(id=None, image="imgname", prompt="query", answers="label")
    rows = load_examples(str(tmp_path), split="val", columns=cmap, image_root="/data/png")
    assert [(e.id, e.answers, e.image) for e in rows] == [
        ("val-0", ("14",), "/data/png/41699051005347.png"),
        ("val-1", ("47",), "/data/png/multi_col_803.png"),
    ]


def test_parquet_written_by_datasets_keeps_images_lazy_and_maps_labels(tmp_path):
    chart_dataset().to_parquet(str(tmp_path / "charts.parquet"))
    rows = load_examples(str(tmp_path / "charts.parquet"), split="test", columns=CHARTQA)
    assert [e.id for e in rows] == ["test-0", "test-1", "test-2", "test-3"]
    assert rows[2].answers == ("20",) and rows[2].prompt == "What is value 2?"
    assert [e.meta["human_or_machine"] for e in rows] == ["human", "machine", "human", "machine"]
    assert all(isinstance(e.image, bytes) for e in rows)
    image = load_image(rows[0])  # RGBA with alpha 0 -> white
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
    assert load_image(rows[3]).getpixel((0, 0)) == (3, 0, 0)


def test_hub_style_shards_under_data_and_the_val_alias(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    full = chart_dataset(6)
    full.select(range(3)).to_parquet(str(data / "train-00000-of-00002-abc.parquet"))
    full.select(range(3, 5)).to_parquet(str(data / "train-00001-of-00002-def.parquet"))
    full.select([5]).to_parquet(str(data / "val-00000-of-00001-xyz.parquet"))
    train = load_examples(str(tmp_path), split="train", columns=CHARTQA)
    assert [e.prompt for e in train] == [f"What is value {i}?" for i in range(5)]
    [val] = load_examples(str(tmp_path), split="validation", columns=CHARTQA)
    assert val.id == "val-0" and val.answers == ("50",)
    assert len(load_examples(str(tmp_path), split="train", columns=CHARTQA, limit=2)) == 2


def test_unknown_split_lists_the_splits_found(tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")
    (tmp_path / "test.csv").write_text("question,answer\n")
    with pytest.raises(DataError, match=r"no data for split 'dev'; splits found: test, train"):
        load_examples(str(tmp_path), split="dev")


# --- save_to_disk ---------------------------------------------------------------------------


def test_save_to_disk_dataset_dict_with_validation_alias(tmp_path):
    folder = tmp_path / "pathvqa"
    datasets.DatasetDict({
        "train": pathvqa_dataset("train", 3), "validation": pathvqa_dataset("validation", 2),
    }).save_to_disk(str(folder))
    val = load_examples(str(folder), split="val")
    assert [(e.id, e.prompt, e.answers) for e in val] == [
        ("validation-0", "validation question 0?", ("no",)),
        ("validation-1", "validation question 1?", ("yes",)),
    ]
    assert isinstance(val[1].image, bytes)
    assert load_image(val[1]).getpixel((0, 0)) == (0, 1, 0)
    with pytest.raises(DataError, match=r"no split 'test'; splits: train, validation"):
        load_examples(str(folder), split="test")


def test_save_to_disk_single_dataset_with_limit(tmp_path):
    folder = tmp_path / "one"
    pathvqa_dataset("train", 5).save_to_disk(str(folder))
    rows = load_examples(str(folder), limit=3)
    assert [e.id for e in rows] == ["train-0", "train-1", "train-2"]
    assert rows[2].answers == ("no",)


# --- column errors, missing sources, the hub ------------------------------------------------


def test_missing_column_error_lists_available_columns(tmp_path):
    chart_dataset(2).to_parquet(str(tmp_path / "train.parquet"))
    with pytest.raises(DataError) as info:
        load_examples(str(tmp_path))  # the default map wants question/answer
    assert "column 'question' not found" in str(info.value)
    assert "available columns: image, query, label, human_or_machine" in str(info.value)
    with pytest.raises(DataError, match="column 'qid' not found"):
        load_examples(str(tmp_path), columns=ColumnMap(id="qid", prompt="query", answers="label"))


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_examples(str(tmp_path / "nope.jsonl"))


def test_hub_id_fails_fast_and_clearly_offline():
    started = time.monotonic()
    with pytest.raises(DataError) as info:
        load_examples("nmm-test-nobody/made-up-dataset-123", split="validation", revision="abc123")
    message = str(info.value)
    assert time.monotonic() - started < 20
    assert "'nmm-test-nobody/made-up-dataset-123'" in message
    assert "split 'validation'" in message and "revision abc123" in message
    assert "HF_HUB_OFFLINE" in message and "\n" not in message


# --- split_examples -------------------------------------------------------------------------


def numbered(n: int) -> list[Example]:
    return [Example(f"r{i:04d}", None, "q", ("a",)) for i in range(n)]


def test_split_is_seeded_sized_disjoint_and_independent_of_input_order():
    records = numbered(2500)
    sizes = {"train": 1200, "val": 500, "test": 500}
    first = split_examples(records, sizes=sizes, seed=42)
    again = split_examples(list(reversed(records)), sizes=sizes, seed=42)
    other = split_examples(records, sizes=sizes, seed=7)
    assert {k: len(v) for k, v in first.items()} == sizes
    assert {k: [e.id for e in v] for k, v in first.items()} == {
        k: [e.id for e in v] for k, v in again.items()
    }
    assert [e.id for e in other["test"]] != [e.id for e in first["test"]]
    ids = [e.id for part in first.values() for e in part]
    assert len(set(ids)) == len(ids) == 2200
    assert [e.id for e in first["train"][:5]] != sorted(e.id for e in first["train"][:5])


def test_split_fractions_cover_every_record():
    parts = split_examples(numbered(1001), sizes={"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 801, "val": 100, "test": 100}
    partial = split_examples(numbered(10), sizes={"train": 0.5, "test": 2}, seed=0)
    assert {k: len(v) for k, v in partial.items()} == {"train": 5, "test": 2}


def test_split_sizes_over_the_total_name_the_numbers():
    with pytest.raises(DataError, match=r"\(train=8, test=5\) add up to 13, but there are only 10"):
        split_examples(numbered(10), sizes={"train": 8, "test": 5}, seed=0)
    with pytest.raises(ConfigError, match="train=-1"):
        split_examples(numbered(10), sizes={"train": -1}, seed=0)


def test_split_refuses_duplicate_ids():
    records = numbered(3) + [Example("r0001", None, "other", ("b",))]
    with pytest.raises(DataError, match="duplicate ids 'r0001'"):
        split_examples(records, sizes={"train": 2}, seed=0)


def test_a_hub_dataset_offline_and_not_in_the_local_datasets_cache_is_refused_up_front(tmp_path, monkeypatch):
    """The pre-flight asks the cache `load_dataset` falls back to offline (never the hub) and names the flag."""
    import datasets

    from nmm_core.sources import ColumnSource, check_source
    from nmm_core.workflows import DataSettings

    cache = tmp_path / "hf" / "datasets"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)  # read once, at import
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = ColumnSource(DataSettings(source="HuggingFaceM4/nosuch"))
    with pytest.raises(ConfigError) as info:
        check_source(source)
    assert str(info.value) == ("--data-source HuggingFaceM4/nosuch: not in the local datasets cache and "
                               "HF_HUB_OFFLINE is set: load it once with the hub reachable, or pass a local "
                               "file or folder")
    (cache / "HuggingFaceM4___nosuch" / "default" / "0.0.0" / "abc123").mkdir(parents=True)  # as loading leaves it
    check_source(source)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    check_source(ColumnSource(DataSettings(source="Other/uncached")))  # the hub may hold it: loading says
