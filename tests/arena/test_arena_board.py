"""Leaderboard numbers against nmm_core.ratings on the same votes; the database's schema handling."""

from __future__ import annotations

import sqlite3

import pytest

from nmm_arena.board import BT_PRIOR, leaderboard, matches
from nmm_arena.db import LATEST, Database, DuplicateVote, Vote
from nmm_core.errors import DataError
from nmm_core.ratings import bootstrap_interval, bradley_terry, elo, win_rate


def _vote(i: int, left: str, right: str, choice: str) -> dict[str, object]:
    return {"id": i, "left_model": left, "right_model": right, "choice": choice}


VOTES = [_vote(i, *v) for i, v in enumerate([
    ("base", "tuned", "right"), ("tuned", "base", "left"), ("base", "tuned", "tie"),
    ("tuned", "base", "both_bad"), ("base", "tuned", "left"), ("other", "tuned", "right"),
    ("base", "other", "left"), ("other", "base", "tie"), ("tuned", "tuned", "left"),
])]


def test_leaderboard_matches_core_ratings():
    board = leaderboard(VOTES)
    games = matches(VOTES)
    assert len(games) == 8  # the self-match carries no comparison
    assert board.total_votes == 9
    bt, el = bradley_terry(games, prior=BT_PRIOR), elo(games)
    assert {m.model: m.bradley_terry for m in board.models} == pytest.approx(bt)
    assert {m.model: m.elo for m in board.models} == pytest.approx(el)
    assert [m.model for m in board.models] == sorted(bt, key=lambda m: -bt[m])
    base_tuned = next(r for r in board.pairs if (r.a, r.b) == ("base", "tuned"))
    # base's outcomes against tuned, in vote order: lost, lost, tie, tie(both bad), won.
    outcomes = [0, 0, 0.5, 0.5, 1]
    assert base_tuned.win_rate == pytest.approx(win_rate(outcomes))
    assert (base_tuned.ci_low, base_tuned.ci_high) == pytest.approx(bootstrap_interval(outcomes))
    assert (base_tuned.votes, base_tuned.a_wins, base_tuned.b_wins, base_tuned.ties, base_tuned.both_bad) == (
        5, 1, 2, 1, 1)
    assert [(r.a, r.b, r.votes) for r in board.pairs] == [("base", "other", 2), ("base", "tuned", 5),
                                                          ("other", "tuned", 1)]


def test_leaderboard_pages_show_the_same_numbers(make_client, pair_file, admin):
    client = make_client(pair_file, board_every_votes=1)
    client.get("/")
    assert "No votes between two different models yet" in client.get("/leaderboard", headers=admin).text
    for choice in ["left", "right", "left", "tie"]:
        html = client.get("/").text
        key = html.split('name="pair" value="')[1][:16]
        client.post("/vote", data={"pair": key, "choice": choice})
    rows = client.get("/export.json", headers=admin).json()
    expected = leaderboard(rows)
    got = client.get("/leaderboard.json", headers=admin).json()
    assert got["total_votes"] == 4
    assert got["pairs"][0]["win_rate"] == pytest.approx(expected.pairs[0].win_rate)
    assert {m["model"]: m["bradley_terry"] for m in got["models"]} == pytest.approx(
        bradley_terry(matches(rows), prior=BT_PRIOR))
    html = client.get("/leaderboard", headers=admin).text
    assert "4 votes" in html and f"{expected.pairs[0].win_rate:.3f}" in html
    assert f"{expected.models[0].bradley_terry:.0f}" in html


