"""ChartQA's relaxed accuracy checked against hand-computed values (moved from core's metrics tests)."""

from __future__ import annotations

import pytest

from nmm_charts.metrics import RELAXED_ACCURACY, relaxed_accuracy, relaxed_accuracy_per_example
from nmm_core.evaluate import scored
from nmm_core.metrics import exact_match_per_example
from nmm_core.records import Example
from nmm_core.task import Task
from nmm_core.testing.metric_inputs import assert_checks_inputs

# ---------------------------------------------------------------- relaxed accuracy


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("104", "100", 1.0),  # |104-100|/100 = 0.04 <= 0.05
        ("106", "100", 0.0),  # 0.06 > 0.05
        ("105", "100", 1.0),  # 0.05 is inside: the bound is inclusive
        ("96", "100", 1.0),
        (" 104 ", "100\n", 1.0),  # whitespace stripped before parsing
        ("5%", "0.05", 1.0),  # 5 / 100 = 0.05
        ("50%", "0.05", 0.0),
        ("0", "0", 1.0),  # zero target: string comparison
        ("0.0", "0", 0.0),  # ... so "0.0" does not equal "0"
        ("texas", "Texas", 1.0),  # strings: case-insensitive
        ("Texas.", "Texas", 0.0),  # strings: no punctuation stripping
        ("tx", ["Texas", "TX"], 1.0),
        ("Austin", ["Texas", "TX"], 0.0),
        ("", "100", 0.0),
    ],
)
def test_relaxed_accuracy_cases(pred, ref, expected):
    assert relaxed_accuracy_per_example([pred], [ref]) == [expected]


def test_relaxed_accuracy_mean_and_tolerance():
    preds, refs = ["104", "106", "5%", "TX"], ["100", "100", "0.05", ("Texas", "TX")]
    assert relaxed_accuracy(preds, refs) == pytest.approx(3 / 4)
    assert relaxed_accuracy(preds, refs, tolerance=0.1) == pytest.approx(1.0)
    assert relaxed_accuracy(preds, refs, tolerance=0.0) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="tolerance"):
        relaxed_accuracy(preds, refs, tolerance=-0.1)


# (prediction, reference, relaxed accuracy here, exact match here); the comments give ChartQA's
# reference (pix2struct's relaxed_correctness) where it differs, as relaxed_accuracy's docstring says
_AGAINST_CHARTQAS_REFERENCE = [
    ("104", "100", 1.0, 0.0),
    (" 104", "100", 1.0, 0.0),  # the reference's float() strips numbers too
    (" Yes", "yes", 1.0, 1.0),  # reference: 0 (text is compared unstripped)
    ("Yes ", ["no", " yes"], 1.0, 1.0),  # reference: 0
    ("nan", "nan", 1.0, 1.0),  # reference: 0 (parsed as a float, nan equals nothing)
    ("NaN", "nan", 1.0, 1.0),  # reference: 0
    ("inf", "inf", 1.0, 1.0),  # reference: 0 (inf - inf is nan)
    ("5", "inf", 0.0, 0.0),
    ("inf", "5", 0.0, 0.0),
    ("nan", "5", 0.0, 0.0),
    ("45%", "0.45", 1.0, 0.0),  # a trailing % divides by 100, in both
    ("45%", "45", 0.0, 1.0),  # exact match drops the %: more lenient than relaxed accuracy
    ("$5", "5", 0.0, 1.0),  # ... and the $
    ("$5", "$5.1", 0.0, 0.0),  # currency is text to relaxed accuracy: no 5% tolerance
    ("1,000", "1000", 0.0, 1.0),  # so are thousands commas (the chart task rewrites both sides)
]


@pytest.mark.parametrize(("pred", "ref", "relaxed", "exact"), _AGAINST_CHARTQAS_REFERENCE)
def test_relaxed_accuracy_and_exact_match_where_they_part_from_chartqas_reference(pred, ref, relaxed, exact):
    assert relaxed_accuracy_per_example([pred], [ref]) == [relaxed]
    assert exact_match_per_example([pred], [ref]) == [exact]

_ALL = [relaxed_accuracy, relaxed_accuracy_per_example]

@pytest.mark.parametrize("fn", _ALL, ids=lambda f: f.__name__)
def test_bad_inputs_raise_and_an_empty_prediction_scores_zero(fn):
    assert_checks_inputs(fn)


def _scores(task: Task, answers: list[str], refs: list[str]) -> dict[str, float]:
    examples = [Example(f"q{i}", None, "What colour is the circle?", (r,)) for i, r in enumerate(refs)]
    return scored(examples, {i: (a, 0.01) for i, a in enumerate(answers)}, task=task, name="m").metrics


# moved from core's test_task_scores with relaxed accuracy
def test_a_task_rewrites_references_as_it_rewrites_answers():
    class Comma(Task):
        def normalise(self, prediction: str) -> str:
            return prediction.replace(",", "")

        def normalise_reference(self, reference: str) -> str:
            return reference.replace(",", "")

    task = Comma(metrics=(RELAXED_ACCURACY,))
    assert _scores(task, ["1,250"], ["1,216.5"]) == {"relaxed_accuracy": 1.0}
    assert task.score_one("1250", ["1,216.5"]) == {"relaxed_accuracy": 1.0}
    assert _scores(Task(metrics=(RELAXED_ACCURACY,)), ["1,250"], ["1,216.5"]) == {"relaxed_accuracy": 0.0}
