"""Ratings against hand-computed values."""

from __future__ import annotations

import math

import pytest

from nmm_core.ratings import bootstrap_interval, bradley_terry, elo, win_rate


def test_bradley_terry_two_players_matches_the_closed_form():
    # A beats B 3 times of 4: MLE strength ratio 3, so the rating gap is 400*log10(3) ~ 190.8
    ratings = bradley_terry([("A", "B", 1)] * 3 + [("A", "B", 0)])
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert (ratings["A"] + ratings["B"]) / 2 == pytest.approx(1000)


def test_ties_count_half_and_prior_keeps_a_sweep_finite():
    tie = bradley_terry([("A", "B", 0.5)] * 4)
    assert tie["A"] == pytest.approx(tie["B"])
    sweep = bradley_terry([("A", "B", 1)] * 5, prior=1.0)
    # 5.5 wins vs 0.5 with 6 games: ratio 11
    assert sweep["A"] - sweep["B"] == pytest.approx(400 * math.log10(11), abs=1e-6)


def test_three_players_order_follows_results():
    matches = [("A", "B", 1), ("B", "C", 1), ("A", "C", 1), ("C", "A", 0), ("B", "A", 0.5)]
    r = bradley_terry(matches, prior=0.5)
    assert r["A"] > r["B"] > r["C"]


def test_win_rate_and_bootstrap_interval():
    outcomes = [1, 1, 0, 0.5, 1, 0, 1, 1]
    assert win_rate(outcomes) == pytest.approx(5.5 / 8)
    low, high = bootstrap_interval(outcomes, seed=1)
    assert low <= win_rate(outcomes) <= high and 0 <= low < high <= 1
    assert bootstrap_interval(outcomes, seed=1) == (low, high)
    assert bootstrap_interval([1] * 10) == (1.0, 1.0)


def test_elo_one_game_moves_half_k():
    r = elo([("A", "B", 1)], k=32)
    assert r == {"A": 1016.0, "B": 984.0}


@pytest.mark.parametrize("bad", [[], [("A", "A", 1)], [("A", "B", 2)]])
def test_bad_matches_are_refused(bad):
    with pytest.raises(ValueError):
        bradley_terry(bad)


def test_counts_forms_agree_with_the_match_forms():
    from nmm_core.ratings import bootstrap_interval_counts, bradley_terry_counts, elo_update

    matches = [("A", "B", 1), ("B", "C", 1), ("A", "C", 0.5), ("C", "A", 0), ("B", "A", 0.5)] * 3
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    running: dict[str, float] = {}
    for a, b, s in matches:
        wins[a], wins[b] = wins.get(a, 0) + s, wins.get(b, 0) + 1 - s
        games[tuple(sorted((a, b)))] = games.get(tuple(sorted((a, b))), 0) + 1
        elo_update(running, a, b, s)
    assert bradley_terry_counts(wins, games, prior=0.5) == pytest.approx(bradley_terry(matches, prior=0.5))
    assert running == pytest.approx(elo(matches))
    # The multinomial bootstrap over counts samples the same distribution as resampling outcomes.
    outcomes = [1.0] * 60 + [0.5] * 25 + [0.0] * 35
    by_values = bootstrap_interval(outcomes, seed=3)
    by_counts = bootstrap_interval_counts(60, 25, 35, seed=3)
    assert by_counts == pytest.approx(by_values, abs=0.015)
    assert by_counts == bootstrap_interval_counts(60, 25, 35, seed=3)  # seeded
    assert bootstrap_interval_counts(10, 0, 0) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_interval_counts(0, 0, 0)
