"""`nmm-bench --size smoke arena` runs the arena on loopback and writes its figures with their provenance."""

from __future__ import annotations

import json

import pytest

from nmm_bench.cli import main


@pytest.mark.slow  # ~30 s: four server starts, loads, a kill -9 cycle
def test_arena_benchmark_writes_its_figures(tmp_path):
    assert main(["--size", "smoke", "arena", "--out", str(tmp_path)]) == 0
    [path] = tmp_path.glob("arena-smoke-*.json")
    data = json.loads(path.read_text())
    assert [row["label"] for row in data["rows"]] == ["votes/s, 40 pairs", "votes/s, 2000 pairs"]
    assert all(row["value"] > 0 and row["raw_seconds"] for row in data["rows"])
    board = data["checks"]["leaderboard"]
    assert board["stored_votes"] == 5000 and board["requests"] == 100 and board["server_peak_rss_mib"] > 0
    assert data["checks"]["kill -9"]["lost"] == 0 and data["checks"]["kill -9"]["acknowledged"] > 0
    provenance = data["provenance"]
    assert len(provenance["commit"]) == 40 and isinstance(provenance["dirty"], bool)
    assert provenance["date"] and provenance["machine"]["cores"] >= 1
    summary = data["summary"]
    assert summary["votes_lost"] == 0 and summary["votes_per_s_small"] == round(data["rows"][0]["value"], 1)
