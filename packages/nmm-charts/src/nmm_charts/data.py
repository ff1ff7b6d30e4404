"""Chart data: PJN_CHARTS and ChartQA from the hub, local folders in their shape, the synthetic set.

Every source goes through nmm-core's `load_examples` and `validate`. The shape is PJN_CHARTS's:
`image`, `query`, `label` (a list of accepted answers; a plain string is accepted too).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from nmm_charts.synthetic import make_charts
from nmm_core.data import ColumnMap, load_examples, write_jsonl_dataset
from nmm_core.records import ValidationReport, validate
from nmm_core.runs import atomic_write_json
from nmm_core.seeds import part_seed
from nmm_core.sources import ColumnSource, is_synthetic
from nmm_core.workflows import DataSettings

PJN_CHARTS = "krowiemlekommm/PJN_CHARTS"
CHARTQA = "HuggingFaceM4/ChartQA"
# Dataset revisions: no commit of either hub repository could be confirmed from here, so none is
# pinned (None loads the default branch); pass --data-revision <commit> to pin one yourself.
HUB_SOURCES: dict[str, str | None] = {PJN_CHARTS: None, CHARTQA: None}
# Both hub datasets name their validation split `val`.
_SPLIT_NAMES = {"validation": "val", "dev": "val"}
CHART_COLUMNS = ColumnMap(id="id", image="image", prompt="query", answers="label")
SYNTHETIC_VERSION = 1  # bump when the generator's output changes: cached sets are rebuilt
SPLITS = ("train", "val", "test")


# Core's data settings with the PJN_CHARTS column names and splits (the domain's `data` defaults).
CHART_DATA = {"prompt_column": "query", "answers_column": "label", "image_column": "image", "val_split": "val"}


def hub_split(source: str, split: str) -> str:
    """The split's name in a known hub dataset (`validation` -> `val`)."""
    return _SPLIT_NAMES.get(split, split) if source in HUB_SOURCES else split


def load_charts(source: str | Path, *, split: str = "test", revision: str | None = None,
                columns: ColumnMap = CHART_COLUMNS, image_root: str | Path | None = None,
                limit: int | None = None,
                policy: Literal["skip", "stop"] = "skip") -> ValidationReport:
    """Load and validate one split of a chart source (hub id or local folder/file)."""
    source = str(source)
    examples = load_examples(source, split=hub_split(source, split), columns=columns,
                             revision=revision or HUB_SOURCES.get(source), image_root=image_root,
                             limit=limit)
    return validate(examples, policy=policy)


@dataclass
class SyntheticSettings:
    """The embedded synthetic chart set (used when no --data-source is given)."""

    seed: int | None = field(default=None, metadata={"help": "generator seed, same seed same charts (default: "
                                                             "the run seed)"})
    train_size: int = field(default=1200, metadata={"help": "training questions (the study's 1,200)"})
    val_size: int = 100
    test_size: int = 200
    kinds: tuple[str, ...] = field(
        default=(), metadata={"help": "question kinds: value,largest,smallest,difference,count,label "
                                      "(empty: all)"})
    chart_types: tuple[str, ...] = field(
        default=(), metadata={"help": "chart types: bar,grouped_bar,line,pie (empty: all)"})
    image_size: int = field(default=320, metadata={"help": "chart width in pixels (4:3)"})

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size}

    def manifest(self) -> dict:
        """What `synthetic.json` records: every value the generated files depend on."""
        return {"version": SYNTHETIC_VERSION, "seed": part_seed(self.seed), "sizes": self.sizes(),
                "kinds": list(self.kinds), "chart_types": list(self.chart_types), "image_size": self.image_size}

    def key(self) -> str:
        """A short name that changes whenever the generated files would."""
        manifest = self.manifest()
        text = json.dumps(list(manifest.values()))
        return f"synthetic-v{SYNTHETIC_VERSION}-seed{manifest['seed']}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def synthesize(settings: SyntheticSettings, folder: str | Path, *, progress: bool = True) -> Path:
    """Generate every split of the synthetic set into `folder`; writes `synthetic.json` last."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = settings.sizes()
    for split in tqdm(SPLITS, desc="synthesizing splits", disable=not progress):
        examples = make_charts(sizes[split], seed=part_seed(settings.seed), split=split, kinds=settings.kinds,
                               chart_types=settings.chart_types, image_size=settings.image_size)
        # PJN_CHARTS shape: image path, query, label list, and kind / chart type / answer type columns
        write_jsonl_dataset(examples, folder, split=split, columns=CHART_COLUMNS)
    atomic_write_json(folder / "synthetic.json", settings.manifest())  # last: its presence means complete
    return folder


def synthetic_folder(settings: SyntheticSettings, *, progress: bool = True) -> Path:
    """The cached synthetic set for `settings` under $NMM_CACHE/charts, generated on first use."""
    from nmm_core.files import cached_folder

    return cached_folder("charts", settings.key(), lambda tmp: synthesize(settings, tmp, progress=progress),
                         marker="synthetic.json")


@dataclass(frozen=True)
class ChartSource(ColumnSource):
    """A chart source: the synthetic set, or a hub id / local folder with hub split names fixed."""

    def resolve(self) -> ChartSource:
        """The synthetic set's folder when named; a known hub dataset's split names and revision."""
        data = self.settings
        if is_synthetic(data.source):
            return super().resolve()
        return replace(self, settings=replace(data, split=hub_split(data.source, data.split),
                                              eval_split=hub_split(data.source, data.eval_split),
                                              revision=data.revision or HUB_SOURCES.get(data.source)))

    def load(self, split: str) -> ValidationReport:
        """One split (a hub split name fixed), validated."""
        return super().load(hub_split(self.settings.source, split))


def answer_type(answer: str) -> str:
    """`numeric` if the answer reads as a number (ChartQA's relaxed rule applies), else `text`."""
    text = answer.strip().rstrip("%").replace(",", "")
    try:
        float(text)
    except ValueError:
        return "text"
    return "numeric"


def inventory(source: ChartSource, split: str, report: ValidationReport) -> list[str]:
    """What the kit's `data inspect` lacks for a chart split: counts of its kept records by answer type,
    question kind and chart type (the last two where the source has those columns)."""
    # only the records kept count, as the percentages are of what trains and evaluates
    meta = {name: [values[ex.id] for ex in report.kept if ex.id in values]
            for name, values in _meta_columns(source.settings, split).items()}
    out = []
    for title, counter in (("answer types", Counter(answer_type(ex.answers[0]) for ex in report.kept)),
                           ("question kinds", Counter(meta.get("kind", []))),
                           ("chart types", Counter(meta.get("chart_type", [])))):
        if counter:
            total = sum(counter.values())
            parts = ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in counter.most_common())
            out.append(f"  {title}: {parts}")
    return out


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
