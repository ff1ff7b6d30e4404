"""Automatic judging of a pair file: per-pair winner by a reference metric, then core's ratings
(win rate with a bootstrap interval, Bradley-Terry on the Elo scale)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core import metrics
from nmm_core.errors import ConfigError, DataError
from nmm_core.metric import Metric
from nmm_core.pairs import Pair
from nmm_core.ratings import bootstrap_interval, bradley_terry

TIE = "tie"


@dataclass(frozen=True)
class Verdict:
    """One pair's verdict: both answers' scores and the winning model's name (or "tie")."""

    pair_id: str
    left_model: str
    right_model: str
    left_score: float
    right_score: float
    winner: str


def winner(left: str, right: str, left_score: float, right_score: float, epsilon: float) -> str:
    """The model with the higher score, or "tie" when the scores are within `epsilon`."""
    if abs(left_score - right_score) <= epsilon:
        return TIE
    return left if left_score > right_score else right


def judge_pairs(pairs: Sequence[Pair], *, metric: str | Metric = "rougeL", epsilon: float = 0.01) -> list[Verdict]:
    """Score both answers of every pair against all its references; the better wins (a ROUGE key
    by name, or a `Metric` with a per-example score, whose `higher_is_better` says which is better)."""
    if not pairs:
        raise DataError("no pairs to judge")
    answers = [p.left.answer for p in pairs] + [p.right.answer for p in pairs]
    refs = [p.references for p in pairs] * 2
    sign = 1.0
    if isinstance(metric, Metric):
        if metric.per_example is None:
            raise ConfigError(f"metric {metric.name!r} has no per-example score to judge pairs by")
        scores = [float(metric.per_example(a, list(r))) for a, r in zip(answers, refs, strict=True)]
        sign = 1.0 if metric.higher_is_better else -1.0
    else:
        scores = metrics.rouge_per_example(answers, refs)[metric]
    n = len(pairs)
    return [Verdict(p.pair_id, p.left.model, p.right.model, scores[i], scores[n + i],
                    winner(p.left.model, p.right.model, sign * scores[i], sign * scores[n + i], epsilon))
            for i, p in enumerate(pairs)]


def outcomes(verdicts: Sequence[Verdict], model: str) -> list[float]:
    """`model`'s result per pair: 1 win, 0.5 tie, 0 loss."""
    out = []
    for v in verdicts:
        if model not in (v.left_model, v.right_model):
            raise DataError(f"pair {v.pair_id!r}: model {model!r} did not answer it")
        out.append(0.5 if v.winner == TIE else float(v.winner == model))
    return out


def win_tie_loss(verdicts: Sequence[Verdict], model: str) -> dict[str, int]:
    """Counts of `model`'s wins, ties and losses."""
    counts = Counter(outcomes(verdicts, model))
    return {"wins": counts[1.0], "ties": counts[0.5], "losses": counts[0.0]}


def matches(verdicts: Sequence[Verdict]) -> list[tuple[str, str, float]]:
    """Verdicts as rating matches: (left, right, 1 left wins | 0.5 tie | 0 right wins)."""
    return [(v.left_model, v.right_model, 0.5 if v.winner == TIE else float(v.winner == v.left_model))
            for v in verdicts]


def summarise(verdicts: Sequence[Verdict], *, model: str, opponent: str, samples: int = 2000,
              level: float = 0.95, seed: int = 0, prior: float = 1.0) -> dict:
    """Win/tie/loss of `model` against `opponent`, its win rate (ties half) with CI, BT ratings."""
    values = outcomes(verdicts, model)
    low, high = bootstrap_interval(values, resamples=samples, level=level, seed=seed)
    return {
        "model": model, "opponent": opponent, "pairs": len(values), **win_tie_loss(verdicts, model),
        "win_rate": sum(values) / len(values), "ci_low": low, "ci_high": high, "ci_level": level,
        "bootstrap_samples": samples, "bootstrap_seed": seed,
        "bradley_terry": bradley_terry(matches(verdicts), prior=prior), "bt_prior_ties": prior,
    }
