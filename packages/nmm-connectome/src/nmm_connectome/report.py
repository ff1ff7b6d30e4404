"""The comparison report: Markdown + JSON + PNG (matrices side by side, edge scatter, bars)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmm_connectome.evaluate import Scores, from_edges
from nmm_core.report import pyplot, save_png
from nmm_core.runs import atomic_write_json, atomic_write_text

BASELINES = ("rest FC", "group mean", "ridge (PCA ")  # name prefixes: the ridge row names its PCA size
_COLUMNS = (("r", "r"), ("r_subject", "subject-specific r"), ("mae", "MAE"),
            ("identification", "identification"))


def verdicts(scores: Sequence[Scores]) -> list[str]:
    """One sentence per non-baseline method: does it beat the rest-FC and group-mean baselines
    on subject-specific r, with the numbers."""
    by_name = {s.method: s.summary() for s in scores}
    rest, mean = by_name.get("rest FC"), by_name.get("group mean")
    lines = []
    for s in scores:
        if s.method.startswith(BASELINES) or rest is None or mean is None:
            continue
        mine = by_name[s.method]["r_subject"]
        beats = mine > rest["r_subject"] and mine > mean["r_subject"]
        lines.append(f"{s.method} {'beats' if beats else 'does not beat'} the rest-FC and group-mean "
                     f"baselines on subject-specific r: {mine:.3f} vs {rest['r_subject']:.3f} and "
                     f"{mean['r_subject']:.3f}.")
    return lines


def markdown(scores: Sequence[Scores], *, title: str, context: dict[str, Any]) -> str:
    """The report as Markdown: context, one table row per method, verdicts, figure links."""
    lines = [f"# {title}", ""]
    lines += [f"- {k}: {v}" for k, v in context.items()]
    lines += ["", "| method | " + " | ".join(name for _, name in _COLUMNS) + " |",
              "|---|" + "---|" * len(_COLUMNS)]
    for s in scores:
        m = s.summary()
        cells = [f"{m['r']:.3f} ± {m['r_sd']:.3f}", f"{m['r_subject']:.3f} ± {m['r_subject_sd']:.3f}",
                 f"{m['mae']:.4f}", f"{m['identification']:.2f}"]
        lines.append(f"| {s.method} | " + " | ".join(cells) + " |")
    lines += ["", "Per held-out subject, on upper-triangle edges: Pearson r with the true task FC; the same "
              "after subtracting the training subjects' mean task FC from both (a prediction with no "
              "subject-specific part scores 0); mean absolute error; identification = share of "
              "predictions closer (Pearson r) to their own subject's task FC than to any other's.", ""]
    lines += verdicts(scores)
    lines += ["", "![methods](methods.png)", "", "![matrices](matrices.png)", "", "![edges](edges.png)", ""]
    return "\n".join(lines)


def plot_methods(scores: Sequence[Scores], path: Path) -> Path:
    """Bars per method for r, subject-specific r and identification (0-1), MAE on its own axis."""
    plt = pyplot()
    fig, (ax, ax_mae) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    keys = [("r", "r"), ("r_subject", "subject-specific r"), ("identification", "identification")]
    width = 0.8 / len(scores)
    for i, s in enumerate(scores):
        m = s.summary()
        xs = [j + i * width for j in range(len(keys))]
        bars = ax.bar(xs, [m[k] for k, _ in keys], width, label=s.method)
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
        ax_mae.bar(i, m["mae"], color=bars.patches[0].get_facecolor())
    ax.set_xticks([j + width * (len(scores) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels([name for _, name in keys])
    ax.set_ylim(min(0.0, min(s.r_subject.mean() for s in scores)) - 0.05, 1.1)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title("Held-out subjects (higher is better)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax_mae.set_xticks(range(len(scores)))
    ax_mae.set_xticklabels([s.method for s in scores], rotation=60, ha="right", fontsize=7)
    ax_mae.set_title("MAE (lower is better)")
    return save_png(fig, path, dpi=110)


def plot_matrices(subject: str, rest: np.ndarray, true: np.ndarray, predictions: dict[str, np.ndarray],
                  path: Path, *, diagonal: float = 1.0) -> Path:
    """One subject: rest FC, true task FC and each method's prediction, on one colour scale."""
    plt = pyplot()
    # the rest-FC baseline is the input panel already
    panels = [("rest FC (input)", rest), ("true task FC", true)]
    panels += [(k, v) for k, v in predictions.items() if k != "rest FC"]
    mats = [from_edges(np.asarray(m), diagonal) if np.ndim(m) == 1 else np.asarray(m) for _, m in panels]
    vmax = max(float(np.abs(m[~np.eye(len(m), dtype=bool)]).max()) for m in mats)
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    # constrained layout keeps the wrapped titles, the colour bar and the suptitle apart
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    for ax, (name, _), m in zip(axes.flat, panels, mats, strict=False):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(textwrap.fill(name, 24), fontsize=8)  # a long method name would run into its neighbour
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="FC")
    fig.suptitle(f"Subject {subject}: true vs predicted task FC")
    return save_png(fig, path, dpi=110)


