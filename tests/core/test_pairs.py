"""The pair file: randomised sides, same examples, clear errors on malformed files."""

from __future__ import annotations

import pytest

from nmm_core.errors import DataError
from nmm_core.evaluate import EvalResult
from nmm_core.pairs import make_pairs, read_pairs, write_pairs
from nmm_core.testing.shapes import make_shapes_dataset


def _result(name, examples, answers):
    rows = [{"id": ex.id, "prompt": ex.prompt, "prediction": a} for ex, a in zip(examples, answers, strict=True)]
    return EvalResult(name, {}, 0.01, rows)


def test_pairs_round_trip_with_both_sides_used(tmp_path):
    examples = make_shapes_dataset(40, seed=5)
    base = _result("base", examples, ["b"] * 40)
    tuned = _result("tuned", examples, ["t"] * 40)
    pairs = make_pairs(examples, base, tuned, folder=tmp_path, task="shapes")
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    back = read_pairs(tmp_path / "pairs.jsonl")
    assert back == pairs
    lefts = [p.left.model for p in back]
    assert 5 < lefts.count("base") < 35, "sides must be randomised, not fixed"
    for p in back:
        assert {p.left.answer, p.right.answer} == {"b", "t"}
        assert {(p.left.model, p.left.answer), (p.right.model, p.right.answer)} == {("base", "b"), ("tuned", "t")}
        assert (tmp_path / p.image).is_file()


def test_results_on_other_examples_are_refused(tmp_path):
    examples = make_shapes_dataset(4, seed=5)
    base = _result("base", examples, ["x"] * 4)
    other = _result("tuned", list(reversed(examples)), ["y"] * 4)
    with pytest.raises(DataError, match="same example order"):
        make_pairs(examples, base, other, folder=tmp_path, task="t")


def test_malformed_pair_file_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"pair_id": "a"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:1: missing field\(s\) example_id"):
        read_pairs(path)
