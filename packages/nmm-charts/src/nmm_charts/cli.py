"""`nmm-charts`: chart question answering, declared as a domain; core's kit makes the command line."""

from __future__ import annotations

import sys

from nmm_charts.data import CHART_DATA, SPLITS, ChartSource, SyntheticSettings, inventory, synthesize, synthetic_folder
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
    splits=SPLITS,
    inspect_grid="charts-sample.png",
    inspect_lines=inventory,  # answer types, question kinds, chart types
    verbs={"data inspect": (None, None, "counts, answer-type mix and a sample grid of a chart source")},
)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    return domain_main(CHARTS, argv)


if __name__ == "__main__":
    sys.exit(main())
