"""`nmm-arena`: judge two models' answers in the browser; votes go to SQLite.

Reads pair files written by `nmm compare` and the domains' compare/compete commands
(`--pairs FILE`, or a folder: every pairs*.jsonl under it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from nmm_core.cli import run_cli


@dataclass
class ArenaConfig:
    """Settings of the arena server."""

    pairs: Path = field(metadata={"help": "a pair file, or a folder searched for pairs*.jsonl"})
    db: Path = field(default=Path("arena.sqlite"), metadata={"help": "SQLite file of votes (created)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0: every interface)"})
    port: int = 8000
    access_log: bool = field(default=True, metadata={"help": "log every request"})

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")


def serve(cfg: ArenaConfig) -> None:
    """Load the pairs, migrate the database, serve until interrupted."""
    import uvicorn

    from nmm_arena.app import create_app
    from nmm_arena.catalog import load_catalog
    from nmm_arena.db import Database

    catalog = load_catalog(cfg.pairs)
    db = Database(cfg.db)
    app = create_app(catalog, db)
    print(f"nmm-arena: {len(catalog)} pairs, {db.count()} votes in {cfg.db}; "
          f"open http://{cfg.host}:{cfg.port}/", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, access_log=cfg.access_log, log_level="info")


def main(argv: list[str] | None = None) -> int:
    """Parse flags (and an optional --config YAML) and serve the arena."""
    from nmm_core.config import build_parser, config_from_parsed

    parser = build_parser(ArenaConfig, prog="nmm-arena", description=__doc__)
    ns = parser.parse_args(argv)
    return run_cli(lambda: serve(config_from_parsed(ArenaConfig, ns)))


if __name__ == "__main__":
    sys.exit(main())
