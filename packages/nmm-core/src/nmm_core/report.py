"""Reports: base vs fine-tuned (or any models) on the same examples, as JSON, Markdown and PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nmm_core.evaluate import EvalResult
from nmm_core.metric import Metric
from nmm_core.records import Example, ValidationReport, load_image
from nmm_core.runs import atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl


def _png(fig, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def pyplot():
    """matplotlib.pyplot on the Agg backend: figures for files, never a display."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(results: Sequence[EvalResult], path: Path, *, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per model (every metric is in [0, 1])."""
    plt = pyplot()
    keys = list(results[0].metrics)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(keys)), 3.6))
    width = 0.8 / len(results)
    for i, res in enumerate(results):
        values = [res.metrics[k] for k in keys]
        xs = [j + i * width for j in range(len(keys))]
        bars = ax.bar(xs, values, width, label=f"{res.name} ({res.seconds_per_example:.4f} s/ex)")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels(keys, rotation=20, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return path


def plot_loss(metrics_jsonl: Path, path: Path) -> Path | None:
    """Training loss against optimiser step, from the run's metrics.jsonl, with the validation loss
    (and a generated metric, on its own axis) where the run validated."""
    rows = read_jsonl(metrics_jsonl) if metrics_jsonl.exists() else []
    train = [r for r in rows if "loss" in r]
    if not train:
        return None
    val = [r for r in rows if "eval_loss" in r]
    extra = sorted({k for r in rows for k in r if k.startswith("eval_") and k not in _EVAL_TIMINGS})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], marker=".", label="training")
    if val:
        ax.plot([r["step"] for r in val], [r["eval_loss"] for r in val], marker="o", label="validation")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title("Training and validation loss" if val else "Training loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    for key in extra[:1]:  # the task's primary metric, from generated answers
        scored = [r for r in rows if key in r]
        twin = ax.twinx()
        twin.plot([r["step"] for r in scored], [r[key] for r in scored], marker="s", color="tab:green",
                  label=f"validation {key[5:]}")
        twin.set_ylabel(key[5:])
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if val:
        ax.legend(handles, labels, fontsize=8)
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return path


# what the Trainer's eval loop logs beside the loss: timings, not measures of the model
_EVAL_TIMINGS = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}


def markdown_table(results: Sequence[EvalResult]) -> str:
    """One row per model: every metric and the time per example."""
    keys = list(results[0].metrics)
    head = "| model | n | " + " | ".join(keys) + " | s/example |"
    rule = "|" + "---|" * (len(keys) + 3)
    rows = [
        f"| {r.name} | {len(r.predictions)} | "
        + " | ".join(f"{r.metrics[k]:.4f}" for k in keys)
        + f" | {r.seconds_per_example:.4f} |"
        for r in results
    ]
    return "\n".join([head, rule, *rows])


