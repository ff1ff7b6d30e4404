"""The synthetic chart set: deterministic, answers read off the data, PJN_CHARTS shape via core."""

from __future__ import annotations

import json
import random

import pytest

from nmm_charts.data import CHART_COLUMNS, SyntheticSettings, load_charts, synthesize
from nmm_charts.synthetic import ChartSpec, make_charts, make_question
from nmm_core.errors import ConfigError
from nmm_core.records import load_image

SPEC = ChartSpec("bar", "Fruit sales", "Fruit", "Boxes sold", ("Apples", "Pears", "Plums"),
                 (("Boxes sold", (40, 75, 12)),))


def test_charts_same_seed_same_charts_other_seed_other_charts():
    a = make_charts(6, seed=3, image_size=96)
    b = make_charts(6, seed=3, image_size=96)
    c = make_charts(6, seed=4, image_size=96)
    assert [(e.prompt, e.answers, e.image) for e in a] == [(e.prompt, e.answers, e.image) for e in b]
    assert [e.image for e in a] != [e.image for e in c]
    # splits draw from separate streams: test is not a copy of train
    assert [e.image for e in make_charts(6, seed=3, split="test", image_size=96)] != [e.image for e in a]


@pytest.mark.parametrize(("kind", "expected"), [
    ("largest", {"Pears"}), ("smallest", {"Plums"}), ("count", {"3"}),
    ("value", {"40", "75", "12"}), ("difference", {"35", "28", "63"}),
    ("label", {"Fruit sales", "Fruit", "Boxes sold"}),
])
def test_charts_answers_are_computed_from_the_data(kind, expected):
    for seed in range(8):
        q = make_question(random.Random(seed), SPEC, kind)
        assert q.answer in expected, (q, expected)


def test_charts_value_question_names_the_category_it_answers():
    for seed in range(8):
        q = make_question(random.Random(seed), SPEC, "value")
        [category] = [c for c in SPEC.categories if c in q.query]
        assert q.answer == str(dict(zip(SPEC.categories, SPEC.series[0][1], strict=True))[category])


def test_charts_every_type_renders_a_readable_png_with_numeric_and_text_answers():
    examples = make_charts(40, seed=0, image_size=128)
    assert {e.meta["chart_type"] for e in examples} == {"bar", "grouped_bar", "line", "pie"}
    assert {e.meta["answer_type"] for e in examples} == {"numeric", "text"}
    image = load_image(examples[0])
    assert image.mode == "RGB" and image.size == (128, 96)


def test_charts_filters_and_unknown_kind():
    only = make_charts(10, seed=1, kinds=["count"], chart_types=["pie"], image_size=96)
    assert {(e.meta["kind"], e.meta["chart_type"]) for e in only} == {("count", "pie")}
    with pytest.raises(ConfigError, match="unknown question kind 'colour'"):
        make_charts(1, seed=0, kinds=["colour"])


def test_charts_synthetic_set_is_written_in_pjn_charts_shape_and_loads_through_core(tmp_path):
    settings = SyntheticSettings(seed=2, train_size=5, val_size=2, test_size=3, image_size=96)
    folder = synthesize(settings, tmp_path / "set", progress=False)
    row = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
    assert {"image", "query", "label"} <= set(row) and isinstance(row["label"], list)
    assert (folder / row["image"]).is_file()
    report = load_charts(folder, split="val", columns=CHART_COLUMNS)
    assert report.total == 2 and not report.problems
    generated = make_charts(2, seed=2, split="val", image_size=96)
    assert [(e.prompt, e.answers) for e in report.kept] == [(e.prompt, e.answers) for e in generated]
    assert load_image(report.kept[0]).tobytes() == load_image(generated[0]).tobytes()
    assert json.loads((folder / "synthetic.json").read_text())["sizes"] == {"train": 5, "val": 2, "test": 3}
