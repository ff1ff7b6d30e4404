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
from typing import Any
from urllib.parse import urlencode

import h11
import httpx

HOST = "127.0.0.1"
SESSION_COOKIE = "nmm_arena_session"
PAIR_FIELD = re.compile(r'name="pair" value="([0-9a-f]{16})"')
# Loads measure the server, not the throttle: limits are off unless the caller sets them.
UNLIMITED = ("--votes-per-minute", "0", "--sessions-per-address", "0")


def free_port() -> int:
    """A port free on loopback now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(pairs: Path, db: Path, port: int, log: Path, *flags: str,
                 admin_token: str | None) -> subprocess.Popen:
    """`python -m nmm_arena` on `port`, limits off unless `flags` set them (later flags win);
    `admin_token` None: the server's own (stored, or made and printed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NMM_ARENA_ADMIN_TOKEN")}
    if admin_token is not None:
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
def running(pairs: Path, db: Path, log: Path, *flags: str,
            admin_token: str | None) -> Iterator[tuple[str, int]]:
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


class H11Client:
    """One keep-alive HTTP/1.1 connection on h11 alone, with a cookie jar. The load generator shares
    the machine with the server, so it must cost far less per request than httpx does (measured:
    about 2,000 against 150 leaderboard requests a second on the same 2 cores)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self.cookies: dict[str, str] = {}
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._conn = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str, form: dict[str, str] | None = None
                      ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers (last value per name), body)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
            self._conn = h11.Connection(h11.CLIENT)
        reader, writer = self._streams
        body = urlencode(form).encode() if form is not None else b""
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            headers |= {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}
        out = self._conn.send(h11.Request(method=method, target=target, headers=list(headers.items())))
        if body:
            out += self._conn.send(h11.Data(data=body))
        writer.write(out + self._conn.send(h11.EndOfMessage()))
        status, got, chunks = 0, {}, []
        while not isinstance(event := self._conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self._conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    got[name.decode()] = value.decode("latin-1")
                    if name == b"set-cookie":
                        key, _, rest = value.decode("latin-1").partition("=")
                        self.cookies[key] = rest.split(";")[0]
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is h11.MUST_CLOSE:
            await self.close()
        else:
            self._conn.start_next_cycle()
        return status, got, b"".join(chunks)

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _voter(url: str, votes: int, load: Load, choices: Sequence[str]) -> None:
    client = H11Client(url)
    location = "/"
    try:
        for i in range(votes):
            start = time.perf_counter()
            status, _, page = await client.request("GET", location)
            match = PAIR_FIELD.search(page.decode()) if status == 200 else None
            if match is None:
                if b"judged all" not in page:
                    load.errors.append(f"GET {location} -> {status}")
                return
            status, headers, body = await client.request("POST", "/vote", {"pair": match.group(1),
                                                                            "choice": choices[i % len(choices)]})
            load.latencies.append(time.perf_counter() - start)
            if status != 303:
                load.errors.append(f"POST /vote -> {status} {body[:200]!r}")
                return
            load.acknowledged.append((client.cookies[SESSION_COOKIE], match.group(1)))
            location = headers["location"]
    finally:
        await client.close()


async def vote_load(url: str, clients: int, votes_per_client: int, *, limit_s: float = 300.0,
                    choices: Sequence[str] = ("left", "right", "tie")) -> Load:
    """`clients` concurrent voters (a connection and a session each), each opening the page it is
    sent to and voting, `votes_per_client` times; latency per vote is the GET and the POST."""
    load = Load()
    start = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(_voter(url, votes_per_client, load, choices)
                                                for _ in range(clients))), limit_s)
    finally:
        load.seconds = time.perf_counter() - start
    return load


async def _reader(url: str, path: str, headers: dict[str, str], count: int, load: Load) -> None:
    client = H11Client(url, headers)
    try:
        for _ in range(count):
            start = time.perf_counter()
            status, _, _ = await client.request("GET", path)
            load.latencies.append(time.perf_counter() - start)
            if status != 200:
                load.errors.append(f"GET {path} -> {status}")
    finally:
        await client.close()


async def board_load(url: str, clients: int, requests_per_client: int, headers: dict[str, str],
                     path: str = "/leaderboard.json") -> Load:
    """`clients` concurrent readers of `path`, a keep-alive connection each; latencies per request."""
    load = Load()
    start = time.perf_counter()
    await asyncio.gather(*(_reader(url, path, headers, requests_per_client, load) for _ in range(clients)))
    load.seconds = time.perf_counter() - start
    return load


async def _vote_until_killed(url: str, pid: int, jars: list[dict[str, str]], seconds: float,
                             acknowledged: list[tuple[str, str]]) -> list[str]:
    """Vote from every jar until the server is killed `seconds` from now. Returns why each voter
    stopped if all of them did before the kill (nothing was in flight when it came), else []."""
    killed = asyncio.Event()
    early: list[str] = []

    async def voter(jar: dict[str, str]) -> None:
        client = H11Client(url)
        client.cookies = jar  # the same session across restarts: its secret is in the database
        location = "/"
        try:
            while True:
                status, _, page = await client.request("GET", location)
                match = PAIR_FIELD.search(page.decode(errors="replace"))
                if match is None:
                    early.append("judged every pair" if b"judged all" in page
                                 else f"GET {location} -> {status} without a pair: {page[:300]!r}")
                    return
                status, headers, _ = await client.request("POST", "/vote", {"pair": match.group(1), "choice": "left"})
                if status == 303:
                    acknowledged.append((client.cookies[SESSION_COOKIE], match.group(1)))
                    location = headers["location"]
        except (OSError, h11.ProtocolError) as e:
            if not killed.is_set():
                early.append(f"{type(e).__name__}: {e}")
            # else the server is gone: a vote in flight was never acknowledged
        finally:
            await client.close()

    def kill() -> None:
        killed.set()
        os.kill(pid, signal.SIGKILL)

    asyncio.get_running_loop().call_later(seconds, kill)
    await asyncio.gather(*(voter(jar) for jar in jars))
    if killed.is_set():
        return []
    kill()  # the timer dies with this loop: never leave the server running
    return early


def kill_cycles(pairs: Path, db: Path, log: Path, *, cycles: int, clients: int, seconds: float,
                admin_token: str) -> dict[str, Any]:
    """Voters vote while the server is killed with SIGKILL mid-flight, `cycles` times, each restart on the
    same database; then every acknowledged vote is looked up. Returns acknowledged and lost counts, and
    `cut_short`: per cycle whose voters all stopped before the kill, why each stopped."""
    from nmm_arena.db import Database
    from nmm_arena.keys import ServerKeys

    acknowledged: list[tuple[str, str]] = []
    jars: list[dict[str, str]] = [{} for _ in range(clients)]
    cut_short: list[list[str]] = []
    for _ in range(cycles):
        port = free_port()
        proc = start_server(pairs, db, port, log, admin_token=admin_token)
        url = f"http://{HOST}:{port}"
        try:
            wait_ready(url, proc, log)
            if early := asyncio.run(_vote_until_killed(url, proc.pid, jars, seconds, acknowledged)):
                cut_short.append(early)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    database = Database(db)
    keys = ServerKeys(database.secret())
    stored = {(str(v["voter"]), str(v["pair_key"])) for v in database.iter_votes()}
    database.close()
    expected = {(keys.voter_id(str(keys.session_from_cookie(cookie))), key) for cookie, key in acknowledged}
    return {"cycles": cycles, "acknowledged": len(expected), "lost": len(expected - stored), "stored": len(stored),
            "cut_short": cut_short}
