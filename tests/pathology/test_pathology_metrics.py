"""PathVQA's closed accuracy and open recall checked against hand-computed values (moved from core's metrics tests)."""

from __future__ import annotations

import pytest

from nmm_core.testing.metric_inputs import assert_checks_inputs
from nmm_pathology.metrics import (
    closed_accuracy,
    closed_accuracy_per_example,
    is_yes_no,
    open_recall,
    open_recall_per_example,
)


def test_is_yes_no():
    assert is_yes_no(" Yes. ")
    assert is_yes_no("NO!")
    assert not is_yes_no("yes it is")
    assert not is_yes_no("maybe")


# ---------------------------------------------------------------- closed (yes/no) accuracy


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("Yes, the tissue shows signs of necrosis.", "yes", 1.0),
        ("Yes, the tissue shows signs of necrosis.", "No", 0.0),
        ("No.", "no", 1.0),
        ("The answer is no.", "NO", 1.0),  # no leading yes/no: first standalone one
        ("No, yes", "yes", 0.0),  # the first one decides
        ("Yesterday it was fine", "yes", 0.0),  # "yesterday" is not a standalone yes
        ("I cannot tell", "no", 0.0),
        ("", "yes", 0.0),
    ],
)
def test_closed_accuracy_cases(pred, ref, expected):
    assert closed_accuracy_per_example([pred], [ref]) == [expected]


def test_closed_accuracy_mean_and_bad_reference():
    assert closed_accuracy(["Yes, it is.", "no", "yes"], ["yes", "yes", "Yes."]) == pytest.approx(
        2 / 3
    )
    with pytest.raises(ValueError, match="reference 1"):
        closed_accuracy(["yes", "yes"], ["yes", "maybe"])


@pytest.mark.parametrize("reply", ["normal", "Normal tissue.", "Note the nuclei.", "unknown", "none seen",
                                   "Not sure", "cannot tell", "the nodes"])
def test_closed_accuracy_does_not_read_a_no_inside_another_word(reply):
    # LLaVA-Med's PathVQA evaluator counts any reply containing "no" as a No (its issue #12)
    assert "no" in reply.lower()
    assert closed_accuracy_per_example([reply], ["no"]) == [0.0]
    assert closed_accuracy_per_example([reply], ["yes"]) == [0.0]


def test_closed_accuracy_of_a_constant_reply_holding_no_is_zero_not_the_share_of_nos():
    refs = ["no", "no", "no", "yes"]
    assert closed_accuracy(["normal"] * 4, refs) == 0.0  # the substring rule gives 0.75
    assert closed_accuracy(["yes and no"] * 4, refs) == 0.25  # its first word decides; the substring rule gives 1.0
    assert closed_accuracy(["No, it is normal."] * 4, refs) == 0.75


# ---------------------------------------------------------------- open recall


def test_open_recall_canals_of_hering():
    # normalize_answer drops the article "the", so the reference's tokens are
    # [in, canals, of, hering]; the prediction has canals, of, hering -> 3 / 4.
    # (Keeping articles would give 3 / 5 = 0.6.)
    assert open_recall_per_example(["canals of hering"], ["in the canals of hering"]) == [
        pytest.approx(0.75)
    ]


def test_open_recall_best_reference_and_mean():
    preds = ["canals of hering", "a fibrous tumour", ""]
    refs = [
        ["in the canals of hering", "Hering canals"],  # 3/4 vs 2/2 -> 1.0
        "fibrous",  # 1/1
        "necrosis",  # empty prediction -> 0
    ]
    assert open_recall_per_example(preds, refs) == [1.0, 1.0, 0.0]
    assert open_recall(preds, refs) == pytest.approx(2 / 3)
    # Repeated reference tokens count each time: [left, left, lobe] vs {left} -> 2/3.
    assert open_recall(["left"], ["left left lobe"]) == pytest.approx(2 / 3)


def test_open_recall_reference_empty_after_normalisation():
    # "The." normalises to no tokens: only an equally empty prediction counts as recalled.
    assert open_recall_per_example(["tumour", "", "A."], ["The.", "The.", "the"]) == [0.0, 1.0, 1.0]

_ALL = [closed_accuracy, closed_accuracy_per_example, open_recall, open_recall_per_example]

@pytest.mark.parametrize("fn", _ALL, ids=lambda f: f.__name__)
def test_bad_inputs_raise_and_an_empty_prediction_scores_zero(fn):
    assert_checks_inputs(fn)
