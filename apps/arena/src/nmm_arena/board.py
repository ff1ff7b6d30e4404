"""The leaderboard from running counts, cached; the exports, streamed from the database.

A vote's score for the model shown on the left: 1 (left better), 0 (right better), 0.5 (tie or
both bad: neither was preferred). Votes where both sides are the same model carry no comparison.
The win-rate interval is the seeded percentile bootstrap drawn from the outcome counts
(`nmm_core.ratings.bootstrap_interval_counts`): its cost depends on the number of model pairs,
not of votes.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

from nmm_arena.tally import SCORES, Snapshot, Tally
from nmm_core.ratings import bootstrap_interval_counts, bradley_terry_counts

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


def board_from(snapshot: Snapshot, *, level: float = 0.95) -> Board:
    """Win rates with bootstrap intervals per model pair, and ratings per model."""
    rows = []
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    played: dict[str, int] = {}
    for (a, b), h in sorted(snapshot.heads.items()):
        half = h.ties + h.both_bad
        low, high = bootstrap_interval_counts(h.a_wins, half, h.b_wins, level=level)
        rows.append(PairRow(a, b, h.votes, h.a_wins, h.b_wins, h.ties, h.both_bad,
                            (h.a_wins + 0.5 * half) / h.votes, low, high))
        wins[a] = wins.get(a, 0.0) + h.a_wins + 0.5 * half
        wins[b] = wins.get(b, 0.0) + h.b_wins + 0.5 * half
        games[(a, b)] = h.votes
        played[a], played[b] = played.get(a, 0) + h.votes, played.get(b, 0) + h.votes
    models: list[ModelRow] = []
    if games:
        bt = bradley_terry_counts(wins, games, prior=BT_PRIOR)
        models = sorted((ModelRow(m, bt[m], snapshot.elo[m], played[m]) for m in bt),
                        key=lambda r: (-r.bradley_terry, r.model))
    return Board(snapshot.total_votes, rows, models)


def leaderboard(votes: Iterable[Mapping[str, object]], *, level: float = 0.95) -> Board:
    """The board of a list of stored votes (dicts with left_model, right_model, choice)."""
    return board_from(Tally().add_rows(votes).snapshot(), level=level)


def matches(votes: Sequence[Mapping[str, object]]) -> list[tuple[str, str, float]]:
    """(left model, right model, score of left) per vote that compares two different models."""
    return [(str(v["left_model"]), str(v["right_model"]), SCORES[str(v["choice"])])
            for v in votes if v["left_model"] != v["right_model"]]


class BoardCache:
    """The board of a running tally, recomputed only when `every_votes` new votes have come in, or
    some have and the board is `every_seconds` old; requests in between get the cached JSON."""

    def __init__(self, tally: Tally, *, every_votes: int, every_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tally, self.every_votes, self.every_seconds = tally, every_votes, every_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[Board, bytes] | None = None  # replaced as one object, read without the lock
        self._at_votes = -1
        self._at_time = 0.0
        self.refreshes = 0

    def _stale(self) -> bool:
        new = self.tally.total_votes - self._at_votes
        return self._cached is None or new >= self.every_votes or (
            new > 0 and self._clock() - self._at_time >= self.every_seconds)

    def get(self) -> tuple[Board, bytes]:
        """The current board and its JSON; one request recomputes, concurrent ones get the last."""
        if self._stale() and self._lock.acquire(blocking=self._cached is None):
            try:
                if self._stale():
                    snapshot = self.tally.snapshot()
                    board = board_from(snapshot)
                    self._at_votes, self._at_time = snapshot.total_votes, self._clock()
                    self._cached = board, json.dumps(asdict(board)).encode()
                    self.refreshes += 1
            finally:
                self._lock.release()
        assert self._cached is not None
        return self._cached


def export_row(vote: Mapping[str, object]) -> dict[str, object]:
    """A vote with the winning model named ('' for a tie or both bad)."""
    winner = {"left": vote["left_model"], "right": vote["right_model"]}.get(str(vote["choice"]), "")
    return {k: (winner if k == "winner" else vote[k]) for k in EXPORT_FIELDS}


def _cell(value: object) -> object:
    # A spreadsheet runs a cell starting with = + - @ as a formula; comments are typed by anyone.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_chunks(votes: Iterable[Mapping[str, object]], batch: int = 500) -> Iterator[str]:
    """The CSV export, a few hundred rows per chunk."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for n, vote in enumerate(votes, start=1):
        writer.writerow({k: _cell(v) for k, v in export_row(vote).items()})
        if n % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(votes: Iterable[Mapping[str, object]], batch: int = 500) -> Iterator[str]:
    """The JSON export (a list of vote objects), a few hundred rows per chunk."""
    parts = ["["]
    for n, vote in enumerate(votes):
        parts.append(("," if n else "") + "\n" + json.dumps(export_row(vote), ensure_ascii=False))
        if len(parts) >= batch:
            yield "".join(parts)
            parts = []
    parts.append("\n]\n")
    yield "".join(parts)
