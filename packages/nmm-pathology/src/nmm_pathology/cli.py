"""`nmm-pathology`: the domain's command line (its commands land with the domain's own issue)."""

from __future__ import annotations

import sys

from nmm_core.cli import base_parser, info_text, run_cli

DESCRIPTION = "PathVQA with LLaVA-1.5 QLoRA, and a YOLOv8 brain-tumour detection baseline."


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    parser, _ = base_parser("nmm-pathology", DESCRIPTION, "nmm-pathology")
    ns = parser.parse_args(argv)
    return run_cli(lambda: print(info_text("nmm-pathology")) if ns.command == "info" else None)


if __name__ == "__main__":
    sys.exit(main())
