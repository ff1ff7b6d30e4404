"""Judging pairwise comparisons: win rates with bootstrap intervals, Bradley-Terry and Elo.

Used by every competition (automatic judges in the domains, human votes in the arena). A
match is `(a, b, score)` with score 1 when `a` wins, 0 when `b` wins, 0.5 for a tie.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Match = tuple[str, str, float]


def _check(matches: Sequence[Match]) -> None:
    if not matches:
        raise ValueError("no matches to rate")
    for i, (a, b, score) in enumerate(matches):
        if a == b:
            raise ValueError(f"match {i}: a model cannot play itself ({a!r})")
        if score not in (0, 0.5, 1):
            raise ValueError(f"match {i}: score must be 1, 0.5 or 0, got {score!r}")


def win_rate(outcomes: Sequence[float]) -> float:
    """Mean of outcomes (1 win, 0.5 tie, 0 loss)."""
    if not outcomes:
        raise ValueError("no outcomes")
    return sum(outcomes) / len(outcomes)


def bootstrap_interval(outcomes: Sequence[float], *, level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the win rate (seeded, so reports are reproducible)."""
    import numpy as np

    if not outcomes:
        raise ValueError("no outcomes")
    rng = np.random.default_rng(seed)
    values = np.asarray(outcomes, dtype=float)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return _percentiles(means, level)


def bootstrap_interval_counts(wins: int, ties: int, losses: int, *, level: float = 0.95, resamples: int = 2000,
                              seed: int = 0) -> tuple[float, float]:
    """The same percentile bootstrap from outcome counts: each resample of n outcomes is one multinomial
    draw of (wins, ties, losses), so memory is resamples x 3 whatever n is."""
    import numpy as np

    n = wins + ties + losses
    if n <= 0 or min(wins, ties, losses) < 0:
        raise ValueError(f"need non-negative counts with at least one outcome, got {wins}, {ties}, {losses}")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [wins / n, ties / n, losses / n], size=resamples)
    return _percentiles((draws[:, 0] + 0.5 * draws[:, 1]) / n, level)


def _percentiles(means: Any, level: float) -> tuple[float, float]:
    import numpy as np

    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bradley_terry(matches: Sequence[Match], *, iterations: int = 500, prior: float = 0.0,
                  scale: float = 400.0, base: float = 1000.0) -> dict[str, float]:
    """Bradley-Terry ratings by Hunter's MM algorithm, on an Elo-like scale.

    P(a beats b) = p_a / (p_a + p_b); a tie counts half a win each way. `prior` adds that many
    virtual ties between every pair that met, keeping ratings finite when one side never loses.
    Rating = base + scale * log10(p / geometric mean of p).
    """
    _check(matches)
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    for a, b, score in matches:
        wins[a] = wins.get(a, 0.0) + score
        wins[b] = wins.get(b, 0.0) + 1 - score
        key = (min(a, b), max(a, b))
        games[key] = games.get(key, 0.0) + 1
    return bradley_terry_counts(wins, games, iterations=iterations, prior=prior, scale=scale, base=base)


def bradley_terry_counts(wins: Mapping[str, float], games: Mapping[tuple[str, str], float], *,
                         iterations: int = 500, prior: float = 0.0, scale: float = 400.0,
                         base: float = 1000.0) -> dict[str, float]:
    """`bradley_terry` from totals: each player's wins (ties as half) and games per pair (a < b)."""
    if not games:
        raise ValueError("no matches to rate")
    players = sorted({p for pair in games for p in pair})
    wins = {p: float(wins.get(p, 0.0)) for p in players}
    games = dict(games)
    if prior:
        for a, b in games:
            wins[a] += prior / 2
            wins[b] += prior / 2
            games[(a, b)] += prior
    strength = dict.fromkeys(players, 1.0)
    for _ in range(iterations):
        new = {}
        for p in players:
            denom = sum(n / (strength[a] + strength[b]) for (a, b), n in games.items() if p in (a, b))
            new[p] = max(wins[p], 1e-12) / denom
        mean_log = sum(math.log(v) for v in new.values()) / len(new)
        strength = {p: v / math.exp(mean_log) for p, v in new.items()}
    return {p: base + scale * math.log10(v) for p, v in strength.items()}


def elo(matches: Sequence[Match], *, k: float = 32.0, initial: float = 1000.0) -> dict[str, float]:
    """Sequential Elo ratings (order-dependent; Bradley-Terry is the order-free summary)."""
    _check(matches)
    ratings: dict[str, float] = {}
    for a, b, score in matches:
        elo_update(ratings, a, b, score, k=k, initial=initial)
    return ratings


def elo_update(ratings: dict[str, float], a: str, b: str, score: float, *, k: float = 32.0,
               initial: float = 1000.0) -> None:
    """Apply one match to `ratings` in place (a running Elo, one game at a time)."""
    ra, rb = ratings.setdefault(a, initial), ratings.setdefault(b, initial)
    expected = 1 / (1 + 10 ** ((rb - ra) / 400))
    ratings[a] = ra + k * (score - expected)
    ratings[b] = rb - k * (score - expected)
