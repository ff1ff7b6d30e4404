"""Pair files are checked line by line: each bad line named, skipped and counted (or stops the start),
and whatever passes can be shown and voted on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nmm_arena.catalog import load_catalog
from nmm_core.errors import DataError

DEEP = 100_000


def _good(pair_id: str = "memes:bad") -> dict:
    return {"pair_id": pair_id, "example_id": "bad", "image": None, "prompt": "q?", "references": ["r"],
            "left": {"model": "base", "answer": "a"}, "right": {"model": "fine-tuned", "answer": "b"},
            "task": "memes"}


def _with(**changes: object) -> bytes:
    row = _good()
    for field, value in changes.items():
        if "." in field:
            side, key = field.split(".")
            row[side] = {**row[side], key: value}
        else:
            row[field] = value
    return json.dumps(row).encode()


BAD_LINES = {
    "null task": (_with(task=None), "task", "valid string"),
    "null pair id": (_with(pair_id=None), "pair_id", "valid string"),
    "empty pair id": (_with(pair_id=""), "pair_id", "at least 1 character"),
    "null model": (_with(**{"left.model": None}), "left.model", "valid string"),
    "NaN example id": (_with(example_id="X").replace(b'"X"', b"NaN"), "example_id", "valid string"),
    "number as image": (_with(image=5), "image", "valid string"),
    "null references": (_with(references=None), "references", "valid list"),
    "number in references": (_with(references=["a", 3]), "references.1", "valid string"),
    "missing right": (json.dumps({k: v for k, v in _good().items() if k != "right"}).encode(), "right",
                      "Field required"),
    "same model twice": (_with(**{"right.model": "base"}), "right.model", "the same model as left"),
    "lone surrogate": (_with(prompt="x").replace(b'"x"', b'"\\ud800"'), "prompt", "lone surrogate"),
    "invalid UTF-8": (_with(prompt="x").replace(b'"x"', b'"\xff\xfe"'), "(line)", "not UTF-8"),
    "deeply nested line": (b"[" * DEEP + b"]" * DEEP, "(line)", "nested too deeply"),
    "deeply nested field": (_with(prompt="x").replace(b'"x"', b"[" * DEEP + b"]" * DEEP), "(line)",
                            "nested too deeply"),
    "not an object": (b"[1, 2]", "(line)", "expected a JSON object"),
    "not JSON": (b"{'pair_id': 1}", "(line)", "not JSON"),
    "duplicate pair id": (json.dumps(_good("memes:ex0")).encode(), "pair_id", "already on line 1"),
}


@pytest.mark.parametrize("name", BAD_LINES)
def test_each_bad_line_is_named_skipped_and_counted(name, tmp_path, pairs_writer, make_client, admin):
    raw, field, why = BAD_LINES[name]
    pairs = pairs_writer(tmp_path / "run", 3)
    pairs.write_bytes(pairs.read_bytes() + raw + b"\n")
    said: list[str] = []
    catalog = load_catalog(pairs, say=said.append)
    assert len(catalog) == 3 and len(catalog.problems) == 1
    [line] = said
    assert line.startswith(f"{pairs}:4: {field}: ") and why in line, line
    with pytest.raises(DataError, match=f"{pairs}:4: "):
        load_catalog(pairs, on_bad="stop")
    # What passed serves and takes a vote on every pair.
    client = make_client(pairs)
    for key in catalog.entries:
        assert client.get(f"/pair/{key}").status_code == 200
        assert client.post("/vote", data={"pair": key, "choice": "left"}).status_code == 303
    assert len(client.get("/export.json", headers=admin).json()) == 3


def test_every_kind_of_text_that_passes_can_be_voted_on(tmp_path, make_client, admin):
    # Odd but valid values: unicode, control characters, NUL, an empty answer, extra fields.
    rows = [{**_good(f"t:{i}"), "prompt": text, "left": {"model": f"m{i}\u00e9", "answer": text},
             "right": {"model": "base\x00x", "answer": ""}, "references": [], "extra": {"deep": [1]}}
            for i, text in enumerate(["\u202e\u0000\u0007 rtl", "\U0001F600 emoji", "<b>" * 1000, "\r\n\t"])]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    catalog = load_catalog(pairs)
    assert len(catalog) == 4 and not catalog.problems
    client = make_client(pairs, board_every_votes=1)
    for key in catalog.entries:
        assert client.get(f"/pair/{key}").status_code == 200
        assert client.post("/vote", data={"pair": key, "choice": "right"}).status_code == 303
    assert len(client.get("/export.csv", headers=admin).text.splitlines()) >= 5
    assert client.get("/leaderboard.json", headers=admin).json()["total_votes"] == 4


def test_on_bad_stop_is_one_line_and_skip_starts(tmp_path, pairs_writer):
    pairs = pairs_writer(tmp_path / "run", 2)
    pairs.write_bytes(pairs.read_bytes() + _with(image=5) + b"\n" + b"\xff\n")
    proc = subprocess.run([sys.executable, "-m", "nmm_arena", "--pairs", str(pairs), "--db",
                           str(tmp_path / "a.sqlite"), "--on-bad", "stop"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {pairs}:3: image: Input should be a valid string (--on-bad stop; 2 bad line(s) in this file)"]


def test_unfinished_and_failed_runs_are_skipped_with_a_line(tmp_path, pairs_writer):
    def run(name: str, state: str | None) -> None:
        pairs_writer(tmp_path / name, 2)
        if state:
            (tmp_path / name / "status.json").write_text(json.dumps({"state": state}))

    run("2026-01-01-compare-a", "complete")
    run("2026-01-02-compare-b.incomplete", "running")
    run("2026-01-03-compare-c", "failed")
    run("2026-01-04-compare-d.incomplete", "failed")
    run("handmade", None)  # not a run folder: served
    said: list[str] = []
    catalog = load_catalog(tmp_path, say=said.append)
    assert sorted({e.source for e in catalog.entries.values()}) == ["2026-01-01-compare-a/pairs.jsonl",
                                                                     "handmade/pairs.jsonl"]
    assert sorted(said) == [
        "2026-01-02-compare-b.incomplete/pairs.jsonl: skipped, unfinished run (.incomplete)",
        "2026-01-03-compare-c/pairs.jsonl: skipped, run state 'failed' in status.json",
        "2026-01-04-compare-d.incomplete/pairs.jsonl: skipped, unfinished run (.incomplete)",
    ]
    only_unfinished = tmp_path / "only"
    pairs_writer(only_unfinished / "x.incomplete", 1)
    with pytest.raises(DataError, match="outside unfinished or failed runs"):
        load_catalog(only_unfinished)
