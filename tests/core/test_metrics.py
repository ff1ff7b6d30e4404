"""Metrics checked against hand-computed values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nmm_core import metrics
from nmm_core.metrics import (
    bleu,
    bleu_per_example,
    exact_match,
    exact_match_per_example,
    normalize_answer,
    rouge,
    rouge_per_example,
)
from nmm_core.testing.metric_inputs import BAD_INPUTS


def test_import_is_cheap():
    code = (
        "import sys, nmm_core.metrics; "
        "print(sorted(m for m in ('torch', 'transformers', 'sacrebleu', 'rouge_score') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_lists_public_api():
    expected = {
        "rouge", "rouge_per_example", "bleu", "bleu_per_example",
        "exact_match", "exact_match_per_example",
        "normalize_answer",
    }
    assert expected <= set(metrics.__all__)
    # a domain's own scores live in its package (nmm_charts.metrics, nmm_pathology.metrics)
    assert not {"relaxed_accuracy", "closed_accuracy", "open_recall", "is_yes_no"} & set(metrics.__all__)
    for name in metrics.__all__:
        assert hasattr(metrics, name)


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 5.7.", "answer is 5.7"),
        ("  An   apple, a PEAR!  ", "apple pear"),
        ("1,000,000", "1000000"),
        ("1,2", "1 2"),  # not a thousands group: the comma separates
        ("-5", "-5"),
        ("2-3", "2 3"),
        ("Yes,the tissue", "yes tissue"),
        ("theory", "theory"),  # articles only as whole words
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


# ---------------------------------------------------------------- exact match


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("The answer is 5.7.", "answer is 5.7", 1.0),
        ("57", "5.7", 0.0),
        ("5.7", "5.7", 1.0),
        ("1,000", "1000", 1.0),
        ("-5", "5", 0.0),
        ("A Cat!", "cat", 1.0),
        ("cats", "cat", 0.0),
        ("", "cat", 0.0),
        ("colour", ["color", "colour"], 1.0),
    ],
)
def test_exact_match_cases(pred, ref, expected):
    assert exact_match_per_example([pred], [ref]) == [expected]


def test_exact_match_mean():
    assert exact_match(["The answer is 5.7.", "57", "1,000"], ["answer is 5.7", "5.7", "1000"]) == (
        pytest.approx(2 / 3)
    )


# ---------------------------------------------------------------- ROUGE


def test_rouge_two_examples_by_hand():
    preds = ["the cat sat on the mat", "a dog barked"]
    refs = ["the cat lay on the rug", "the dog barked loudly"]
    # Example 1: unigram overlap the x2, cat, on = 4 of 6 each side -> P = R = F = 2/3;
    #   bigrams "the cat", "on the" = 2 of 5 each side -> F = 0.4; LCS "the cat on the" -> 2/3.
    # Example 2 (stemmer: barked -> bark on both sides): overlap dog, bark = 2;
    #   P = 2/3, R = 2/4, F = 2 * (1/3) / (7/6) = 4/7; bigram "dog bark": P = 1/2, R = 1/3,
    #   F = 2 * (1/6) / (5/6) = 0.4; LCS "dog bark" -> 4/7.
    per = rouge_per_example(preds, refs)
    assert per["rouge1"] == [pytest.approx(2 / 3), pytest.approx(4 / 7)]
    assert per["rouge2"] == [pytest.approx(0.4), pytest.approx(0.4)]
    assert per["rougeL"] == [pytest.approx(2 / 3), pytest.approx(4 / 7)]
    scores = rouge(preds, refs)
    assert set(scores) == {"rouge1", "rouge2", "rougeL"}
    assert scores["rouge1"] == pytest.approx((2 / 3 + 4 / 7) / 2)  # 13/21
    assert scores["rouge2"] == pytest.approx(0.4)


def test_rouge_keeps_best_reference_and_empty_prediction_scores_zero():
    per = rouge_per_example(["the cat sat", ""], [["a dog ran", "the cat sat"], "the cat"])
    assert per["rouge1"] == [pytest.approx(1.0), 0.0]
    assert per["rougeL"] == [pytest.approx(1.0), 0.0]


# ---------------------------------------------------------------- BLEU


def test_bleu_identical_is_1():
    sents = ["the quick brown fox jumps over the lazy dog", "a small red car is parked outside"]
    assert bleu(sents, sents) == pytest.approx(1.0)  # sacrebleu's 100, on every other metric's scale
    assert bleu_per_example(sents, sents) == [pytest.approx(1.0), pytest.approx(1.0)]


def test_bleu_multi_reference_beats_single():
    preds = ["the cat is sitting on the mat"]
    single = bleu(preds, ["there is a cat on the mat"])
    multi = bleu(preds, [["there is a cat on the mat", "the cat is sitting on a mat"]])
    assert multi > single
    assert bleu_per_example(preds, [["there is a cat on the mat", "the cat is sitting on a mat"]])[
        0
    ] > bleu_per_example(preds, ["there is a cat on the mat"])[0]


def _summed_bleu(preds, refs):
    """Corpus BLEU from each example's own statistics, scored on only its real refs."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    stats = [metric.corpus_score([p], [[r] for r in rs]) for p, rs in zip(preds, refs, strict=False)]
    correct = [sum(s.counts[n] for s in stats) for n in range(4)]
    total = [sum(s.totals[n] for s in stats) for n in range(4)]
    sys_len = sum(s.sys_len for s in stats)
    ref_len = sum(s.ref_len for s in stats)
    return BLEU.compute_bleu(correct, total, sys_len, ref_len).score / 100


