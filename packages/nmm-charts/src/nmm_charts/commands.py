"""What charts adds to the kit's verbs: `data inspect` with answer types, question kinds and a sample grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from nmm_charts.data import (
    CHART_DATA,
    SPLITS,
    ChartSource,
    SyntheticSettings,
    inventory,
    synthetic_folder,
)
from nmm_core.errors import ConfigError
from nmm_core.sources import SYNTHETIC
from nmm_core.workflows import DataSettings


@dataclass
class InspectConfig:
    """`data inspect`: counts, answer-type mix and a sample grid of a chart source."""

    data: DataSettings = field(default_factory=partial(DataSettings, source=SYNTHETIC, **CHART_DATA))
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    splits: tuple[str, ...] = field(default=SPLITS, metadata={"help": "splits to count"})
    grid: str = field(default="charts-sample.png", metadata={"help": "sample grid PNG to write"})
    grid_size: int = field(default=8, metadata={"help": "charts in the grid"})


def run_inspect(cfg: InspectConfig) -> Path:
    """Counts per split (usable, skipped, answer types, kinds), then a sample-grid PNG."""
    source = ChartSource(cfg.data, partial(synthetic_folder, cfg.synthetic)).resolve()
    data = source.settings
    if cfg.grid_size < 1:
        raise ConfigError(f"grid_size must be at least 1, got {cfg.grid_size}")
    first = None
    for split in cfg.splits:
        report = source.load(split)
        # only the records kept count, as the percentages are of what trains and evaluates
        meta = {name: [values[ex.id] for ex in report.kept if ex.id in values]
                for name, values in _meta_columns(data, split).items()}
        for line in inventory(report, split, meta):
            print(line)
        first = first or report.kept
    from nmm_core.report import sample_grid

    grid = sample_grid((first or [])[: cfg.grid_size], cfg.grid, title=f"{Path(data.source).name}")
    print(f"sample grid: {grid}")
    return grid


def _meta_columns(data: DataSettings, split: str) -> dict[str, dict[str, str]]:
    """Question kind and chart type by record id, where the source has those columns; `(none)` where a
    record leaves it empty."""
    from nmm_core.data import load_optional_columns

    if not Path(data.source).exists():  # hub datasets have no such columns
        return {}
    found = load_optional_columns(data.source, split=split, names=("kind", "chart_type"), columns=data.columns(),
                                  limit=data.limit)
    return {name: {i: "(none)" if v in (None, "") else str(v) for i, v in values.items()}
            for name, values in found.items()}
