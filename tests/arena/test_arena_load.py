"""Load on loopback: many concurrent voters against a real `nmm-arena` server; no vote lost,
not under load and not when the server is killed with SIGKILL mid-flight."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from nmm_arena.catalog import load_catalog
from nmm_arena.loopback import kill_cycles, vote_load

CLIENTS = 50
PAIRS = 40  # each client judges every pair: 2,000 votes


@pytest.mark.slow  # ~20-40 s on 2 shared cores
def test_concurrent_voters_lose_no_vote(tmp_path, pairs_writer, server, admin):
    pairs = pairs_writer(tmp_path / "run", PAIRS, image=False)
    keys = list(load_catalog(pairs).entries)
    with server(pairs, tmp_path / "arena.sqlite") as url:
        load = asyncio.run(vote_load(url, CLIENTS, PAIRS, limit_s=120))
        rows = httpx.get(f"{url}/export.json", headers=admin, timeout=60).json()
        health = httpx.get(f"{url}/healthz").json()
    total = CLIENTS * PAIRS
    print(f"\narena load: {load.summary()}")
    assert load.errors == []
    assert load.votes == total and health["votes"] == total and len(rows) == total
    assert len({(r["voter"], r["pair_key"]) for r in rows}) == total
    assert len({r["voter"] for r in rows}) == CLIENTS and {r["pair_key"] for r in rows} == set(keys)


@pytest.mark.slow  # ~20 s: three starts, three SIGKILLs
@pytest.mark.timeout(300)  # a server left running would otherwise hold CI for the global 900 s
def test_kill_9_loses_no_acknowledged_vote(tmp_path, pairs_writer, admin):
    # more pairs than the voters can judge before the kills (300 ran out on a fast machine: 2,336 of
    # 8 x 300 votes were in after three cycles here, and voters that judge everything stop early)
    pairs = pairs_writer(tmp_path / "run", 4000, image=False)
    result = kill_cycles(pairs, tmp_path / "arena.sqlite", tmp_path / "server.log", cycles=3, clients=8,
                         seconds=1.5, admin_token=admin["Authorization"].split()[1])
    print(f"\narena kill -9: {result}")
    assert result["cut_short"] == []  # every kill came mid-flight
    assert result["acknowledged"] > 50  # the voters did get votes in before the kills
    assert result["lost"] == 0
