"""Running leaderboard counts: per model pair the outcome counts, per model a running Elo.

Updated once per committed vote (O(1)), filled once from the database at start-up, so the
leaderboard never re-reads the votes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nmm_core.ratings import elo_update

SCORES = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}


@dataclass
class HeadToHead:
    """Outcomes between models a < b (by name)."""

    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0
    both_bad: int = 0

    @property
    def votes(self) -> int:
        return self.a_wins + self.b_wins + self.ties + self.both_bad


@dataclass
class Snapshot:
    """A consistent copy of the counts."""

    total_votes: int
    heads: dict[tuple[str, str], HeadToHead]
    elo: dict[str, float]


@dataclass
class Tally:
    """Counts of every vote so far; thread-safe."""

    total_votes: int = 0
    heads: dict[tuple[str, str], HeadToHead] = field(default_factory=dict)
    elo: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, left_model: str, right_model: str, choice: str) -> None:
        """Count one vote, as shown: the left model scored by `choice`."""
        score = SCORES[choice]
        with self._lock:
            self.total_votes += 1
            if left_model == right_model:
                return  # carries no comparison
            a, b = sorted((left_model, right_model))
            head = self.heads.setdefault((a, b), HeadToHead())
            if choice in ("tie", "both_bad"):
                head.ties += choice == "tie"
                head.both_bad += choice == "both_bad"
            elif (score == 1) == (a == left_model):
                head.a_wins += 1
            else:
                head.b_wins += 1
            elo_update(self.elo, left_model, right_model, score)

    def add_rows(self, rows: Iterable[Mapping[str, object]]) -> Tally:
        """Count stored votes (dicts with left_model, right_model, choice), in order."""
        for row in rows:
            self.add(str(row["left_model"]), str(row["right_model"]), str(row["choice"]))
        return self

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.total_votes, {k: HeadToHead(**vars(h)) for k, h in self.heads.items()},
                            dict(self.elo))
