"""Benchmark `arena`: nmm-arena on loopback, the figures of issue 18 side by side in one run.

- votes/s with 40 pairs and with 100k pairs (full size): concurrent voters each open the page the
  server sends them to and vote, so the next-pair choice is in every vote; rounds alternate the
  two files. Target: 100k pairs within 1.5x of 40 pairs (ratio >= 0.67).
- the leaderboard at 100k votes: 50 concurrent readers of /leaderboard.json, then the same while
  voters keep voting (the board recomputes every 50 votes or second, more often than the
  defaults); p50/p99 per request and the server's peak RSS (VmHWM) over both. Target (readers
  alone, as the issue states it): p99 < 200 ms, peak RSS < 300 MB.
- kill -9: voters vote while the server is SIGKILLed, several cycles; acknowledged votes lost.

Limits are off (`loopback.UNLIMITED`): this measures the server, not the throttle. CPU only;
everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from nmm_bench.harness import Result, Row

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"small_pairs": 40, "large_pairs": 2_000, "clients": 10, "votes_per_client": 8, "rounds": 1,
              "board_votes": 5_000, "readers": 10, "reads_per_reader": 10, "board_voters": 2,
              "kill_cycles": 1, "kill_clients": 4, "kill_seconds": 1.0},
    "full": {"small_pairs": 40, "large_pairs": 100_000, "clients": 20, "votes_per_client": 25, "rounds": 4,
             "board_votes": 100_000, "readers": 50, "reads_per_reader": 20, "board_voters": 10,
             "kill_cycles": 5, "kill_clients": 10, "kill_seconds": 2.0},
}
TOKEN = "benchmark-admin-token-0123456789"
BOARD_FLAGS = ("--study-board-every-votes", "50", "--study-board-every-seconds", "1")


def write_pair_file(path: Path, n: int) -> Path:
    """`n` text-only pairs of two models, the way `nmm_core.pairs.write_pairs` lays them out."""
    rng = random.Random(n)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            sides = [{"model": "base", "answer": f"the base model's answer to question {i}"},
                     {"model": "fine-tuned", "answer": f"the fine-tuned answer to question {i}"}]
            rng.shuffle(sides)
            out.write(json.dumps({"pair_id": f"bench:{i}", "example_id": str(i), "image": None,
                                  "prompt": f"What does chart {i} show?", "references": [f"ref {i}"],
                                  "left": sides[0], "right": sides[1], "task": "bench"}) + "\n")
    return path


def fill_votes(db_path: Path, pairs: Path, n: int) -> None:
    """`n` stored votes over the pairs of `pairs` (as many voters as needed), in one transaction."""
    from nmm_arena.catalog import load_catalog
    from nmm_arena.db import Database

    catalog = load_catalog(pairs)
    Database(db_path).migrate()
    rng = random.Random(0)
    choices = ("left", "right", "tie", "both_bad", "right")
    rows = []
    for i in range(n):
        entry = catalog.at(i % len(catalog))
        left, right = entry.pair.left.model, entry.pair.right.model
        if rng.random() < 0.5:
            left, right = right, left
        rows.append(("2026-01-01T00:00:00.000+00:00", f"{i // len(catalog):016x}", entry.key, entry.pair.pair_id,
                     entry.source, entry.pair.task, entry.pair.example_id, left, right, rng.choice(choices), ""))
    with sqlite3.connect(db_path) as conn:
        conn.executemany("INSERT INTO votes (created_at, voter, pair_key, pair_id, source, task, example_id, "
                         "left_model, right_model, choice, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _throughput(tmp: Path, pairs: Path, cfg: dict[str, Any], tag: str) -> dict[str, Any]:
    from nmm_arena.loopback import peak_rss_mib, running, vote_load

    db = tmp / f"{tag}.sqlite"
    with running(pairs, db, tmp / "server.log", admin_token=TOKEN) as (url, pid):
        load = asyncio.run(vote_load(url, cfg["clients"], cfg["votes_per_client"]))
        rss = peak_rss_mib(pid)
    db.unlink()
    if load.errors:
        raise RuntimeError(f"arena benchmark ({tag}): {load.errors[:3]}")
    return {**load.summary(), "server_peak_rss_mib": round(rss, 1)}


def _leaderboard(tmp: Path, pairs: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    from nmm_arena.loopback import board_load, peak_rss_mib, running, vote_load

    db = tmp / "board.sqlite"
    fill_votes(db, pairs, cfg["board_votes"])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with running(pairs, db, tmp / "server.log", *BOARD_FLAGS, admin_token=TOKEN) as (url, pid):
        rss_at_start = peak_rss_mib(pid)
        alone = asyncio.run(board_load(url, cfg["readers"], cfg["reads_per_reader"], headers))

        async def readers_while_voting() -> Any:
            voting = asyncio.ensure_future(vote_load(url, cfg["board_voters"], cfg["small_pairs"], limit_s=3600))
            reads = await board_load(url, cfg["readers"], cfg["reads_per_reader"], headers)
            return reads, await voting

        mixed, votes = asyncio.run(readers_while_voting())
        rss = peak_rss_mib(pid)
    errors = alone.errors + mixed.errors + votes.errors
    if errors:
        raise RuntimeError(f"arena benchmark (leaderboard): {errors[:3]}")

    def figures(load: Any) -> dict[str, Any]:
        summary = load.summary()
        return {"requests": len(load.latencies), "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
                "requests_per_s": round(len(load.latencies) / load.seconds, 1)}

    reads = figures(alone)
    return {"stored_votes": cfg["board_votes"], "concurrent_readers": cfg["readers"], **reads,
            "while_voting": {**figures(mixed), "votes_during_reads": votes.votes,
                             "board_recomputed_every": "50 votes or 1 s"},
            "server_peak_rss_mib": round(rss, 1), "server_peak_rss_mib_before_reads": round(rss_at_start, 1),
            "target_met": reads["p99_ms"] < 200 and rss < 300}


def run(size: str) -> Result:
    """Throughput at two file sizes, the leaderboard under load, kill -9 cycles: one Result."""
    from nmm_arena.loopback import kill_cycles

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    cfg = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="nmm-bench-arena-") as name:
        tmp = Path(name)
        small = write_pair_file(tmp / "pairs-small.jsonl", cfg["small_pairs"])
        large = write_pair_file(tmp / "pairs-large.jsonl", cfg["large_pairs"])
        labels = {"small": f"votes/s, {cfg['small_pairs']} pairs", "large": f"votes/s, {cfg['large_pairs']} pairs"}
        runs: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
        for r in range(cfg["rounds"]):
            for tag in (("small", "large") if r % 2 == 0 else ("large", "small")):
                runs[tag].append(_throughput(tmp, small if tag == "small" else large, cfg, f"{tag}-{r}"))
        board = _leaderboard(tmp, small, cfg)
        killed = kill_cycles(large, tmp / "kill.sqlite", tmp / "server.log", cycles=cfg["kill_cycles"],
                             clients=cfg["kill_clients"], seconds=cfg["kill_seconds"], admin_token=TOKEN)
    rows = []
    for tag in ("small", "large"):
        done = runs[tag]
        votes, seconds = sum(d["votes"] for d in done), sum(d["seconds"] for d in done)
        rows.append(Row(labels[tag], votes / seconds, "votes/s", [d["seconds"] for d in done], {"rounds": done}))
    result = Result(name="arena", size=size, reference=labels["small"], settings=dict(cfg), rows=rows)
    ratio = rows[1].ratio or 0.0
    result.checks = {
        "large/small votes per second (target >= 0.67: within 1.5x)": round(ratio, 3),
        "throughput target met": ratio >= 1 / 1.5,
        "leaderboard": board,
        "kill -9": killed,
    }
    result.summary = {"votes_per_s_small": round(rows[0].value, 1), "votes_per_s_large": round(rows[1].value, 1),
                      "large_small_ratio": round(ratio, 3), "leaderboard_p99_ms": board["p99_ms"],
                      "leaderboard_peak_rss_mib": board["server_peak_rss_mib"], "votes_lost": killed["lost"]}
    return result
