"""The limits and visibility a study chooses (the `--study-*` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StudySettings:
    """Who may vote how often, and what the public sees."""

    votes_per_minute: int = field(default=10, metadata={
        "aliases": ["--votes-per-minute"],
        "help": "votes one session may cast per minute; more are refused with 429 (0: no limit)"})
    sessions_per_address: int = field(default=10, metadata={
        "aliases": ["--sessions-per-address"],
        "help": "new voter sessions one client address may start per hour, wrong study codes included "
                "(0: no limit; raise it when many voters share one address, e.g. a lab behind NAT)"})
    code: str | None = field(default=None, metadata={
        "help": "a code voters must enter before their first vote (none: anyone with the link may vote)"})
    public_leaderboard: bool = field(default=False, metadata={
        "aliases": ["--public-leaderboard"],
        "help": "show the live leaderboard to everyone (default: admin only while the study runs); "
                "per-vote rows and exports are always admin only"})
    board_every_votes: int = field(default=500, metadata={
        "help": "recompute the leaderboard's intervals and ratings after this many new votes ..."})
    board_every_seconds: float = field(default=30.0, metadata={
        "help": "... or when it is this old and any vote came in"})

    def __post_init__(self) -> None:
        for name in ("votes_per_minute", "sessions_per_address", "board_every_votes"):
            if getattr(self, name) < 0:
                raise ValueError(f"study.{name} must be >= 0, got {getattr(self, name)}")
        if self.board_every_seconds < 0:
            raise ValueError(f"study.board_every_seconds must be >= 0, got {self.board_every_seconds}")
        if self.code is not None and not self.code.strip():
            raise ValueError("study.code must not be blank (leave it unset for no code)")
