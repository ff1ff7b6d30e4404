"""Arena fixtures: pair files written through nmm_core.pairs, in-process clients, a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nmm_core.pairs import Pair, Side, write_pairs

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Tests measure the server, not the throttle: limits are off unless a test sets them.
UNLIMITED = {"votes_per_minute": 0, "sessions_per_address": 0}


def make_pair_file(folder: Path, n: int = 6, *, models: tuple[str, str] = ("base", "fine-tuned"),
                   task: str = "memes", image: bool = True, answers: dict[int, tuple[str, str]] | None = None,
                   name: str = "pairs.jsonl") -> Path:
    """A pair file of `n` pairs with PNG images beside it, the way `compare` lays them out."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        rel = None
        if image:
            (folder / "images").mkdir(exist_ok=True)
            rel = f"images/ex{i}.png"
            Image.new("RGB", (32, 24), (40 * i % 255, 90, 160)).save(folder / rel)
        a, b = (answers or {}).get(i, (f"first answer {i}", f"second answer {i}"))
        sides = [Side(models[0], a), Side(models[1], b)]
        if i % 2:
            sides.reverse()
        pairs.append(Pair(f"{task}:ex{i}", f"ex{i}", rel, f"What is in picture {i}?", [f"ref {i}"],
                          sides[0], sides[1], task))
    return write_pairs(pairs, folder / name)


@pytest.fixture
def pair_file(tmp_path: Path) -> Path:
    return make_pair_file(tmp_path / "run")


@pytest.fixture
def make_client(tmp_path: Path) -> Callable:
    """make_client(pairs, db=None, base_url=..., **study) -> a TestClient on a fresh app (same db = a
    restart); study settings override UNLIMITED; the admin token is ADMIN_TOKEN."""
    from fastapi.testclient import TestClient

    from nmm_arena.app import create_app
    from nmm_arena.catalog import load_catalog
    from nmm_arena.db import Database
    from nmm_arena.keys import token_sha256
    from nmm_arena.study import StudySettings

    def make(pairs: Path, db: Path | None = None, base_url: str = "http://testserver", **study: object) -> TestClient:
        settings = StudySettings(**{**UNLIMITED, **study})
        app = create_app(load_catalog(pairs), Database(db or tmp_path / "arena.sqlite"), settings,
                         admin_sha256=token_sha256(ADMIN_TOKEN))
        return TestClient(app, base_url=base_url, follow_redirects=False)

    return make


@contextmanager
def live_server(pairs: Path, db: Path, log: Path, *flags: str) -> Iterator[str]:
    """`nmm-arena` itself in a subprocess on a free loopback port (limits off unless `flags` set them);
    yields its base URL."""
    from nmm_arena.loopback import running

    try:
        with running(pairs, db, log, *flags, admin_token=ADMIN_TOKEN) as (url, _):
            yield url
    except RuntimeError as exc:  # the server did not come up: its log says why
        pytest.fail(str(exc))


@pytest.fixture
def pairs_writer() -> Callable[..., Path]:
    """make_pair_file, for tests that need their own pair files."""
    return make_pair_file


@pytest.fixture
def server(tmp_path: Path) -> Callable:
    """server(pairs, db, *flags) -> context manager yielding a live nmm-arena's base URL."""
    return lambda pairs, db, *flags: live_server(pairs, db, tmp_path / "server.log", *flags)


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that carry the admin token."""
    return dict(ADMIN)