def test_database_is_wal_and_versioned(tmp_path):
    db = Database(tmp_path / "a.sqlite")
    assert db.migrate() == LATEST
    assert db.migrate() == LATEST  # idempotent
    with sqlite3.connect(tmp_path / "a.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(v,) for v in range(1, LATEST + 1)]
    vote = Vote("v1", "k1", "p1", "pairs.jsonl", "memes", "ex1", "a", "b", "left")
    db.add_vote(vote)
    with pytest.raises(DuplicateVote):
        db.add_vote(vote)
    with pytest.raises(ValueError):
        db.add_vote(Vote("v2", "k1", "p1", "pairs.jsonl", "memes", "ex1", "a", "b", "maybe"))
    assert db.count() == 1 and db.voted_keys("v1") == {"k1"} and db.voted_keys("v2") == set()


def test_a_version_1_database_keeps_its_votes_and_gains_one_secret(tmp_path):
    from nmm_arena.db import MIGRATIONS

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # what the first nmm-arena made
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for statement in MIGRATIONS[0][1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, 'then')")
        conn.execute("INSERT INTO votes (created_at, voter, pair_key, pair_id, source, task, example_id, left_model, "
                     "right_model, choice) VALUES ('then', 'v', 'k', 'p', 's', 't', 'e', 'a', 'b', 'left')")
    db = Database(path)
    assert db.migrate() == LATEST
    secret = db.secret()
    assert len(secret) == 32 and db.count() == 1
    db.migrate()
    assert Database(path).secret() == secret  # made once, kept


def test_newer_schema_is_refused(tmp_path):
    db = Database(tmp_path / "a.sqlite")
    db.migrate()
    with sqlite3.connect(tmp_path / "a.sqlite") as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (LATEST + 1,))
    with pytest.raises(DataError, match="newer than this nmm-arena"):
        db.migrate()


def test_not_a_database_is_one_clear_error(tmp_path):
    path = tmp_path / "votes.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="votes.sqlite"):
        Database(path).migrate()


def test_board_cache_recomputes_only_after_n_votes_or_t_seconds():
    from nmm_arena.board import BoardCache
    from nmm_arena.tally import Tally

    now = [0.0]
    tally = Tally()
    cache = BoardCache(tally, every_votes=3, every_seconds=10, clock=lambda: now[0])
    assert cache.get()[0].total_votes == 0 and cache.refreshes == 1
    for _ in range(2):
        tally.add("base", "tuned", "right")
    assert cache.get()[0].total_votes == 0 and cache.refreshes == 1  # 2 new votes, 0 s: cached
    now[0] = 10.0
    assert cache.get()[0].total_votes == 2 and cache.refreshes == 2  # old enough, and votes came
    now[0] = 100.0
    assert cache.get()[0].total_votes == 2 and cache.refreshes == 2  # old, but nothing new
    for _ in range(3):
        tally.add("tuned", "base", "left")
    board, body = cache.get()
    assert board.total_votes == 5 and cache.refreshes == 3 and b'"total_votes": 5' in body


def test_keyed_order_is_a_permutation_found_in_o1():
    from nmm_arena.order import KeyedOrder

    for n in (1, 2, 3, 7, 40, 1000, 4097):
        order = KeyedOrder(n, b"session-key")
        items = [order[i] for i in range(n)]
        assert sorted(items) == list(range(n))
        assert all(order.position(item) == i for i, item in enumerate(items))
    a, b = KeyedOrder(1000, b"one"), KeyedOrder(1000, b"two")
    assert sum(a[i] == b[i] for i in range(1000)) < 20  # another session, another order
    with pytest.raises(IndexError):
        a[1000]


def test_a_voter_walks_every_pair_once_in_their_own_order(make_client, tmp_path, pairs_writer, admin):
    pairs = pairs_writer(tmp_path / "run", 12, image=False)
    orders = []
    for _ in range(2):
        client = make_client(pairs)
        location, seen = "/", []
        while "judged all 12" not in (page := client.get(location)).text:
            key = page.text.split('name="pair" value="')[1][:16]
            seen.append(key)
            location = client.post("/vote", data={"pair": key, "choice": "tie"}).headers["location"]
        assert len(seen) == len(set(seen)) == 12
        orders.append(seen)
    assert orders[0] != orders[1]
