"""Judging math on hand-computed cases: winners, win rate, bootstrap interval, Bradley-Terry."""

from __future__ import annotations

import math

import pytest

from nmm_core.competition import TIE, Verdict, judge_pairs, matches, summarise, win_tie_loss, winner
from nmm_core.pairs import Pair, Side
from nmm_core.ratings import bootstrap_interval, bradley_terry


def _v(winner_name: str, i: int = 0) -> Verdict:
    return Verdict(f"p{i}", "base", "fine-tuned", 0.0, 0.0, winner_name)


def test_winner_with_tie_epsilon():
    assert winner("a", "b", 0.50, 0.40, 0.05) == "a"
    assert winner("a", "b", 0.40, 0.50, 0.05) == "b"
    assert winner("a", "b", 0.50, 0.46, 0.05) == TIE


def test_judge_pairs_scores_rouge_l_against_every_reference():
    refs = ["the cat sat", "a dog barked loudly"]
    pairs = [Pair("t:1", "1", None, "q", refs, Side("base", "zebra"), Side("fine-tuned", "a dog barked loudly"), "t"),
             Pair("t:2", "2", None, "q", refs, Side("fine-tuned", "the cat sat"), Side("base", "the cat sat"), "t")]
    first, second = judge_pairs(pairs, epsilon=0.01)
    assert first.right_score == pytest.approx(1.0) and first.left_score == 0.0 and first.winner == "fine-tuned"
    assert second.winner == TIE  # the second reference matched exactly: best reference counts
    assert win_tie_loss([first, second], "fine-tuned") == {"wins": 1, "ties": 1, "losses": 0}
    assert win_tie_loss([first, second], "base") == {"wins": 0, "ties": 1, "losses": 1}


def test_bradley_terry_two_models_closed_form():
    verdicts = [_v("fine-tuned", i) for i in range(3)] + [_v("base", 3)]
    # no prior: strengths 3:1, so ratings are 1000 +- 200 log10(3)
    r = bradley_terry(matches(verdicts), prior=0.0)
    assert r["fine-tuned"] == pytest.approx(1000 + 200 * math.log10(3), abs=1e-6)
    assert r["base"] == pytest.approx(1000 - 200 * math.log10(3), abs=1e-6)
    # one virtual tie: 3.5 vs 1.5 wins
    r = bradley_terry(matches(verdicts), prior=1.0)
    assert r["fine-tuned"] - r["base"] == pytest.approx(400 * math.log10(3.5 / 1.5), abs=1e-6)
    # a tie is half a win each way; all ties: equal ratings
    even = bradley_terry(matches([_v(TIE), _v(TIE, 1)]), prior=0.0)
    assert even == pytest.approx({"base": 1000.0, "fine-tuned": 1000.0})


def test_bradley_terry_three_models_order_follows_wins():
    vs = [Verdict(f"{i}", a, b, 0, 0, w) for i, (a, b, w) in enumerate(
        [("x", "y", "x"), ("x", "y", "x"), ("y", "z", "y"), ("y", "z", "y"), ("x", "z", "x"), ("y", "x", "y")])]
    r = bradley_terry(matches(vs), prior=1.0)
    assert r["x"] > r["y"] > r["z"]
    assert sum(r.values()) / 3 == pytest.approx(1000.0)  # geometric mean of strengths is 1


def test_bootstrap_interval_is_seeded_and_contains_the_mean():
    values = [1.0] * 7 + [0.5] * 2 + [0.0] * 3
    low, high = bootstrap_interval(values, resamples=1000, seed=4)
    mean = sum(values) / len(values)
    assert low <= mean <= high and 0 < low < high < 1
    assert (low, high) == bootstrap_interval(values, resamples=1000, seed=4)
    assert bootstrap_interval([1.0, 1.0], resamples=50) == (1.0, 1.0)
    s = summarise([_v("fine-tuned", i) for i in range(3)] + [_v(TIE, 3), _v("base", 4)],
                  model="fine-tuned", opponent="base", samples=500)
    assert (s["wins"], s["ties"], s["losses"]) == (3, 1, 1)
    assert s["win_rate"] == pytest.approx(3.5 / 5) and s["ci_low"] <= s["win_rate"] <= s["ci_high"]


def test_judge_pairs_lets_a_lower_is_better_metric_pick_the_shorter_answer():
    from nmm_core.metric import Metric

    words = Metric("words", per_example=lambda p, refs: float(len(p.split())), higher_is_better=False)
    pair = Pair("t:1", "1", None, "q", ["x"], Side("base", "one two three"), Side("fine-tuned", "one"), "t")
    (verdict,) = judge_pairs([pair], metric=words, epsilon=0.01)
    assert (verdict.left_score, verdict.right_score, verdict.winner) == (3.0, 1.0, "fine-tuned")
    corpus_only = Metric("c", corpus=lambda p, r: 0.0)
    with pytest.raises(Exception, match="no per-example score"):
        judge_pairs([pair], metric=corpus_only)
