"""`nmm-connectome`: the domain's command line (its commands land with the domain's own issue)."""

from __future__ import annotations

import sys

from nmm_core.cli import base_parser, info_text, run_cli

DESCRIPTION = "Predict motor-task functional connectivity from resting-state connectivity (HCP)."


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    parser, _ = base_parser("nmm-connectome", DESCRIPTION, "nmm-connectome")
    ns = parser.parse_args(argv)
    return run_cli(lambda: print(info_text("nmm-connectome")) if ns.command == "info" else None)


if __name__ == "__main__":
    sys.exit(main())
