"""`nmm-charts`: the domain's command line (its commands land with the domain's own issue)."""

from __future__ import annotations

import sys

from nmm_core.cli import base_parser, info_text, run_cli

DESCRIPTION = "Chart question answering (ChartQA, PJN_CHARTS) with Qwen2-VL-2B, SmolVLM and Moondream2."


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    parser, _ = base_parser("nmm-charts", DESCRIPTION, "nmm-charts")
    ns = parser.parse_args(argv)
    return run_cli(lambda: print(info_text("nmm-charts")) if ns.command == "info" else None)


if __name__ == "__main__":
    sys.exit(main())
