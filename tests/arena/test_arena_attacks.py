"""The attacks of issue 18, each against the arena: every test here fails on the arena before it.

Side prediction from a public formula, invented and forged cookies, stuffing from one address,
exports and per-vote rows without the admin token.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3

import pytest

from nmm_arena.admin_token import resolve_admin_token
from nmm_arena.catalog import load_catalog
from nmm_arena.db import Database
from nmm_arena.keys import ServerKeys, token_sha256

COOKIE = "nmm_arena_session"


def _key(html: str) -> str:
    match = re.search(r'name="pair" value="([0-9a-f]{16})"', html)
    assert match, html
    return match.group(1)


def _left_answer(html: str) -> str:
    match = re.search(r'id="answer-left"><h3>Answer A</h3><div class="text">(.*?)</div>', html, re.S)
    assert match, html
    return match.group(1)


def _old_side_bit(token: str, key: str) -> int:
    # The arena before issue 18: sha256("side", token, key), no server secret.
    return hashlib.sha256("\0".join(("side", token, key)).encode()).digest()[0] & 1


def test_side_prediction_attack_is_at_chance(make_client, tmp_path, pairs_writer):
    # The attacker knows everything but the server secret: the pair file itself (so the file's
    # order, which one vote per pair used to reveal) and their own cookie.
    pairs = pairs_writer(tmp_path / "run", 40, image=False)
    catalog = load_catalog(pairs)
    client = make_client(pairs)
    client.get("/")
    cookie = client.cookies[COOKIE]
    session = cookie.split(".")[0]
    for token in (cookie, session):
        correct = 0
        for key, entry in catalog.entries.items():
            swapped = _left_answer(client.get(f"/pair/{key}").text) != entry.pair.left.answer
            correct += _old_side_bit(token, key) == swapped
        # The old arena: 40 of 40. A coin: 6..34 fails with probability ~3e-6.
        assert 6 <= correct <= 34, correct


def test_sides_depend_on_the_server_secret():
    keys_a, keys_b = ServerKeys(b"a" * 32), ServerKeys(b"b" * 32)
    differ = sum(keys_a.swapped("same-session", f"{i:016x}") != keys_b.swapped("same-session", f"{i:016x}")
                 for i in range(200))
    assert 60 < differ < 140  # the same session and pair, another secret: an unrelated coin


def test_no_public_response_reveals_another_voters_votes(make_client, pair_file, admin):
    voter = make_client(pair_file, public_leaderboard=True, board_every_votes=1)
    for choice in ("left", "right", "tie"):
        key = _key(voter.get("/").text)
        assert voter.post("/vote", data={"pair": key, "choice": choice, "comment": "secret-comment"}).status_code == 303
    rows = voter.get("/export.json", headers=admin).json()
    assert len(rows) == 3
    other = make_client(pair_file, public_leaderboard=True)
    other.get("/")
    secret = Database(pair_file.parent.parent / "arena.sqlite").secret()
    public = [other.get(path) for path in ("/", "/leaderboard", "/leaderboard.json", "/healthz",
                                           f"/pair/{rows[0]['pair_key']}")]
    assert all(r.status_code == 200 for r in public)
    for response in public:
        for needle in ["secret-comment", secret.hex(), *(r["voter"] for r in rows), *(r["created_at"] for r in rows)]:
            assert needle not in response.text
    assert set(other.get("/leaderboard.json").json()) == {"total_votes", "pairs", "models"}
    for path in ("/export.json", "/export.csv", "/admin"):
        assert other.get(path).status_code == 401


def test_invented_and_forged_cookies_never_vote(make_client, tmp_path, pairs_writer, admin):
    pairs = pairs_writer(tmp_path / "run", 40, image=False)
    keys = list(load_catalog(pairs).entries)
    client = make_client(pairs)
    real = client.get("/").cookies[COOKIE]
    session, signature = real.split(".")
    other_secret = ServerKeys(b"x" * 32).session_cookie(session)
    flipped = f"{session}.{'0' if signature[0] != '0' else '1'}{signature[1:]}"
    forged = [f"attacker-{n:02d}-" + "a" * 20 for n in range(30)] + [flipped, other_secret, session, real + "x", ""]
    for cookie in forged:
        attacker = make_client(pairs)
        attacker.cookies.set(COOKIE, cookie)
        for key in keys:
            response = attacker.post("/vote", data={"pair": key, "choice": "left"})
            assert response.status_code == 400 and "session" in response.json()["detail"]
        # Opening the arena with such a cookie starts a new, signed session instead.
        issued = attacker.get("/").headers.get("set-cookie", "")
        assert issued.startswith(f"{COOKIE}=") and issued.split(";")[0].split("=", 1)[1] not in (cookie, real)
    assert client.get("/export.json", headers=admin).json() == []  # the old arena: 1,200 stuffed votes


def test_stuffing_from_one_address_stops_at_the_default_limits(make_client, tmp_path, pairs_writer, admin):
    from nmm_arena.study import StudySettings

    defaults = StudySettings()
    pairs = pairs_writer(tmp_path / "run", 40, image=False)
    keys = list(load_catalog(pairs).entries)
    client = make_client(pairs, votes_per_minute=defaults.votes_per_minute,
                         sessions_per_address=defaults.sessions_per_address)
    stored, refused_sessions, refused_votes = 0, 0, 0
    for _ in range(30):  # the attack: 30 sessions x 40 pairs, as fast as it goes
        client.cookies.clear()
        page = client.get("/")
        if page.status_code == 429:
            refused_sessions += 1
            continue
        for key in keys:
            status = client.post("/vote", data={"pair": key, "choice": "left"}).status_code
            stored += status == 303
            refused_votes += status == 429
    assert refused_sessions == 30 - defaults.sessions_per_address
    assert stored == defaults.sessions_per_address * defaults.votes_per_minute  # 100, not 1,200
    assert len(client.get("/export.json", headers=admin).json()) == stored
    assert refused_votes == defaults.sessions_per_address * (40 - defaults.votes_per_minute)


def test_rate_limit_window_slides():
    from nmm_arena.limits import RateLimit

    now = [0.0]
    limit = RateLimit(3, 60, clock=lambda: now[0])
    assert [limit.allow("s") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("t")  # per key
    now[0] = 59.9
    assert not limit.allow("s")
    now[0] = 60.1
    assert limit.allow("s") and len(limit) == 1  # "t" aged out and was swept
    now[0] = 500.0
    limit.allow("u")
    assert len(limit) == 1  # idle keys are swept: memory follows recent callers only
    assert all(RateLimit(0, 1).allow("x") for _ in range(1000))  # 0: no limit


def test_study_code_gates_new_sessions(make_client, pair_file, admin):
    client = make_client(pair_file, code="blue-heron", sessions_per_address=3)
    page = client.get("/")
    assert page.status_code == 200 and 'action="/join"' in page.text and COOKIE not in page.headers.get(
        "set-cookie", "")
    key = next(iter(load_catalog(pair_file).entries))
    assert client.post("/vote", data={"pair": key, "choice": "left"}).status_code == 400
    wrong = client.post("/join", data={"code": "blue-herring"})
    assert wrong.status_code == 403 and "not this study" in wrong.text and COOKIE not in client.cookies
    joined = client.post("/join", data={"code": "blue-heron"})
    assert joined.status_code == 303 and COOKIE in client.cookies
    key = _key(client.get("/").text)
    assert client.post("/vote", data={"pair": key, "choice": "left"}).status_code == 303
    # Wrong codes count against the address's sessions: 1 wrong + 1 right + 1 more, then refused.
    client.cookies.clear()
    assert client.post("/join", data={"code": "guess"}).status_code == 403
    assert client.post("/join", data={"code": "blue-heron"}).status_code == 429
    assert len(client.get("/export.json", headers=admin).json()) == 1


def test_exports_and_votes_need_the_admin_token(make_client, pair_file, admin):
    client = make_client(pair_file, board_every_votes=1)
    key = _key(client.get("/").text)
    client.post("/vote", data={"pair": key, "choice": "tie", "comment": "hidden"})
    for path in ("/export.json", "/export.csv"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic x"}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401 and "hidden" not in response.text
            assert response.headers["www-authenticate"] == "Bearer"
        assert "hidden" in client.get(path, headers=admin).text
    # The live leaderboard is the admin's while the study runs, unless the study makes it public.
    assert client.get("/leaderboard").status_code == 403 and client.get("/leaderboard.json").status_code == 403
    assert client.get("/leaderboard.json", headers=admin).json()["total_votes"] == 1
    public = make_client(pair_file, public_leaderboard=True)
    assert public.get("/leaderboard.json").status_code == 200 and public.get("/export.json").status_code == 401


def test_admin_logs_in_and_sees_every_vote(make_client, pair_file, admin, tmp_path):
    token = admin["Authorization"].split()[1]
    voter = make_client(pair_file)
    key = _key(voter.get("/").text)
    voter.post("/vote", data={"pair": key, "choice": "right", "comment": "B <i>reads</i> the chart"})
    client = make_client(pair_file)
    login = client.get("/admin")
    assert login.status_code == 401 and 'action="/admin/login"' in login.text and "reads" not in login.text
    assert client.post("/admin/login", data={"token": "not-the-token-0123456"}).status_code == 403
    done = client.post("/admin/login", data={"token": token})
    assert done.status_code == 303 and done.headers["location"] == "/admin"
    assert "samesite=strict" in done.headers["set-cookie"].lower() and "httponly" in done.headers["set-cookie"].lower()
    page = client.get("/admin")
    assert page.status_code == 200
    assert "B &lt;i&gt;reads&lt;/i&gt; the chart" in page.text and "1 votes on 6 pairs" in page.text
    assert client.get("/export.csv").status_code == 200  # the admin cookie opens the exports too
    # A new token (rotation) ends the old logins.
    rotated = make_client(pair_file, tmp_path / "arena.sqlite")
    rotated.cookies.set("nmm_arena_admin", client.cookies["nmm_arena_admin"])
    assert rotated.get("/admin").status_code == 200
    from fastapi.testclient import TestClient

    from nmm_arena.app import create_app
    from nmm_arena.study import StudySettings

    app = create_app(load_catalog(pair_file), Database(tmp_path / "arena.sqlite"), StudySettings(),
                     admin_sha256=token_sha256("a-rotated-token-0123456789"))
    after = TestClient(app, follow_redirects=False)
    after.cookies.set("nmm_arena_admin", client.cookies["nmm_arena_admin"])
    assert after.get("/admin").status_code == 401 and after.get("/export.json").status_code == 401
    assert client.post("/admin/logout").status_code == 303


def test_admin_token_made_once_kept_as_a_hash_rotated_on_request(tmp_path):
    path = tmp_path / "arena.sqlite"
    db = Database(path)
    db.migrate()
    first_hash, token = resolve_admin_token(db, None)
    assert token and first_hash == token_sha256(token)
    again_hash, again = resolve_admin_token(Database(path), None)  # a restart
    assert again is None and again_hash == first_hash
    rotated_hash, rotated = resolve_admin_token(Database(path), None, rotate=True)
    assert rotated and rotated != token and rotated_hash == token_sha256(rotated)
    assert resolve_admin_token(Database(path), None) == (rotated_hash, None)
    given_hash, shown = resolve_admin_token(Database(path), "a-given-token-0123456789")
    assert shown is None and given_hash == token_sha256("a-given-token-0123456789")
    assert resolve_admin_token(Database(path), None) == (rotated_hash, None)  # a given token is not stored
    raw = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                                if path.with_name(path.name + "-wal").exists() else b"")
    assert token.encode() not in raw and rotated.encode() not in raw
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM settings WHERE name = 'admin_token_sha256'").fetchone() == (
            rotated_hash,)
    from nmm_core.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 16"):
        resolve_admin_token(db, "short")
    with pytest.raises(ConfigError, match="rotate"):
        resolve_admin_token(db, "a-given-token-0123456789", rotate=True)
