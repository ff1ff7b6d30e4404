"""The console script: one-line errors, pair discovery in folders."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from nmm_arena.catalog import load_catalog
from nmm_core.errors import DataError


def _arena(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nmm_arena", *args], capture_output=True, text=True, timeout=60)


def test_missing_pairs_is_one_line(tmp_path):
    proc = _arena("--pairs", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "a.sqlite"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: --pairs {tmp_path / 'nope.jsonl'}: no such file or folder"]


def test_malformed_pair_file_names_the_line(tmp_path, pairs_writer):
    pairs = pairs_writer(tmp_path, 2)
    pairs.write_text(pairs.read_text() + '{"pair_id": "x"}\n')
    proc = _arena("--pairs", str(pairs), "--db", str(tmp_path / "a.sqlite"), "--on-bad", "stop")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: {pairs}:3: example_id: Field required")


def test_folder_collects_every_pair_file(tmp_path, pairs_writer):
    pairs_writer(tmp_path / "runA", 3, task="memes")
    pairs_writer(tmp_path / "runB", 2, task="memes")  # same pair_ids as runA: kept apart
    pairs_writer(tmp_path / "runC", 2, task="pathvqa", name="pairs-pathology.jsonl")
    (tmp_path / "runA" / "predictions.jsonl").write_text(json.dumps({"id": 1}) + "\n")  # not a pair file
    catalog = load_catalog(tmp_path)
    assert len(catalog) == 7
    assert sorted({e.source for e in catalog.entries.values()}) == [
        "runA/pairs.jsonl", "runB/pairs.jsonl", "runC/pairs-pathology.jsonl"]
    assert load_catalog(tmp_path).entries.keys() == catalog.entries.keys()  # stable across restarts
    with pytest.raises(DataError, match="no pairs"):
        load_catalog(tmp_path / "runA" / "images")


def test_serving_never_imports_torch(pair_file, tmp_path):
    probe = f"""
import sys
from fastapi.testclient import TestClient
from nmm_arena.app import create_app
from nmm_arena.catalog import load_catalog
from nmm_arena.db import Database
from nmm_arena.keys import token_sha256
client = TestClient(create_app(load_catalog({str(pair_file)!r}), Database({str(tmp_path / "a.sqlite")!r}),
                               admin_sha256=token_sha256("t" * 20)))
ADMIN = {{"Authorization": "Bearer " + "t" * 20}}
page = client.get("/")
key = page.text.split('name="pair" value="')[1][:16]
assert client.post("/vote", data={{"pair": key, "choice": "left"}}, follow_redirects=False).status_code == 303
assert client.get("/leaderboard", headers=ADMIN).status_code == 200
assert client.get("/export.csv", headers=ADMIN).status_code == 200
print(sorted(m for m in ("torch", "transformers", "peft", "datasets") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_reads_what_core_make_pairs_writes(tmp_path, make_client, admin):
    from PIL import Image

    from nmm_core.evaluate import EvalResult
    from nmm_core.pairs import make_pairs, write_pairs
    from nmm_core.records import Example

    png = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(png, format="PNG")
    examples = [Example(f"ex/{i}", png.getvalue(), f"q{i}?", (f"a{i}",)) for i in range(3)]
    results = [EvalResult(name, {}, 0.0, [{"id": ex.id, "prompt": ex.prompt, "prediction": f"{name} {ex.id}"}
                                         for ex in examples]) for name in ("base", "fine-tuned")]
    run = tmp_path / "run"
    write_pairs(make_pairs(examples, *results, folder=run, task="vqa"), run / "pairs.jsonl")
    client = make_client(run)
    html = client.get("/").text
    key = html.split('name="pair" value="')[1][:16]
    assert client.get(f"/images/{key}").content == png.getvalue()
    assert client.post("/vote", data={"pair": key, "choice": "right"}).status_code == 303
    [row] = client.get("/export.json", headers=admin).json()
    assert row["task"] == "vqa" and row["winner"] == row["right_model"] and row["source"] == "pairs.jsonl"


def test_admin_token_is_printed_once_kept_across_restarts_and_rotated(tmp_path, pairs_writer):
    import httpx

    from nmm_arena.loopback import running

    pairs, db, log = pairs_writer(tmp_path / "run", 2, image=False), tmp_path / "a.sqlite", tmp_path / "server.log"

    def start(*flags: str) -> tuple[list[str], int]:
        before = log.read_text() if log.exists() else ""
        with running(pairs, db, log, *flags, admin_token=None) as (url, _):
            status = httpx.get(f"{url}/export.csv", headers={"Authorization": f"Bearer {first}"}).status_code
        printed = [line.rsplit(" ", 1)[1] for line in log.read_text()[len(before):].splitlines()
                   if "admin token (shown once" in line]
        return printed, status

    first = "unknown-yet"
    [first], _ = start()
    assert start() == ([], 200)  # a restart keeps it and says nothing
    [rotated], status = start("--rotate-admin-token")
    assert rotated != first and status == 401  # the old token no longer opens the exports
    assert first.encode() not in db.read_bytes() and rotated.encode() not in db.read_bytes()
