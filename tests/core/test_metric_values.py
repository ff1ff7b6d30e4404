"""Metrics are values a task declares: scored as declared, the first heads the report, direction and
corpus level respected."""

from __future__ import annotations

import json

import pytest

from nmm_core.evaluate import EvalResult, scored
from nmm_core.metric import Metric
from nmm_core.metrics import BLEU, EXACT_MATCH, exact_match_per_example
from nmm_core.records import Example
from nmm_core.report import delta_lines, write_comparison
from nmm_core.task import Task

# a metric only a downstream domain knows: 1 when the answer has at most two words
SHORT = Metric("short", per_example=lambda p, refs: float(len(p.split()) <= 2))
# and a lower-is-better one: the answer's length in words, over 10
LENGTH = Metric("length", per_example=lambda p, refs: min(len(p.split()), 10) / 10, scale=1.0,
                higher_is_better=False)


def _examples(refs: list[str]) -> list[Example]:
    return [Example(f"q{i}", None, "What colour?", (r,)) for i, r in enumerate(refs)]


def test_a_task_scores_a_metric_core_never_heard_of_per_example_and_over_the_set():
    task = Task(metrics=(SHORT, EXACT_MATCH))
    result = scored(_examples(["red", "blue", "green"]), {0: ("red", 0.1), 1: ("a blue one here", 0.1),
                                                          2: ("green", 0.1)}, task=task, name="m")
    assert result.metrics == {"short": pytest.approx(2 / 3), "exact_match": pytest.approx(2 / 3)}
    assert [row["short"] for row in result.predictions] == [1.0, 0.0, 1.0]
    assert task.primary == "short" and task.primary_metric is SHORT


def test_a_metric_without_corpus_is_the_mean_of_its_per_example_scores():
    only_one = Metric("em", per_example=lambda p, refs: exact_match_per_example([p], [list(refs)])[0])
    preds, refs = ["red", "Blue.", "3"], [["red"], ["blue"], ["4", "three"]]
    assert only_one.score(preds, refs) == EXACT_MATCH.score(preds, refs) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="empty"):
        only_one.score([], [])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "needs per_example, corpus or both"),
    ({"corpus": lambda p, r: 0.0, "scale": 0}, "scale must be > 0"),
])
def test_a_metric_that_cannot_score_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Metric("broken", **kwargs)


def test_a_task_refuses_a_name_a_repeat_or_nothing():
    with pytest.raises(ValueError, match="unknown metric 'exact_match'"):
        Task(metrics=("exact_match",))
    with pytest.raises(ValueError, match="declares a metric twice"):
        Task(metrics=(EXACT_MATCH, EXACT_MATCH))
    with pytest.raises(ValueError, match="declares no metric"):
        Task(metrics=())


def test_the_gain_follows_the_direction():
    assert EXACT_MATCH.gain(0.2, 0.5) == pytest.approx(0.3)
    assert LENGTH.gain(0.5, 0.2) == pytest.approx(0.3)  # shorter is better here


def _result(name: str, scores: list[float], key: str) -> EvalResult:
    rows = [{"id": f"q{i}", key: s} for i, s in enumerate(scores)]
    return EvalResult(name, {key: sum(scores) / len(scores)}, 0.01, rows)


def test_a_corpus_level_primary_gets_no_bootstrap_even_when_rows_hold_a_value(tmp_path):
    base, tuned = _result("base", [0.0] * 20, "bleu"), _result("fine-tuned", [1.0] * 20, "bleu")
    assert "interval" in delta_lines([base, tuned], "bleu")[0]  # a bare name reads the rows
    assert delta_lines([base, tuned], BLEU) == ["fine-tuned +1.0000 vs base"]
    write_comparison([base, tuned], tmp_path, title="t", primary=BLEU)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["delta_ci95_vs_first"] == {} and report["delta_vs_first"] == {"fine-tuned": 1.0}


def test_a_lower_is_better_primary_says_so(tmp_path):
    base, tuned = _result("base", [0.8] * 20, "length"), _result("fine-tuned", [0.2] * 20, "length")
    (line,) = delta_lines([base, tuned], LENGTH)
    assert line.startswith("fine-tuned -0.6000 vs base (lower is better) (95% interval")
    write_comparison([base, tuned], tmp_path, title="t", primary=LENGTH)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["primary_metric"] == "length" and report["primary_higher_is_better"] is False
    write_comparison([base, tuned], tmp_path, title="t", primary="length")  # a bare name: higher is better
    assert json.loads((tmp_path / "report.json").read_text())["primary_higher_is_better"] is True
