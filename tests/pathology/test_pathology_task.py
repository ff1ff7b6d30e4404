"""The PathVQA task: short-answer extraction, strict vs normalised scores, closed/open by the answer."""

from __future__ import annotations

import pytest

from nmm_core.records import Example
from nmm_pathology.task import INSTRUCTION, PathVqaTask, extract_short_answer


@pytest.mark.parametrize(("reply", "short"), [
    ("Yes, the image shows an embolus.", "yes"),
    ("No.", "no"),
    ("ASSISTANT: no", "no"),
    ("The answer is: esophagus.", "esophagus"),
    ("In this image, there is necrosis, which is extensive.", "necrosis"),
    ("It appears to be hematoxylin and eosin stain.", "hematoxylin and eosin stain"),
    ("The image shows hemorrhage; also some fibrin", "hemorrhage"),
    ("in the canals of hering", "in the canals of hering"),
    ("5.7 cm", "5.7 cm"),
    ("", ""),
])
def test_pathology_extract_short_answer(reply, short):
    assert extract_short_answer(reply) == short


def test_pathology_prompt_asks_for_a_short_answer():
    task = PathVqaTask()
    ex = Example("a", None, "is there necrosis?", ("yes",))
    assert task.prompt(ex) == f"is there necrosis? {INSTRUCTION}"
    assert task.normalise("  Yes, there is.  ") == "Yes, there is."  # raw kept for the strict scores


def test_pathology_scores_strict_and_normalised_by_hand():
    task = PathVqaTask()
    preds = ["Yes, there is.", "The answer is esophagus.", "no", "liver", "The liver and the spleen"]
    refs = [["yes"], ["esophagus"], ["yes"], ["liver"], ["spleen"]]
    s = task.score(preds, refs)
    # closed: 0 and 2 -> first yes/no word: yes (right), no (wrong)
    assert s["closed_accuracy_strict"] == s["closed_accuracy_norm"] == 0.5
    # open: 1, 3, 4. strict EM: only "liver"; norm EM: "esophagus" and "liver"
    assert s["open_exact_match_strict"] == pytest.approx(1 / 3)
    assert s["open_exact_match_norm"] == pytest.approx(2 / 3)
    # recall: every open reference's tokens appear in the reply, raw or shortened
    assert s["open_recall_strict"] == s["open_recall_norm"] == pytest.approx(1.0)
    # exact match over all five: strict only "liver"; norm adds "yes" and "esophagus"
    assert s["exact_match_strict"] == pytest.approx(1 / 5)
    assert s["exact_match_norm"] == pytest.approx(3 / 5)
    # accuracy: closed by yes/no word (1 of 2), open by exact match
    assert s["accuracy_strict"] == pytest.approx((1 + 1) / 5)
    assert s["accuracy_norm"] == pytest.approx((1 + 2) / 5)
    assert task.primary in s and len(s) == 10


def test_pathology_score_one_matches_score():
    task = PathVqaTask()
    one = task.score_one("The answer is esophagus.", ["esophagus"])
    assert one["closed"] == 0.0
    assert one["exact_match_strict"] == 0.0 and one["exact_match_norm"] == 1.0
    assert task.score_one("Yes.", ["yes"])["closed"] == 1.0


def test_pathology_closed_is_decided_by_the_answer_not_the_question():
    task = PathVqaTask()
    # "is ..." question with an open answer is open; "what ..." with a yes answer is closed
    s = task.score(["fibrin", "yes"], [["fibrin"], ["yes"]])
    assert s["open_exact_match_strict"] == 1.0 and s["closed_accuracy_strict"] == 1.0


def test_pathology_closed_accuracy_does_not_count_a_word_holding_no_as_a_no():
    # LLaVA-Med's evaluator counts "normal", "note", "unknown" ... as a No (its issue #12): a model that
    # always answers "Normal tissue." would score the share of No questions; here it scores 0
    task = PathVqaTask()
    replies = ["Normal tissue.", "Note the nuclei.", "unknown", "The nodes are enlarged."]
    s = task.score(replies, [["no"]] * 4)
    assert s["closed_accuracy_strict"] == s["closed_accuracy_norm"] == 0.0
    assert task.score(["No, it is normal."] * 4, [["no"]] * 4)["closed_accuracy_norm"] == 1.0
