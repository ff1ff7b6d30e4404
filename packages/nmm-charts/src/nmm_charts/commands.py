"""The chart commands as functions of one settings dataclass each, built on `nmm_core.workflows`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from nmm_charts.data import (
    SPLITS,
    SyntheticSettings,
    chart_data_settings,
    inventory,
    load_charts,
    resolve_data,
    sample_grid,
    synthesize,
    synthetic_folder,
)
from nmm_charts.presets import TWIN_RECIPES
from nmm_charts.task import chart_task
from nmm_core.errors import ConfigError
from nmm_core.seeds import resolve_seeds
from nmm_core.workflows import (
    DataSettings,
    EvalConfig,
    ModelSettings,
    TrainConfig,
    check_model_source,
    predict_one,
)


def _model() -> ModelSettings:
    return ModelSettings(model="tiny-qwen2-vl")


@dataclass
class ChartTrainConfig(TrainConfig):
    """`train`: LoRA (or QLoRA with --model-quantization 4bit) for one epoch by default."""

    data: DataSettings = field(default_factory=chart_data_settings)
    model: ModelSettings = field(default_factory=_model)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


@dataclass
class ChartEvalConfig(EvalConfig):
    """`eval` / `compare`: greedy short answers, relaxed accuracy first; adapters merged."""

    data: DataSettings = field(default_factory=chart_data_settings)
    model: ModelSettings = field(default_factory=_model)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


@dataclass
class SynthesizeConfig:
    """`data synthesize`: write the synthetic chart set (train/val/test) in PJN_CHARTS shape."""

    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    out: str = field(default="", metadata={"help": "folder to write (empty: the shared cache)"})
    progress: bool = True


@dataclass
class InspectConfig:
    """`data inspect`: counts, answer-type mix and a sample grid of a chart source."""

    data: DataSettings = field(default_factory=chart_data_settings)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    splits: tuple[str, ...] = field(default=SPLITS, metadata={"help": "splits to count"})
    grid: str = field(default="charts-sample.png", metadata={"help": "sample grid PNG to write"})
    grid_size: int = field(default=8, metadata={"help": "charts in the grid"})


@dataclass
class PredictConfig:
    """`predict`: one answer for one chart image and question."""

    model: ModelSettings = field(default_factory=_model)
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (merged)"})
    max_new_tokens: int = 16


def run_synthesize(cfg: SynthesizeConfig) -> Path:
    """Generate the set; print where it is and what it holds."""
    from nmm_core.folders import synthesized

    folder = synthesized(cfg.out, lambda tmp: synthesize(cfg.synthetic, tmp, progress=cfg.progress),
                         lambda: synthetic_folder(cfg.synthetic, progress=cfg.progress), marker="synthetic.json")
    print(f"synthetic chart set: {folder}")
    for split, n in cfg.synthetic.sizes().items():
        print(f"  {split}: {n} questions")
    return folder


def run_inspect(cfg: InspectConfig) -> Path:
    """Counts per split (usable, skipped, answer types, kinds), then a sample-grid PNG."""
    data = resolve_data(cfg.data, cfg.synthetic)
    if cfg.grid_size < 1:
        raise ConfigError(f"grid_size must be at least 1, got {cfg.grid_size}")
    first = None
    for split in cfg.splits:
        report = load_charts(data.source, split=split, revision=data.revision,
                             columns=data.columns(), image_root=data.image_root, limit=data.limit,
                             policy=data.on_bad_record)
        # only the records kept count, as the percentages are of what trains and evaluates
        meta = {name: [values[ex.id] for ex in report.kept if ex.id in values]
                for name, values in _meta_columns(data, split).items()}
        for line in inventory(report, split, meta).lines():
            print(line)
        first = first or report.kept
    grid = sample_grid((first or [])[: cfg.grid_size], cfg.grid, title=f"{Path(data.source).name}")
    print(f"sample grid: {grid}")
    return grid


def _meta_columns(data: DataSettings, split: str) -> dict[str, dict[str, str]]:
    """Question kind and chart type by record id, where the source has those columns; `(none)` where a
    record leaves it empty."""
    from nmm_core.data import ColumnMap, load_examples
    from nmm_core.errors import DataError

    out: dict[str, dict[str, str]] = {}
    ids = data.columns().id
    if not Path(data.source).exists():  # hub datasets have no such columns
        return out
    for name in ("kind", "chart_type"):
        try:
            rows = load_examples(data.source, split=split, revision=data.revision, limit=data.limit,
                                 columns=ColumnMap(id=ids, image=None, prompt=data.prompt_column,
                                                   answers=None, meta=(name,)))
        except DataError:  # a local folder without the column: nothing to count
            continue
        out[name] = {r.id: "(none)" if r.meta.get(name) in (None, "") else str(r.meta[name]) for r in rows}
    return out


def run_chart_train(cfg: ChartTrainConfig) -> Path:
    """Core's `run_train` with the chart task and data (synthetic unless a source is named)."""
    from nmm_core.workflows import run_train

    check_model_source(cfg.model, None)
    resolve_seeds(cfg)  # the synthetic set's seed, when not given, is the run seed
    return run_train(replace(cfg, data=resolve_data(cfg.data, cfg.synthetic)), chart_task())


def _eval_config(cfg: ChartEvalConfig) -> ChartEvalConfig:
    check_model_source(cfg.model, cfg.adapter)
    resolve_seeds(cfg)  # the synthetic set's seed, when not given, is the run seed
    return replace(cfg, data=resolve_data(cfg.data, cfg.synthetic))


def run_chart_eval(cfg: ChartEvalConfig) -> Path:
    """Core's `run_eval`: predictions.jsonl, relaxed accuracy, exact match, ROUGE-1/L, s/answer."""
    from nmm_core.workflows import run_eval

    return run_eval(_eval_config(cfg), chart_task())


def run_chart_compare(cfg: ChartEvalConfig) -> Path:
    """Core's `run_compare`: base vs merged fine-tuned on the same examples, with time per answer."""
    from nmm_core.workflows import run_compare

    if not cfg.adapter:
        raise ConfigError("compare needs --adapter (the fine-tuned LoRA folder)")
    return run_compare(_eval_config(cfg), chart_task())


def run_predict(cfg: PredictConfig, image: str, question: str) -> str:
    """Load the model (adapter merged), answer one question about one image, print it."""
    raw, seconds = predict_one(cfg.model, cfg.adapter, image, question, task=chart_task(),
                               max_new_tokens=cfg.max_new_tokens)
    answer = chart_task().normalise(raw)
    print(answer)
    print(f"({seconds:.3f} s to generate)", file=sys.stderr)
    return answer
