"""The chart task: short-answer prompt, normalisation, relaxed accuracy first."""

from __future__ import annotations

import pytest

from nmm_charts.task import ChartTask, chart_task
from nmm_core.records import Example


@pytest.mark.parametrize(("raw", "clean"), [
    ("42.", "42"), ("3.5", "3.5"), ("The answer is Texas.", "Texas"), ("Answer: 1,216", "1216"),
    ("'No'", "No"), ("17\nbecause the bar...", "17"), ("", ""), ("62%", "62%"),
])
def test_charts_normalise(raw, clean):
    assert ChartTask().normalise(raw) == clean


def test_charts_prompt_asks_for_a_short_answer():
    prompt = chart_task().prompt(Example("a", None, "How many bars?", ("3",)))
    assert prompt.startswith("How many bars?") and "single word or number" in prompt


def test_charts_scores_relaxed_accuracy_first_with_every_metric():
    task = chart_task()
    preds = [task.normalise(p) for p in ["The answer is 100.", "Texas", "7"]]
    scores = task.score(preds, [["104"], ["texas"], ["9"]])
    assert task.primary == "relaxed_accuracy" and list(scores)[0] == "relaxed_accuracy"
    assert scores["relaxed_accuracy"] == pytest.approx(2 / 3)  # 100 is within 5% of 104
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert {"rouge1", "rouge2", "rougeL", "bleu"} <= set(scores)
    assert task.score_one("100", ["104"]) == {"relaxed_accuracy": 1.0, "exact_match": 0.0}
