"""The chart task: short-answer prompt, normalisation, relaxed accuracy first."""

from __future__ import annotations

import pytest

from nmm_charts.task import ChartTask, chart_task
from nmm_core.evaluate import scored
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
    assert set(scores) == {"relaxed_accuracy", "exact_match", "rouge1", "rougeL"}  # no BLEU, no ROUGE-2
    assert task.score_one("100", ["104"]) == {"relaxed_accuracy": 1.0, "exact_match": 0.0}


def _scored(raw_answers: list[str], references: list[str]):
    """Raw model answers through the evaluator's own path: normalise, score, per-example rows."""
    answers = {i: (raw, 0.1) for i, raw in enumerate(raw_answers)}
    examples = [Example(f"q{i}", None, "What is the value?", (ref,)) for i, ref in enumerate(references)]
    return scored(examples, answers, task=chart_task(), name="m")


# (raw answer, reference, relaxed accuracy): the reference as written in the data, commas and all
_WRITTEN_AS_THE_DATA = [
    ("1,216.5", "1,216.5", 1.0), ("The answer is 1,216.5.", "1,216.5", 1.0), ("1216.5", "1,216.5", 1.0),
    ("1,250", "1,216.5", 1.0),  # within 5%, read as numbers on both sides
    ("1,300", "1,216.5", 0.0), ("1,216,500", "1,216.5", 0.0),
    ("-1,216", "-1,216", 1.0), ("-1216", "-1,216", 1.0), ("1,216", "-1,216", 0.0),
    ("-3.5", "-3.5", 1.0), ("3.5", "-3.5", 0.0),
    ("12.5%", "12.5%", 1.0), ("1,250%", "1,250%", 1.0), ("0.125", "12.5%", 1.0), ("12.5", "12.5%", 0.0),
    ("$1,216", "$1,216", 1.0), ("$5", "$5", 1.0),
    ("1,216", "$1,216", 0.0), ("$5", "5", 0.0),  # currency is text, as in ChartQA's reference
]


@pytest.mark.parametrize(("raw", "reference", "relaxed"), _WRITTEN_AS_THE_DATA)
def test_charts_normalise_references_as_they_normalise_answers(raw, reference, relaxed):
    result = _scored([raw], [reference])
    assert result.metrics["relaxed_accuracy"] == result.predictions[0]["relaxed_accuracy"] == relaxed


def test_charts_a_right_answer_in_the_references_own_form_always_scores():
    references = [ref for _, ref, _ in _WRITTEN_AS_THE_DATA]
    right = _scored(references, references)
    assert right.metrics["relaxed_accuracy"] == right.metrics["exact_match"] == 1.0
    shuffled = _scored(references[1:] + references[:1], references)  # each answer to the next question
    assert shuffled.metrics["relaxed_accuracy"] < 0.5 and shuffled.metrics["exact_match"] < 0.5
