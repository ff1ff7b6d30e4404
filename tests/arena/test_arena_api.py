"""The arena over HTTP (in-process TestClient): voting, refusals, escaping, images, restart, exports."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from nmm_arena.catalog import load_catalog
from nmm_arena.db import Database
from nmm_arena.keys import ServerKeys


def _pair_key(html: str) -> str:
    match = re.search(r'name="pair" value="([0-9a-f]{16})"', html)
    assert match, html
    return match.group(1)


def _answers(html: str) -> tuple[str, str]:
    found = [re.search(rf'id="answer-{side}"><h3>Answer [AB]</h3><div class="text">(.*?)</div>', html, re.S)
             for side in ("left", "right")]
    assert all(found), html
    return found[0].group(1), found[1].group(1)


def _voter_id(db_path, cookie: str) -> str:
    keys = ServerKeys(Database(db_path).secret())
    return keys.voter_id(keys.session_from_cookie(cookie))


def test_vote_is_recorded_with_the_models_as_shown(make_client, pair_file, tmp_path, admin):
    client = make_client(pair_file)
    page = client.get("/")
    assert page.status_code == 200
    assert "nmm_arena_session" in page.cookies
    key = _pair_key(page.text)
    left_text, _ = _answers(page.text)
    vote = client.post("/vote", data={"pair": key, "choice": "left", "comment": "clearer"})
    assert vote.status_code == 303 and vote.headers["location"].startswith("/?at=")
    [row] = client.get("/export.json", headers=admin).json()
    entry = load_catalog(pair_file).get(key)
    # The answer shown on the left is the left model's answer in the record.
    by_model = {entry.pair.left.model: entry.pair.left.answer, entry.pair.right.model: entry.pair.right.answer}
    assert by_model[row["left_model"]] == left_text
    assert row["winner"] == row["left_model"] and row["choice"] == "left" and row["comment"] == "clearer"
    assert row["pair_id"] == entry.pair.pair_id
    assert row["voter"] == _voter_id(tmp_path / "arena.sqlite", page.cookies["nmm_arena_session"])
    # The next page shows another pair and the progress.
    nxt = client.get(vote.headers["location"])
    assert _pair_key(nxt.text) != key and "judged 1 of 6" in nxt.text


def test_model_names_are_not_shown(make_client, pair_file):
    html = make_client(pair_file).get("/").text
    assert "first answer" in html and "second answer" in html
    assert "fine-tuned" not in html and "base" not in html


def test_sides_are_randomised_per_voter(make_client, pair_file):
    key = next(iter(load_catalog(pair_file).entries))
    lefts = set()
    for _ in range(12):
        client = make_client(pair_file)  # each client is a new voter
        lefts.add(_answers(client.get(f"/pair/{key}").text)[0])
    assert len(lefts) == 2


def test_a_voter_cannot_vote_twice_on_a_pair(make_client, pair_file, admin):
    client = make_client(pair_file)
    key = _pair_key(client.get("/").text)
    assert client.post("/vote", data={"pair": key, "choice": "tie"}).status_code == 303
    again = client.post("/vote", data={"pair": key, "choice": "right"})
    assert again.status_code == 409
    assert "already judged this pair" in client.get(f"/pair/{key}").text
    assert [r["choice"] for r in client.get("/export.json", headers=admin).json()] == ["tie"]
    # Another voter may still judge it.
    other = make_client(pair_file)
    other.get("/")
    assert other.post("/vote", data={"pair": key, "choice": "right"}).status_code == 303


@pytest.mark.parametrize("form, status", [
    ({"pair": "0123456789abcdef", "choice": "left"}, 404),  # unknown pair
    ({"pair": "memes:ex0", "choice": "left"}, 404),  # a pair_id is not a key
    ({"choice": "left"}, 422),
    ({"pair": "KEY", "choice": "maybe"}, 422),
    ({"pair": "KEY", "choice": "left", "comment": "x" * 2001}, 422),
])
def test_bad_votes_are_rejected(make_client, pair_file, form, status, admin):
    client = make_client(pair_file)
    key = _pair_key(client.get("/").text)
    form = {k: (key if v == "KEY" else v) for k, v in form.items()}
    assert client.post("/vote", data=form).status_code == status
    assert client.get("/export.json", headers=admin).json() == []


def test_a_vote_without_a_session_is_rejected(make_client, pair_file):
    key = next(iter(load_catalog(pair_file).entries))
    response = make_client(pair_file).post("/vote", data={"pair": key, "choice": "left"})
    assert response.status_code == 400
    assert "session" in response.json()["detail"]


def test_unknown_pair_page_is_404(make_client, pair_file):
    assert make_client(pair_file).get("/pair/ffffffffffffffff").status_code == 404


def test_script_in_an_answer_is_shown_as_text(make_client, tmp_path, pairs_writer, admin):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    pairs = pairs_writer(tmp_path / "evil", 1, answers={0: (evil, "plain & <b>bold</b>")})
    client = make_client(pairs)
    html = client.get("/").text
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror" in html
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "plain &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "script-src" not in client.get("/").headers["content-security-policy"]  # default-src 'none' covers it
    # The comment field is escaped on export pages too.
    key = _pair_key(html)
    client.post("/vote", data={"pair": key, "choice": "left", "comment": "<script>alert(2)</script>"})
    board = client.get("/leaderboard", headers=admin).text
    assert "<script>" not in board


def test_images_are_served_from_the_pair_folder_only(make_client, tmp_path, pairs_writer):
    run = tmp_path / "run"
    pairs = pairs_writer(run, 4)
    (tmp_path / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    (run / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    (run / "notes.txt").write_text("not an image")
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    rows[1]["image"] = "../secret.png"
    rows[2]["image"] = "images/link.png"
    rows[3]["image"] = str(tmp_path / "secret.png")  # absolute
    rows.append({**rows[0], "pair_id": "memes:ex9", "image": "notes.txt"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    client = make_client(pairs)
    keys = list(load_catalog(pairs).entries)
    good = client.get(f"/images/{keys[0]}")
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    assert good.content == (run / "images" / "ex0.png").read_bytes()
    for key in keys[1:]:
        assert client.get(f"/images/{key}").status_code == 404
        assert f"/images/{key}" not in client.get(f"/pair/{key}").text
    for path in ("/images/../secret.png", "/images/..%2Fsecret.png", "/images/%2e%2e%2fsecret.png",
                 "/images/../../etc/passwd"):
        response = client.get(path)
        assert response.status_code == 404 and b"secret" not in response.content


def test_restart_keeps_votes(make_client, pair_file, tmp_path, admin):
    db = tmp_path / "votes.sqlite"
    client = make_client(pair_file, db)
    cookie = client.get("/").cookies["nmm_arena_session"]
    for _ in range(3):
        key = _pair_key(client.get("/").text)
        assert client.post("/vote", data={"pair": key, "choice": "right"}).status_code == 303
    before = client.get("/export.json", headers=admin).json()
    restarted = make_client(pair_file, db)  # a new app on the same file
    restarted.cookies.set("nmm_arena_session", cookie)
    assert restarted.get("/export.json", headers=admin).json() == before and len(before) == 3
    assert "judged 3 of 6" in restarted.get("/").text
    assert restarted.post("/vote", data={"pair": before[0]["pair_key"], "choice": "left"}).status_code == 409


def test_exports_hold_every_vote(make_client, pair_file, admin):
    client = make_client(pair_file)
    client.get("/")
    choices = ["left", "right", "tie", "both_bad", "left", "right"]
    for choice, comment in zip(choices, ["=HYPERLINK(1)", "ok", "", "", "", ""], strict=True):
        key = _pair_key(client.get("/").text)
        assert client.post("/vote", data={"pair": key, "choice": choice, "comment": comment}).status_code == 303
    assert "judged all 6 pairs" in client.get("/").text
    rows = client.get("/export.json", headers=admin).json()
    response = client.get("/export.csv", headers=admin)
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["choice"] for r in rows] == [r["choice"] for r in table] == choices
    assert len({r["pair_key"] for r in rows}) == 6
    for r in rows:
        expected = {"left": r["left_model"], "right": r["right_model"]}.get(r["choice"], "")
        assert r["winner"] == expected
        assert {r["left_model"], r["right_model"]} == {"base", "fine-tuned"}
    assert rows[0]["comment"] == "=HYPERLINK(1)"  # JSON keeps the text
    assert table[0]["comment"] == "'=HYPERLINK(1)"  # a spreadsheet must not run it
    assert table[1]["comment"] == "ok" and table[0]["pair_id"] == rows[0]["pair_id"]


def test_security_headers(make_client, pair_file):
    response = make_client(pair_file).get("/")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "HttpOnly" in response.headers["set-cookie"] and "samesite=lax" in response.headers["set-cookie"].lower()
