"""Load on loopback: many concurrent voters against a real `nmm-arena` server; no vote lost."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest

from nmm_arena.catalog import load_catalog

CLIENTS = 50
PAIRS = 40  # each client judges every pair: 2,000 votes
TIME_LIMIT = 90.0


async def _voter(url: str, keys: list[str], offset: int, latencies: list[float], errors: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        first = await client.get("/")
        if first.status_code != 200:
            errors.append(f"GET / -> {first.status_code}")
            return
        for i in range(len(keys)):
            key = keys[(offset + i) % len(keys)]  # clients start on different pairs
            start = time.perf_counter()
            try:
                response = await client.post("/vote", data={"pair": key, "choice": ("left", "right", "tie")[i % 3]})
            except httpx.HTTPError as exc:
                errors.append(f"{key}: {exc!r}")
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code != 303:
                errors.append(f"{key}: {response.status_code} {response.text[:200]}")


async def _run(url: str, keys: list[str]) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(_voter(url, keys, c, latencies, errors) for c in range(CLIENTS))),
                           TIME_LIMIT)
    return time.perf_counter() - start, latencies, errors


@pytest.mark.slow  # ~10-20 s on 2 shared cores
def test_concurrent_voters_lose_no_vote(tmp_path, pairs_writer, server):
    pairs = pairs_writer(tmp_path / "run", PAIRS, image=False)
    keys = list(load_catalog(pairs).entries)
    with server(pairs, tmp_path / "arena.sqlite") as url:
        elapsed, latencies, errors = asyncio.run(_run(url, keys))
        rows = httpx.get(f"{url}/export.json", timeout=30).json()
        health = httpx.get(f"{url}/healthz").json()
    total = CLIENTS * PAIRS
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"\narena load: {total} votes from {CLIENTS} clients in {elapsed:.1f} s = {total / elapsed:.0f} votes/s; "
          f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    assert errors == []
    assert len(latencies) == total and health["votes"] == total and len(rows) == total
    assert len({(r["voter"], r["pair_key"]) for r in rows}) == total
    assert len({r["voter"] for r in rows}) == CLIENTS and {r["pair_key"] for r in rows} == set(keys)
