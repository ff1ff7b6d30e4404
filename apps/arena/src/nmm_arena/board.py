"""The leaderboard and the exports, computed from stored votes with `nmm_core.ratings`.

A vote's score for the model shown on the left: 1 (left better), 0 (right better), 0.5 (tie or
both bad: neither was preferred). Votes where both sides are the same model carry no comparison.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nmm_core.ratings import bootstrap_interval, bradley_terry, elo, win_rate

SCORES = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
# Virtual ties per model pair that met: keeps Bradley-Terry finite when one side never loses.
BT_PRIOR = 1.0
EXPORT_FIELDS = ("id", "created_at", "voter", "pair_id", "pair_key", "source", "task", "example_id",
                 "left_model", "right_model", "choice", "winner", "comment")


@dataclass(frozen=True)
class PairRow:
    """Head-to-head numbers of model `a` against model `b` (a < b by name)."""

    a: str
    b: str
    votes: int
    a_wins: int
    b_wins: int
    ties: int
    both_bad: int
    win_rate: float  # of a, ties counting half
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ModelRow:
    model: str
    bradley_terry: float
    elo: float
    votes: int


@dataclass(frozen=True)
class Board:
    total_votes: int
    pairs: list[PairRow]
    models: list[ModelRow]  # best Bradley-Terry rating first


def matches(votes: Sequence[Mapping[str, object]]) -> list[tuple[str, str, float]]:
    """(left model, right model, score of left) per vote that compares two different models."""
    return [(str(v["left_model"]), str(v["right_model"]), SCORES[str(v["choice"])])
            for v in votes if v["left_model"] != v["right_model"]]


def leaderboard(votes: Sequence[Mapping[str, object]], *, level: float = 0.95) -> Board:
    """Win rates with bootstrap intervals per model pair, and ratings per model."""
    games = matches(votes)
    heads: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for v in votes:
        left, right, choice = str(v["left_model"]), str(v["right_model"]), str(v["choice"])
        if left == right:
            continue
        a, b = sorted((left, right))
        score = SCORES[choice]
        heads.setdefault((a, b), []).append((score if a == left else 1 - score, choice))
    rows = []
    for (a, b), results in sorted(heads.items()):
        outcomes = [s for s, _ in results]
        low, high = bootstrap_interval(outcomes, level=level)
        rows.append(PairRow(a, b, len(outcomes), sum(s == 1 for s in outcomes), sum(s == 0 for s in outcomes),
                            sum(c == "tie" for _, c in results), sum(c == "both_bad" for _, c in results),
                            win_rate(outcomes), low, high))
    models: list[ModelRow] = []
    if games:
        bt, el = bradley_terry(games, prior=BT_PRIOR), elo(games)
        played = {m: sum(m in (g[0], g[1]) for g in games) for m in bt}
        models = sorted((ModelRow(m, bt[m], el[m], played[m]) for m in bt), key=lambda r: (-r.bradley_terry, r.model))
    return Board(len(votes), rows, models)


def export_rows(votes: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """Every vote with the winning model named ('' for a tie or both bad)."""
    out = []
    for v in votes:
        winner = {"left": v["left_model"], "right": v["right_model"]}.get(str(v["choice"]), "")
        out.append({k: (winner if k == "winner" else v[k]) for k in EXPORT_FIELDS})
    return out


def _cell(value: object) -> object:
    # A spreadsheet runs a cell starting with = + - @ as a formula; comments are typed by anyone.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_csv(votes: Sequence[Mapping[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in export_rows(votes):
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def export_json(votes: Sequence[Mapping[str, object]]) -> str:
    return json.dumps(export_rows(votes), ensure_ascii=False, indent=1) + "\n"
