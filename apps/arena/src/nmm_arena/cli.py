"""`nmm-arena`: people judge two models' answers in the browser, blind; votes go to SQLite.

Reads pair files written by `nmm compare` and the domains' compare/compete commands
(`--pairs FILE`, or a folder: every pairs*.jsonl under it, except in .incomplete or failed
runs). Each line is checked; a bad one is reported as `file:line: field: why` and skipped
(`--on-bad stop` refuses to start instead).

Admin token: exports (/export.csv, /export.json), per-vote rows (/admin) and, unless
--public-leaderboard, the leaderboard need it (header `Authorization: Bearer TOKEN`, or log in
at /admin). Give it with --admin-token or NMM_ARENA_ADMIN_TOKEN (used as given, not stored);
otherwise one is made at the first start, printed once, and only its SHA-256 is kept in the
database, so restarts keep it. --rotate-admin-token prints a new one (the old one stops working).

Limits (per study; 0 turns one off): --votes-per-minute per voter session,
--sessions-per-address new sessions per client address per hour (wrong study codes count too).
--study-code CODE makes voters enter CODE before their first vote. They stop scripted stuffing
from a few machines; a crowd of real people each voting once is not something a server can tell
apart from a study's voters (see apps/arena/README.md).

Transport: POST bodies over 64 KiB are refused; a request must arrive whole within
--request-timeout seconds or its connection is closed; at most --limit-concurrency connections.
On a network, serve it behind a TLS reverse proxy and name it with --forwarded-allow-ips (the
session cookie is then marked Secure).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nmm_arena.study import StudySettings
from nmm_core.cli import run_cli


@dataclass
class ArenaConfig:
    """Settings of the arena server."""

    pairs: Path = field(metadata={"help": "a pair file, or a folder searched for pairs*.jsonl"})
    db: Path = field(default=Path("arena.sqlite"), metadata={"help": "SQLite file of votes (created)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0: every interface)"})
    port: int = 8000
    access_log: bool = field(default=True, metadata={"help": "log every request"})
    on_bad: Literal["skip", "stop"] = field(default="skip", metadata={
        "help": "a bad pair-file line: report and skip it, or stop before serving"})
    admin_token: str | None = field(default=None, metadata={
        "help": "the admin token for this run (default: $NMM_ARENA_ADMIN_TOKEN, else the stored one, "
                "made and printed once at the first start)"})
    rotate_admin_token: bool = field(default=False, metadata={
        "help": "make, store and print a new admin token; the old one stops working"})
    study: StudySettings = field(default_factory=StudySettings)
    request_timeout: float = field(default=10.0, metadata={
        "help": "seconds a client has to send a whole request (head and body) once it starts one"})
    limit_concurrency: int = field(default=500, metadata={
        "help": "most connections and requests at once; more are answered 503"})
    forwarded_allow_ips: str | None = field(default=None, metadata={
        "help": "addresses of trusted reverse proxies whose X-Forwarded-For/-Proto are believed "
                "(comma-separated; none: no proxy headers are read)"})
    allowed_origins: list[str] = field(default_factory=list, metadata={
        "help": "further origins (https://host) whose pages may POST votes, e.g. the proxy's public name"})

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if self.request_timeout <= 0 or self.limit_concurrency < 1:
            raise ValueError("request_timeout must be > 0 and limit_concurrency >= 1")


def serve(cfg: ArenaConfig) -> None:
    """Load the pairs, migrate the database, serve until interrupted."""
    import uvicorn

    from nmm_arena.admin_token import ENV, resolve_admin_token
    from nmm_arena.app import create_app
    from nmm_arena.catalog import load_catalog
    from nmm_arena.db import Database
    from nmm_arena.transport import deadline_protocol

    catalog = load_catalog(cfg.pairs, on_bad=cfg.on_bad, say=lambda line: print(line, file=sys.stderr, flush=True))
    if catalog.problems:
        print(f"nmm-arena: {len(catalog.problems)} bad line(s) skipped (above)", file=sys.stderr, flush=True)
    db = Database(cfg.db)
    db.migrate()
    given = cfg.admin_token if cfg.admin_token is not None else os.environ.get(ENV)
    admin_sha256, new = resolve_admin_token(db, given, rotate=cfg.rotate_admin_token)
    if new:
        print(f"nmm-arena: admin token (shown once; only its hash is kept in {cfg.db}): {new}", flush=True)
    app = create_app(catalog, db, cfg.study, admin_sha256=admin_sha256, allowed_origins=cfg.allowed_origins)
    print(f"nmm-arena: {len(catalog)} pairs, {db.count()} votes in {cfg.db}; "
          f"open http://{cfg.host}:{cfg.port}/ (admin: /admin)", flush=True)
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, access_log=cfg.access_log, log_level="info",
                            http=deadline_protocol(cfg.request_timeout), limit_concurrency=cfg.limit_concurrency,
                            timeout_keep_alive=5, proxy_headers=cfg.forwarded_allow_ips is not None,
                            forwarded_allow_ips=cfg.forwarded_allow_ips)
    uvicorn.Server(config).run()


def main(argv: list[str] | None = None) -> int:
    """Parse flags (and an optional --config YAML) and serve the arena."""
    from nmm_core.config import build_parser, config_from_parsed

    parser = build_parser(ArenaConfig, prog="nmm-arena", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    ns = parser.parse_args(argv)
    return run_cli(lambda: serve(config_from_parsed(ArenaConfig, ns)))


if __name__ == "__main__":
    sys.exit(main())
