"""`nmm-charts`: chart question answering, declared as a domain; core's kit makes the command line."""

from __future__ import annotations

import sys

from nmm_charts.commands import InspectConfig, run_inspect
from nmm_charts.data import CHART_DATA, ChartSource, SyntheticSettings, synthesize, synthetic_folder
from nmm_charts.presets import TWIN_RECIPES
from nmm_charts.task import chart_task
from nmm_core.domain import Domain, SyntheticSet, domain_main

CHARTS = Domain(
    name="nmm-charts",
    description="Chart question answering (ChartQA, PJN_CHARTS) with Qwen2-VL-2B, SmolVLM and Moondream2.",
    task=chart_task(),
    model="tiny-qwen2-vl",
    families=("qwen2_vl", "idefics3", "moondream"),  # Qwen2-VL-2B, SmolVLM, Moondream2, their twins
    twin_recipes=TWIN_RECIPES,
    data=CHART_DATA,
    synthetic=SyntheticSet(SyntheticSettings, write=synthesize, cached=synthetic_folder),
    source=ChartSource,
    verbs={"data inspect": (InspectConfig, run_inspect,
                            "counts, answer-type mix and a sample grid of a chart source")},
)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    return domain_main(CHARTS, argv)


if __name__ == "__main__":
    sys.exit(main())