@pytest.mark.parametrize("short_first", [False, True])
def test_bleu_padding_does_not_change_score(short_first):
    # "the cat" is short: padding its refs with "" would make the closest reference
    # length 0 and drop its brevity penalty; None padding must not.
    preds = ["the cat sat on the mat today", "the cat"]
    refs = [
        ["the cat sat on the mat", "a cat sat on a mat today", "the cat was on the mat"],
        ["the cat sat on the mat"],
    ]
    if short_first:
        preds, refs = preds[::-1], refs[::-1]
    expected = _summed_bleu(preds, refs)
    assert bleu(preds, refs) == pytest.approx(expected)

    from sacrebleu.metrics import BLEU

    width = max(len(r) for r in refs)
    empty_padded = [[r[k] if k < len(r) else "" for r in refs] for k in range(width)]
    assert BLEU().corpus_score(preds, empty_padded).score / 100 != pytest.approx(expected)


def test_bleu_empty_prediction_scores_zero():
    assert bleu_per_example(["", "the cat sat"], ["the cat sat", "the cat sat"]) == [
        0.0,
        pytest.approx(1.0),
    ]


_WORDS = ["red", "3", "blue", "2", "square", "green"]


def test_corpus_bleu_cannot_tell_right_one_word_answers_from_wrong_ones():
    wrong = ["green", "5", "red", "4", "circle", "blue"]
    assert exact_match(_WORDS, _WORDS) == 1.0 and exact_match(wrong, _WORDS) == 0.0
    # no answer has a 4-gram: corpus BLEU (no effective order) is 0 for both
    assert bleu(_WORDS, _WORDS) == bleu(wrong, _WORDS) == 0.0
    # and four-token babble that holds a few answer words scores above both
    babble = ["red red blue the", "3 3 square circle", "x y z w", "a b c d", "e f g h", "i j k l"]
    assert bleu(babble, _WORDS) > bleu(_WORDS, _WORDS)


def test_sentence_bleu_with_effective_order_scores_one_word_answers_as_exact_match():
    wrong = _WORDS[1:] + _WORDS[:1]
    assert bleu_per_example(_WORDS, _WORDS) == [pytest.approx(1.0)] * len(_WORDS)
    assert bleu_per_example(wrong, _WORDS) == [0.0] * len(_WORDS)


def test_rouge2_is_zero_for_every_one_word_answer_even_a_right_one():
    scores = rouge(_WORDS, _WORDS)
    assert scores["rouge1"] == scores["rougeL"] == pytest.approx(1.0)
    assert scores["rouge2"] == 0.0


# ---------------------------------------------------------------- input validation

_ALL = [
    bleu, bleu_per_example, rouge, rouge_per_example,
    exact_match, exact_match_per_example,
]


@pytest.mark.parametrize("fn", _ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("preds", "refs", "message"), BAD_INPUTS)
def test_bad_inputs_raise(fn, preds, refs, message):
    with pytest.raises(ValueError, match=message):
        fn(preds, refs)


@pytest.mark.parametrize("fn", _ALL, ids=lambda f: f.__name__)
def test_empty_string_prediction_is_allowed(fn):
    result = fn([""], ["yes"])
    values = result.values() if isinstance(result, dict) else [result]
    for value in values:
        assert value == 0.0 or value == [0.0]
