"""`nmm-memes`: the domain's command line (its commands land with the domain's own issue)."""

from __future__ import annotations

import sys

from nmm_core.cli import base_parser, info_text, run_cli

DESCRIPTION = "Meme understanding (MemeCap, MemeCraft) with TinyLLaVA and GILL, and a base-vs-fine-tuned competition."


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    parser, _ = base_parser("nmm-memes", DESCRIPTION, "nmm-memes")
    ns = parser.parse_args(argv)
    return run_cli(lambda: print(info_text("nmm-memes")) if ns.command == "info" else None)


if __name__ == "__main__":
    sys.exit(main())