def plot_edges(subject: str, true: np.ndarray, predictions: dict[str, np.ndarray], group_mean: np.ndarray,
               path: Path) -> Path:
    """One subject, one panel per method: predicted vs true edges, both minus the group mean
    (the subject-specific part; raw edges are dominated by the shared network structure)."""
    from nmm_connectome.evaluate import pearson_rows

    plt = pyplot()
    shown = {k: v for k, v in predictions.items() if k != "group mean"}
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows), squeeze=False)
    x = true - group_mean
    lim = float(np.abs(x).max()) * 1.1
    for ax, (name, pred) in zip(axes.flat, shown.items(), strict=False):
        y = pred - group_mean
        r = float(pearson_rows(y[None], x[None])[0])
        ax.scatter(x, y, s=4, alpha=0.5)
        ax.plot([-lim, lim], [-lim, lim], color="black", linewidth=0.6)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
        ax.set_title(f"{name}\nr = {r:.2f}", fontsize=8)
        ax.set_xlabel("true - group mean", fontsize=7)
        ax.set_ylabel("predicted - group mean", fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle(f"Subject {subject}: subject-specific part of each edge")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def write_report(folder: Path, scores: Sequence[Scores], *, subject: str, rest: np.ndarray, true: np.ndarray,
                 predictions: dict[str, np.ndarray], group_mean: np.ndarray, title: str,
                 context: dict[str, Any], diagonal: float = 1.0, extra: dict[str, Any] | None = None) -> Path:
    """report.md, report.json, methods.png, matrices.png, edges.png in `folder`.

    rest, true, group_mean, predictions[...] : edge vectors (E,) of the example `subject`.
    """
    atomic_write_json(folder / "report.json", {
        "title": title, "context": context,
        "methods": {s.method: s.summary() for s in scores},
        "per_subject": {s.method: s.per_subject() for s in scores},
        "verdicts": verdicts(scores), "example_subject": subject, **(extra or {}),
    })
    atomic_write_text(folder / "report.md", markdown(scores, title=title, context=context))
    plot_methods(scores, folder / "methods.png")
    plot_matrices(subject, rest, true, predictions, folder / "matrices.png", diagonal=diagonal)
    plot_edges(subject, true, predictions, group_mean, folder / "edges.png")
    return folder / "report.md"


def table(scores: Sequence[Scores]) -> str:
    """A plain-text table for the terminal."""
    w = max(len(s.method) for s in scores)
    rows = [f"{'method':<{w}} {'r':>6} {'subj r':>7} {'MAE':>7} {'ident':>6}"]
    for s in scores:
        m = s.summary()
        rows.append(f"{s.method:<{w}} {m['r']:>6.3f} {m['r_subject']:>7.3f} {m['mae']:>7.4f} "
                    f"{m['identification']:>6.2f}")
    return "\n".join(rows)


def plot_training(rows: list[dict], path: Path) -> Path | None:
    """Training and validation loss against step (bridge runs)."""
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker=".", label="train")
    if any("val_loss" in r for r in rows):
        val = [r for r in rows if "val_loss" in r]
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], marker=".", label="validation")
    ax.set(xlabel="step", ylabel="weighted drift loss (B4)", title="Bridge matching")
    ax.set_yscale("log")
    ax.legend()
    return save_png(fig, path, dpi=110)