def print_table(results: Sequence[EvalResult], *, title: str) -> None:
    """The summary table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    keys = list(results[0].metrics)
    table = Table(title=title)
    for col in ["model", *keys, "s/example"]:
        table.add_column(col, justify="left" if col == "model" else "right")
    rows = [[r.name, *(f"{r.metrics[k]:.3f}" for k in keys), f"{r.seconds_per_example:.4f}"] for r in results]
    for row in rows:
        table.add_row(*row)
    # wide enough for every header whole: rich cuts what does not fit to "clos…"
    cells = [["model", *keys, "s/example"], *rows]
    needed = sum(max(len(row[i]) for row in cells) + 3 for i in range(len(cells[0]))) + 1
    Console(width=max(100, Console().width, needed)).print(table)


def paired_interval(first: EvalResult, other: EvalResult, metric: str, *,
                    seed: int = 0) -> tuple[float, float] | None:
    """95% paired-bootstrap interval (resampled with `seed`) of `other`'s mean per-example `metric`
    minus `first`'s (rows matched by id); None unless both answered the same examples and score
    each one (not BLEU)."""
    import math

    from nmm_core.ratings import bootstrap_interval

    def by_id(result: EvalResult) -> dict[Any, Any] | None:
        ids = [row.get("id") for row in result.predictions]
        if None in ids or len(set(ids)) != len(ids):
            return None  # rows without ids, or repeated ones: no pairing to trust
        return {row["id"]: row.get(metric) for row in result.predictions}

    a, b = by_id(first), by_id(other)
    if not a or b is None or a.keys() != b.keys():
        return None  # the two did not answer the same examples
    values = [v for scores in (a, b) for v in scores.values()]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return bootstrap_interval([b[k] - a[k] for k in a], seed=seed)


def _name_and_direction(primary: str | Metric) -> tuple[str, bool]:
    # a bare name (a detector's mAP50) is higher-is-better, resampled where rows hold it
    return (primary.name, primary.higher_is_better) if isinstance(primary, Metric) else (primary, True)


def _intervals(results: Sequence[EvalResult], primary: str | Metric,
               seed: int) -> dict[str, tuple[float, float] | None]:
    base, *others = results
    if isinstance(primary, Metric) and primary.is_corpus_level:  # nothing per example to resample (BLEU)
        return {o.name: None for o in others}
    return {o.name: paired_interval(base, o, _name_and_direction(primary)[0], seed=seed) for o in others}


def delta_lines(results: Sequence[EvalResult], primary: str | Metric,
                intervals: dict[str, tuple[float, float] | None] | None = None, *, seed: int = 0) -> list[str]:
    """One line per model after the first: its `primary` difference and, where the metric is
    scored per example, the 95% paired-bootstrap interval and what it says."""
    name, higher_is_better = _name_and_direction(primary)
    base, *others = results
    if intervals is None:
        intervals = _intervals(results, primary, seed)
    lines = []
    for other in others:
        line = f"{other.name} {other.metrics[name] - base.metrics[name]:+.4f} vs {base.name}"
        if not higher_is_better:
            line += " (lower is better)"
        if intervals[other.name] is not None:
            low, high = intervals[other.name]
            verdict = "a difference" if low > 0 or high < 0 else "no clear difference: the interval holds 0"
            line += (f" (95% interval {low:+.4f} to {high:+.4f}, paired bootstrap over "
                     f"{len(other.predictions)} examples: {verdict})")
        lines.append(line)
    return lines


def write_comparison(results: Sequence[EvalResult], folder: Path, *, title: str,
                     primary: str | Metric, context: dict[str, Any] | None = None,
                     breakdown: dict[str, dict[str, float]] | None = None, seed: int = 0,
                     records: dict[str, Any] | None = None) -> dict[str, Path]:
    """report.json, report.md and metrics.png comparing `results` (same examples, same settings);
    `primary` (a task's `primary_metric`, or a name read as higher-is-better) heads the deltas;
    `seed` draws the bootstrap's resamples; `records` (`record_counts`) says how many records were
    used, skipped, and where the skips are listed."""
    name, higher_is_better = _name_and_direction(primary)
    base, *others = results
    delta = {o.name: o.metrics[name] - base.metrics[name] for o in others}
    intervals = _intervals(results, primary, seed)
    payload = {
        "title": title,
        "primary_metric": name,
        "primary_higher_is_better": higher_is_better,
        "results": [r.summary() for r in results],
        "delta_vs_first": delta,
        # how sure the delta is: it resamples the examples, so a small set shows a wide interval
        "delta_ci95_vs_first": {name: list(ci) for name, ci in intervals.items() if ci is not None},
        "bootstrap_seed": seed,
        "breakdown": breakdown or {},
        "context": context or {},
        "records": records or {},
    }
    files = {"json": folder / "report.json", "md": folder / "report.md", "png": folder / "metrics.png"}
    atomic_write_json(files["json"], payload)
    plot_metrics(results, files["png"], title=title)
    lines = [f"# {title}", "", markdown_table(results), ""]
    lines += [f"- **{name}**: {line}" for line in delta_lines(results, primary, intervals, seed=seed)]
    if records:
        lines.append(f"- **records**: {records_line(records)}")
    if breakdown:
        lines += ["", f"## {name} by example kind", "",
                  "| kind | " + " | ".join(breakdown) + " |", "|---|" + "---|" * len(breakdown)]
        kinds = sorted({k for v in breakdown.values() for k in v})
        for kind in kinds:
            lines.append(f"| {kind} | " + " | ".join(
                f"{breakdown[m].get(kind, float('nan')):.3f}" for m in breakdown) + " |")
    if context:
        lines += ["", "## Settings", "", "```yaml"]
        lines += [f"{k}: {v}" for k, v in context.items()] + ["```"]
    lines += ["", "![metrics](metrics.png)"]
    if (folder / "loss.png").exists():
        lines.append("![loss](loss.png)")
    atomic_write_text(files["md"], "\n".join(lines) + "\n")
    return files


def record_counts(report: ValidationReport, listed_in: str | None) -> dict[str, Any]:
    """How many records of a split were used and skipped, and the file (in the run) that lists the skips."""
    return {"used": len(report.kept), "total": report.total, "skipped": report.skipped,
            "listed_in": listed_in if report.skipped else None}


def records_line(records: dict[str, Any]) -> str:
    """`record_counts` as one sentence for report.md."""
    line = f"{records['used']} of {records['total']} used"
    if records["skipped"]:
        listed = f", listed in {records['listed_in']}" if records["listed_in"] else ""
        line += f"; {records['skipped']} skipped{listed}"
    return line


def breakdown_by(result: EvalResult, kinds: Sequence[str], metric: str) -> dict[str, float]:
    """Mean per-example `metric` of `result` grouped by each example's kind."""
    groups: dict[str, list[float]] = {}
    for row, kind in zip(result.predictions, kinds, strict=False):
        groups.setdefault(kind, []).append(float(row[metric]))
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}


def save_png(fig, path: Path, *, dpi: int = 120) -> Path:
    """Write `fig` to `path` as a PNG, atomically, and close it."""
    atomic_write_bytes(path, _png(fig, dpi))
    pyplot().close(fig)
    return path


def sample_grid(examples: list[Example], path: str | Path, *, columns: int = 4,
                title: str = "") -> Path:
    """A PNG grid of `examples`' images, each with its question and first answer below it (`data inspect`)."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nmm_core.errors import DataError

    if not examples:
        raise DataError("no usable records to draw a sample grid from")
    rows = -(-len(examples) // columns)
    fig = Figure(figsize=(3.2 * columns, 3.4 * rows), dpi=90)
    FigureCanvasAgg(fig)
    for i, ex in enumerate(examples):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(load_image(ex))
        ax.set_axis_off()
        caption = textwrap.fill(f"Q: {ex.prompt}", 42) + "\n" + textwrap.fill(f"A: {ex.answers[0]}", 42)
        ax.set_title(caption, fontsize=7, loc="left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
