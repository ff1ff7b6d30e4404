"""Votes in SQLite (stdlib driver, WAL): schema created and migrated here, every vote committed.

`schema_version` holds one row per applied migration; `MIGRATIONS` is append-only and ordered.
`settings` holds the server secret (made at the first start) and the admin token's SHA-256.
A connection is opened per operation: SQLite connections are cheap, and the web server calls in
from a thread pool.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nmm_core.errors import DataError

CHOICES = ("left", "right", "tie", "both_bad")

# (version, statements). Never edit a shipped entry: add the next version instead.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        f"""CREATE TABLE votes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            voter TEXT NOT NULL,
            pair_key TEXT NOT NULL,
            pair_id TEXT NOT NULL,
            source TEXT NOT NULL,
            task TEXT NOT NULL,
            example_id TEXT NOT NULL,
            left_model TEXT NOT NULL,
            right_model TEXT NOT NULL,
            choice TEXT NOT NULL CHECK (choice IN {CHOICES!r}),
            comment TEXT NOT NULL DEFAULT '',
            UNIQUE (voter, pair_key)
        )""",
        "CREATE INDEX votes_by_models ON votes (left_model, right_model)",
    )),
    (2, (
        "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )),
)
SECRET = "secret"
ADMIN_SHA256 = "admin_token_sha256"
LATEST = MIGRATIONS[-1][0]


class DuplicateVote(Exception):
    """This voter already judged this pair."""


@dataclass(frozen=True)
class Vote:
    """One judgement, with the models as they were shown to the voter."""

    voter: str
    pair_key: str
    pair_id: str
    source: str
    task: str
    example_id: str
    left_model: str
    right_model: str
    choice: str
    comment: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Database:
    """The arena's SQLite file, with one long-lived connection per thread that uses it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        # SQLite's busy handler sleeps in growing steps (up to 100 ms); queueing this process's
        # writers on a lock instead keeps the latency tail short under load.
        self._write_lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        """An autocommit connection: each statement outside BEGIN is committed when it returns."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            # FULL: the WAL is fsynced at every commit, so a vote survives a power cut too.
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise DataError(f"database {self.path}: {exc}") from None
        return conn

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection. Kept open: closing the last connection to a WAL database
        checkpoints it, which per request costs more than the vote itself."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
            with self._opened_lock:
                self._opened.append(conn)
        yield conn

    def close(self) -> None:
        """Close every connection this object opened (the server's shutdown)."""
        with self._opened_lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()

    def migrate(self) -> int:
        """Create or upgrade the schema in WAL mode; returns the schema version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as conn:
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                conn.execute("BEGIN IMMEDIATE")  # two servers starting at once migrate one at a time
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                             "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
                current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
                if current > LATEST:
                    conn.execute("ROLLBACK")
                    raise DataError(f"database {self.path}: schema version {current} is newer than this "
                                    f"nmm-arena knows ({LATEST}); upgrade nmm-arena")
                for version, statements in MIGRATIONS:
                    if version > current:
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, _now()))
                # Made once, in the same transaction: two servers starting together share one secret.
                conn.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (SECRET, secrets.token_hex(32)))
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise DataError(f"database {self.path}: {exc}") from None
        if mode.lower() != "wal":
            raise DataError(f"database {self.path}: could not switch to WAL mode (got {mode})")
        return max(current, LATEST)

    def schema_version(self) -> int:
        with self.connect() as conn:
            return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]

    def setting(self, name: str) -> str | None:
        """A value of the settings table, or None."""
        with self.connect() as conn:
            row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
            return None if row is None else row[0]

    def set_setting(self, name: str, value: str) -> None:
        """Store (or replace) a setting, committed."""
        with self._write_lock, self.connect() as conn:
            conn.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                         (name, value))

    def secret(self) -> bytes:
        """The server secret (made by `migrate`)."""
        value = self.setting(SECRET)
        if value is None:
            raise DataError(f"database {self.path}: no server secret (migrate first)")
        return bytes.fromhex(value)

    def add_vote(self, vote: Vote, then: Callable[[Vote], None] | None = None) -> int:
        """Insert and commit one vote; its id. Raises DuplicateVote for a second vote on a pair.
        `then(vote)` runs after the commit, in commit order (the running leaderboard counts)."""
        if vote.choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {vote.choice!r}")
        with self._write_lock, self.connect() as conn:
            try:
                cursor = conn.execute(
                    "INSERT INTO votes (created_at, voter, pair_key, pair_id, source, task, example_id, "
                    "left_model, right_model, choice, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_now(), vote.voter, vote.pair_key, vote.pair_id, vote.source, vote.task,
                     vote.example_id, vote.left_model, vote.right_model, vote.choice, vote.comment),
                )
            except sqlite3.IntegrityError as exc:
                if exc.sqlite_errorname != "SQLITE_CONSTRAINT_UNIQUE":
                    raise  # a NOT NULL or CHECK failure is a bug, not "already judged"
                raise DuplicateVote(vote.pair_key) from None
            if then is not None:
                then(vote)
            return int(cursor.lastrowid)

    def voted_keys(self, voter: str) -> set[str]:
        """The pairs this voter has judged."""
        with self.connect() as conn:
            return {r[0] for r in conn.execute("SELECT pair_key FROM votes WHERE voter = ?", (voter,))}

    def votes_after(self, after_id: int, limit: int) -> list[dict[str, object]]:
        """Up to `limit` votes with id > `after_id`, oldest first."""
        with self.connect() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM votes WHERE id > ? ORDER BY id LIMIT ?",
                                                  (after_id, limit))]

    def iter_votes(self, batch: int = 1000) -> Iterator[dict[str, object]]:
        """Every vote, oldest first, read `batch` rows at a time (bounded memory at any size)."""
        last = 0
        while rows := self.votes_after(last, batch):
            yield from rows
            last = int(rows[-1]["id"])  # type: ignore[call-overload]

    def recent_votes(self, limit: int) -> list[dict[str, object]]:
        """The newest `limit` votes, newest first."""
        with self.connect() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM votes ORDER BY id DESC LIMIT ?", (limit,))]

    def count(self) -> int:
        with self.connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
