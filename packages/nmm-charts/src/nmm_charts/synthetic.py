"""The embedded synthetic chart set: matplotlib charts and questions whose answers come from the data.

Deterministic by seed: the same seed, sizes and settings always give the same charts and
questions. Four chart types (bar, grouped bar, line, pie), each with a title, titled axes (pie:
a title) and every value written on the chart, so each answer can be read off the image.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core.errors import ConfigError
from nmm_core.records import Example

CHART_TYPES = ("bar", "grouped_bar", "line", "pie")
QUESTION_KINDS = ("value", "largest", "smallest", "difference", "count", "label")
NUMERIC_KINDS = frozenset({"value", "difference", "count"})

_TOPICS = (  # (title stem, x-axis title, y-axis title, categories)
    ("Fruit sales", "Fruit", "Boxes sold", ("Apples", "Pears", "Plums", "Cherries", "Grapes", "Kiwis")),
    ("Visitors by country", "Country", "Visitors (thousands)",
     ("France", "Spain", "Italy", "Poland", "Greece", "Norway")),
    ("Energy sources", "Source", "Share of output", ("Coal", "Gas", "Wind", "Solar", "Hydro", "Nuclear")),
    ("Commute mode", "Mode", "Commuters", ("Car", "Bus", "Train", "Bike", "Walk", "Tram")),
    ("Pets owned", "Animal", "Households", ("Dogs", "Cats", "Fish", "Birds", "Rabbits", "Horses")),
)
_YEARS = tuple(str(y) for y in range(2015, 2024))
_SERIES = (("Men", "Women"), ("Urban", "Rural"), ("2021", "2022"), ("Online", "In store"))
_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


@dataclass(frozen=True)
class ChartSpec:
    """What is drawn: categories along x (pie: slices) and one or two series of integer values."""

    chart_type: str
    title: str
    x_label: str
    y_label: str
    categories: tuple[str, ...]
    series: tuple[tuple[str, tuple[int, ...]], ...]  # (name, one value per category)


@dataclass(frozen=True)
class Question:
    kind: str
    query: str
    answer: str


def _distinct_values(rng: random.Random, n: int, low: int, high: int) -> tuple[int, ...]:
    # Distinct values: "the largest" and "the smallest" then have exactly one answer.
    return tuple(rng.sample(range(low, high + 1), n))


def _pie_values(rng: random.Random, n: int) -> tuple[int, ...]:
    """n distinct whole percentages, each at least 5, summing to 100."""
    while True:
        cuts = sorted(rng.sample(range(5, 96), n - 1))
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
        if min(parts) >= 5 and len(set(parts)) == n:
            return tuple(parts)


def make_spec(rng: random.Random, chart_type: str) -> ChartSpec:
    """A random chart of `chart_type` (values are whole numbers, written on the chart)."""
    stem, x_label, y_label, pool = rng.choice(_TOPICS)
    if chart_type == "line":
        n = rng.randint(4, 7)
        start = rng.randint(0, len(_YEARS) - n)
        categories = _YEARS[start : start + n]
        x_label = "Year"
        series = ((y_label, _distinct_values(rng, n, 5, 95)),)
        title = f"{stem}, {categories[0]}-{categories[-1]}"
    elif chart_type == "pie":
        n = rng.randint(3, 5)
        categories = tuple(rng.sample(pool, n))
        series = (("Share (%)", _pie_values(rng, n)),)
        title = f"{stem}: share by {x_label.lower()}"
    elif chart_type == "grouped_bar":
        n = rng.randint(3, 5)
        categories = tuple(rng.sample(pool, n))
        names = rng.choice(_SERIES)
        series = tuple((name, _distinct_values(rng, n, 5, 95)) for name in names)
        title = f"{stem} by group"
    elif chart_type == "bar":
        n = rng.randint(3, 6)
        categories = tuple(rng.sample(pool, n))
        series = ((y_label, _distinct_values(rng, n, 5, 95)),)
        title = stem
    else:
        raise ConfigError(f"unknown chart type {chart_type!r}; known: {', '.join(CHART_TYPES)}")
    return ChartSpec(chart_type, title, x_label, y_label, categories, series)


def _pick_series(rng: random.Random, spec: ChartSpec) -> tuple[str, tuple[int, ...], str]:
    """A series and the words that name it in a question ("" for a single series)."""
    name, values = rng.choice(spec.series)
    return name, values, (f" for {name}" if len(spec.series) > 1 else "")


def make_question(rng: random.Random, spec: ChartSpec, kind: str) -> Question:
    """A question of `kind` about `spec`, with its answer computed from the data."""
    noun = {"pie": "slice", "line": "year"}.get(spec.chart_type, "category")
    name, values, which = _pick_series(rng, spec)
    cats = spec.categories
    if kind == "value":
        i = rng.randrange(len(cats))
        if spec.chart_type == "pie":
            query = f"What percentage does {cats[i]} account for?"
        elif spec.chart_type == "line":
            query = f"What was the value in {cats[i]}?"
        else:
            query = f"What is the value of {cats[i]}{which}?"
        return Question(kind, query, str(values[i]))
    if kind in ("largest", "smallest"):
        pick = max if kind == "largest" else min
        i = values.index(pick(values))
        word = "highest" if kind == "largest" else "lowest"
        query = f"Which {noun} has the {word} value{which}?"
        return Question(kind, query, cats[i])
    if kind == "difference":
        i, j = rng.sample(range(len(cats)), 2)
        query = f"What is the difference between {cats[i]} and {cats[j]}{which}?"
        return Question(kind, query, str(abs(values[i] - values[j])))
    if kind == "count":
        thing = {"pie": "slices", "line": "data points", "grouped_bar": "groups of bars"}.get(
            spec.chart_type, "bars")
        return Question(kind, f"How many {thing} are shown in the chart?", str(len(cats)))
    if kind == "label":
        if spec.chart_type == "pie" or rng.random() < 0.34:
            return Question(kind, "What is the title of the chart?", spec.title)
        if rng.random() < 0.5:
            return Question(kind, "What is the label of the x-axis?", spec.x_label)
        return Question(kind, "What is the label of the y-axis?", spec.y_label)
    raise ConfigError(f"unknown question kind {kind!r}; known: {', '.join(QUESTION_KINDS)}")


def render(spec: ChartSpec, *, size: int = 320) -> bytes:
    """The chart as PNG bytes, `size` pixels wide (4:3), drawn with matplotlib's Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 80
    fig = Figure(figsize=(size / dpi, size * 0.75 / dpi), dpi=dpi)
    FigureCanvasAgg(fig)  # a Figure without pyplot: no global state, no display
    ax = fig.add_subplot()
    font = max(5, round(size / 48))
    positions = range(len(spec.categories))
    if spec.chart_type == "pie":
        _, values = spec.series[0]
        labels = [f"{c} ({v}%)" for c, v in zip(spec.categories, values, strict=True)]
        ax.pie(values, labels=labels, colors=_COLOURS[: len(values)], startangle=90,
               counterclock=False, textprops={"fontsize": font})
        ax.set_aspect("equal")
    elif spec.chart_type == "line":
        _, values = spec.series[0]
        ax.plot(list(positions), values, marker="o", color=_COLOURS[0])
        for x, v in zip(positions, values, strict=True):
            ax.annotate(str(v), (x, v), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=font)
        ax.set_ylim(0, 110)
    else:
        width = 0.8 / len(spec.series)
        for k, (name, values) in enumerate(spec.series):
            xs = [p + (k - (len(spec.series) - 1) / 2) * width for p in positions]
            bars = ax.bar(xs, values, width, label=name, color=_COLOURS[k])
            ax.bar_label(bars, fontsize=font)
        if len(spec.series) > 1:  # above the tallest bar's label, never over a value
            ax.legend(fontsize=font, loc="upper center", ncols=len(spec.series), frameon=False)
        ax.set_ylim(0, 125 if len(spec.series) > 1 else 110)
    if spec.chart_type != "pie":
        ax.set_xticks(list(positions), spec.categories, fontsize=font)
        ax.tick_params(axis="y", labelsize=font)
        ax.set_xlabel(spec.x_label, fontsize=font)
        ax.set_ylabel(spec.y_label, fontsize=font)
    ax.set_title(spec.title, fontsize=font + 1)
    # Fixed margins instead of tight_layout: as readable here, and twice as fast.
    fig.subplots_adjust(left=0.16, right=0.97, top=0.88, bottom=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp in the bytes
    return buf.getvalue()


def _check_choices(given: Sequence[str], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    unknown = [g for g in given if g not in known]
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return tuple(given) or known


def make_charts(n: int, *, seed: int, split: str = "train", kinds: Sequence[str] = (),
                chart_types: Sequence[str] = (), image_size: int = 320) -> list[Example]:
    """`n` chart questions for `split`; each split draws from its own seeded stream."""
    kinds = _check_choices(kinds, QUESTION_KINDS, "question kind")
    types = _check_choices(chart_types, CHART_TYPES, "chart type")
    if n < 0 or image_size < 64:
        raise ConfigError(f"need n >= 0 and image_size >= 64, got n={n}, image_size={image_size}")
    rng = random.Random(f"nmm-charts/{seed}/{split}")  # str seeds are stable across runs
    examples = []
    for i in range(n):
        spec = make_spec(rng, rng.choice(types))
        q = make_question(rng, spec, rng.choice(kinds))
        examples.append(Example(
            id=f"synthetic-{split}-{i:05d}", image=render(spec, size=image_size), prompt=q.query,
            answers=(q.answer,),
            meta={"chart_type": spec.chart_type, "kind": q.kind,
                  "answer_type": "numeric" if q.kind in NUMERIC_KINDS else "text"},
        ))
    return examples
