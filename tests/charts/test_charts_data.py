"""Chart loaders: ChartQA's own JSON, the hub's parquet shape (RGBA, label lists), bad records."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from nmm_charts.data import CHARTQA, PJN_CHARTS, answer_type, hub_split, load_charts
from nmm_core.data import ColumnMap
from nmm_core.errors import DataError
from nmm_core.records import load_image

FIXTURES = Path(__file__).parent / "fixtures" / "chartqa"
GH_COLUMNS = ColumnMap(id=None, image="imgname", prompt="query", answers="label")


def _png(mode: str = "RGBA") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 30), (10, 20, 30, 0) if mode == "RGBA" else (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_charts_chartqa_json_missing_images_are_counted_skips(tmp_path):
    shutil.copy(FIXTURES / "test.json", tmp_path / "test.json")
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "41699051005347.png").write_bytes(_png("RGB"))  # 2 records use it
    report = load_charts(tmp_path, split="test", columns=GH_COLUMNS, image_root=tmp_path / "png")
    assert report.total == 7 and len(report.kept) == 2
    assert [p.field for p in report.problems] == ["image"] * 5
    assert report.kept[0].answers == ("14",)  # upstream's plain-string label, as a one-item list
    # the real U+FFFD debris is kept as it is, not stripped
    assert any("\ufffd" in ex.prompt for ex in load_charts(
        tmp_path, split="test", columns=ColumnMap(id=None, image=None, prompt="query",
                                                  answers="label")).kept)


def test_charts_bad_record_stops_with_record_and_field_named(tmp_path):
    rows = json.loads((FIXTURES / "test.json").read_text())[:2]
    rows[1]["query"] = "  "
    (tmp_path / "test.json").write_text(json.dumps(rows))
    cols = ColumnMap(id=None, image=None, prompt="query", answers="label")
    with pytest.raises(DataError, match=r"test-1.*prompt.*empty"):
        load_charts(tmp_path, split="test", columns=cols, policy="stop")


def test_charts_hub_parquet_shape_rgba_to_rgb_and_label_lists(tmp_path):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "query": datasets.Value("string"),
                                  "label": datasets.Sequence(datasets.Value("string"))})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": _png(), "path": None}] * 2, "query": ["Largest?", "How many?"],
         "label": [["Texas"], ["14", "fourteen"]]}, features=features)
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "val-00000-of-00001.parquet"))
    report = load_charts(tmp_path, split="validation")  # ChartQA names it `val`
    assert len(report.kept) == 2 and report.kept[1].answers == ("14", "fourteen")
    image = load_image(report.kept[0])
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)  # alpha over white


def test_charts_hub_split_names_and_offline_error():
    assert hub_split(PJN_CHARTS, "validation") == "val" and hub_split(CHARTQA, "test") == "test"
    assert hub_split("some/local-thing", "validation") == "validation"
    with pytest.raises(DataError) as exc:
        load_charts(PJN_CHARTS, split="validation")
    message = str(exc.value)
    assert "\n" not in message and PJN_CHARTS in message and "'val'" in message


@pytest.mark.parametrize(("answer", "kind"), [("14", "numeric"), ("1,216.5", "numeric"),
                                               ("62%", "numeric"), ("Texas", "text"), ("No", "text")])
def test_charts_answer_type(answer, kind):
    assert answer_type(answer) == kind


def test_inspect_counts_kinds_of_kept_records_only_and_names_a_missing_kind(tmp_path, capsys):
    from nmm_charts.cli import main

    (tmp_path / "images").mkdir()
    rows = []
    for i, kind in enumerate(["count", "count", "value", None]):
        (tmp_path / "images" / f"c{i}.png").write_bytes(b"not a png" if i == 1 else _png("RGB"))
        row = {"id": f"r{i}", "image": f"images/c{i}.png", "query": "How many bars?", "label": str(i)}
        if kind is not None:
            row["kind"] = kind
        rows.append(row)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "inspect", "--data-source", str(tmp_path), "--splits", "train",
                 "--grid", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out
    assert "[train] kept 3 of 4 records; skipped 1: 1 image unreadable" in out
    # r1 (a count question) is skipped: of the 3 kept, one each
    assert "question kinds: count 1 (33%), value 1 (33%), (none) 1 (33%)" in out
    assert f"sample grid: {tmp_path / 'grid.png'}" in out and (tmp_path / "grid.png").is_file()


def test_inspect_lists_the_skipped_records_and_writes_each_as_a_json_line(tmp_path, capsys):
    from nmm_charts.cli import main

    (tmp_path / "images").mkdir()
    rows = []
    for i in range(4):
        (tmp_path / "images" / f"c{i}.png").write_bytes(_png("RGB"))
        rows.append({"id": f"r{i}", "image": f"images/c{i}.png", "query": "How many bars?", "label": str(i)})
    rows[1]["label"], rows[3]["query"] = "", " "  # two bad records
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = tmp_path / "problems.jsonl"
    assert main(["data", "inspect", "--data-source", str(tmp_path), "--splits", "train", "test", "--listed", "1",
                 "--problems", str(problems), "--grid", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("[train] kept 2 of 4 records; skipped 2: 1 answer empty, 1 prompt empty")
    assert out[at + 1: at + 3] == ["  skipped record 'r1' field 'answers': answer 0 is empty",
                                   "  ... and 1 more (--problems FILE lists all)"]
    written = [json.loads(line) for line in problems.read_text().splitlines()]
    assert [(r["split"], r["id"], r["field"]) for r in written] == [
        ("train", "r1", "answers"), ("train", "r3", "prompt"), ("test", "r1", "answers"), ("test", "r3", "prompt")]
