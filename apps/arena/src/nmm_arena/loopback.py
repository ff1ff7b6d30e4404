"""`nmm-arena` in a subprocess on 127.0.0.1, and the clients that load it: voters, leaderboard
readers, kill -9 cycles. Shared by the tests and the `arena` benchmark; nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
PAIR_FIELD = re.compile(r'name="pair" value="([0-9a-f]{16})"')
# Loads measure the server, not the throttle: limits are off unless the caller sets them.
UNLIMITED = ("--votes-per-minute", "0", "--sessions-per-address", "0")


def free_port() -> int:
    """A port free on loopback now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(pairs: Path, db: Path, port: int, log: Path, *flags: str, admin_token: str) -> subprocess.Popen:
    """`python -m nmm_arena` on `port`, limits off unless `flags` set them (later flags win)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NMM_ARENA_ADMIN_TOKEN"] = admin_token
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "nmm_arena", "--pairs", str(pairs), "--db", str(db),
                                 "--host", HOST, "--port", str(port), "--no-access-log", *UNLIMITED, *flags],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Return once /healthz answers; RuntimeError with the log if the server exits or is late."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"nmm-arena exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nmm-arena did not answer within {timeout} s:\n{log.read_text()}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """Terminate, then kill if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running(pairs: Path, db: Path, log: Path, *flags: str, admin_token: str) -> Iterator[tuple[str, int]]:
    """A live arena for the block: yields (base URL, server pid)."""
    port = free_port()
    proc = start_server(pairs, db, port, log, *flags, admin_token=admin_token)
    url = f"http://{HOST}:{port}"
    try:
        wait_ready(url, proc, log)
        yield url, proc.pid
    finally:
        stop(proc)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (Linux VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@dataclass
class Load:
    """What a load run measured."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # per vote: GET the page + POST the vote
    errors: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (session cookie, pair key) per 303

    @property
    def votes(self) -> int:
        return len(self.acknowledged)

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies) or [0.0]
        return {"votes": self.votes, "seconds": round(self.seconds, 3),
                "votes_per_s": round(self.votes / self.seconds, 2) if self.seconds else 0.0,
                "p50_ms": round(statistics.median(lat) * 1000, 1),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1), "errors": len(self.errors)}


async def _voter(client: httpx.AsyncClient, votes: int, load: Load, choices: Sequence[str]) -> None:
    location = "/"
    for i in range(votes):
        start = time.perf_counter()
        page = await client.get(location)
        match = PAIR_FIELD.search(page.text) if page.status_code == 200 else None
        if match is None:
            if "judged all" not in page.text:
                load.errors.append(f"GET {location} -> {page.status_code}")
            return
        response = await client.post("/vote", data={"pair": match.group(1), "choice": choices[i % len(choices)]})
        load.latencies.append(time.perf_counter() - start)
        if response.status_code != 303:
            load.errors.append(f"POST /vote -> {response.status_code} {response.text[:200]}")
            return
        load.acknowledged.append((client.cookies["nmm_arena_session"], match.group(1)))
        location = response.headers["location"]


async def vote_load(url: str, clients: int, votes_per_client: int, *, limit_s: float = 300.0,
                    choices: Sequence[str] = ("left", "right", "tie")) -> Load:
    """`clients` concurrent voters, each opening the page it is sent to and voting, `votes_per_client` times."""
    load = Load()
    sessions = [httpx.AsyncClient(base_url=url, timeout=60) for _ in range(clients)]
    start = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(_voter(c, votes_per_client, load, choices) for c in sessions)),
                               limit_s)
    finally:
        load.seconds = time.perf_counter() - start
        for c in sessions:
            await c.aclose()
    return load


async def board_load(url: str, clients: int, requests_per_client: int, headers: dict[str, str],
                     path: str = "/leaderboard.json") -> Load:
    """`clients` concurrent readers of `path`; latencies per request."""
    load = Load()

    async def reader(client: httpx.AsyncClient) -> None:
        for _ in range(requests_per_client):
            start = time.perf_counter()
            response = await client.get(path, headers=headers)
            load.latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                load.errors.append(f"GET {path} -> {response.status_code}")

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(reader(client) for _ in range(clients)))
        load.seconds = time.perf_counter() - start
    return load


async def _vote_until_killed(url: str, pid: int, jars: list[httpx.Cookies], seconds: float,
                             acknowledged: list[tuple[str, str]]) -> None:
    async def voter(jar: httpx.Cookies) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10, cookies=jar) as client:
            location = "/"
            try:
                while True:
                    page = await client.get(location)
                    match = PAIR_FIELD.search(page.text)
                    if match is None:
                        return
                    response = await client.post("/vote", data={"pair": match.group(1), "choice": "left"})
                    if response.status_code == 303:
                        acknowledged.append((client.cookies["nmm_arena_session"], match.group(1)))
                        location = response.headers["location"]
            except httpx.TransportError:
                return  # the server is gone: a vote in flight was never acknowledged
            finally:
                jar.update(client.cookies)

    asyncio.get_running_loop().call_later(seconds, os.kill, pid, signal.SIGKILL)
    await asyncio.gather(*(voter(jar) for jar in jars))


def kill_cycles(pairs: Path, db: Path, log: Path, *, cycles: int, clients: int, seconds: float,
                admin_token: str) -> dict[str, int]:
    """Voters vote while the server is killed with SIGKILL mid-flight, `cycles` times, each restart on the
    same database; then every acknowledged vote is looked up. Returns acknowledged and lost counts."""
    from nmm_arena.db import Database
    from nmm_arena.keys import ServerKeys

    acknowledged: list[tuple[str, str]] = []
    jars = [httpx.Cookies() for _ in range(clients)]  # sessions survive restarts: the secret is in the db
    for _ in range(cycles):
        port = free_port()
        proc = start_server(pairs, db, port, log, admin_token=admin_token)
        url = f"http://{HOST}:{port}"
        wait_ready(url, proc, log)
        asyncio.run(_vote_until_killed(url, proc.pid, jars, seconds, acknowledged))
        proc.wait()
    database = Database(db)
    keys = ServerKeys(database.secret())
    stored = {(str(v["voter"]), str(v["pair_key"])) for v in database.iter_votes()}
    database.close()
    expected = {(keys.voter_id(str(keys.session_from_cookie(cookie))), key) for cookie, key in acknowledged}
    return {"cycles": cycles, "acknowledged": len(expected), "lost": len(expected - stored), "stored": len(stored)}
