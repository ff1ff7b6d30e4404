"""A competition between two models on the same examples: every pair judged by the task's primary
metric, then core's ratings (win rate with a bootstrap interval, Bradley-Terry on the Elo scale),
written into the run folder (judgements.jsonl, competition.png, a section in report.md/json).

The pair file is core's (`nmm_core.pairs`), the one the arena reads. Per pair the answer with the
better score against all references wins (within `epsilon`: a tie); the fine-tuned model's win
rate counts a tie as half.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nmm_core.errors import ConfigError, DataError
from nmm_core.metric import Metric
from nmm_core.metrics import rouge_metric
from nmm_core.pairs import Pair, read_pairs
from nmm_core.ratings import bootstrap_interval, bradley_terry
from nmm_core.seeds import part_seed

BASE, TUNED = "base", "fine-tuned"
_ROUGE_L = rouge_metric("rougeL", per_example=True)  # judge_pairs' default: sentence answers
TIE = "tie"


@dataclass(frozen=True)
class Verdict:
    """One pair's verdict: both answers' scores and the winning model's name (or "tie")."""

    pair_id: str
    left_model: str
    right_model: str
    left_score: float
    right_score: float
    winner: str


def winner(left: str, right: str, left_score: float, right_score: float, epsilon: float) -> str:
    """The model with the higher score, or "tie" when the scores are within `epsilon`."""
    if abs(left_score - right_score) <= epsilon:
        return TIE
    return left if left_score > right_score else right


def judge_pairs(pairs: Sequence[Pair], *, metric: Metric = _ROUGE_L, epsilon: float = 0.01) -> list[Verdict]:
    """Score both answers of every pair against all its references by `metric`'s per-example score;
    the better wins (`higher_is_better` says which is better)."""
    if not pairs:
        raise DataError("no pairs to judge")
    if metric.per_example is None:
        raise ConfigError(f"metric {metric.name!r} has no per-example score to judge pairs by")
    answers = [p.left.answer for p in pairs] + [p.right.answer for p in pairs]
    refs = [p.references for p in pairs] * 2
    scores = [float(metric.per_example(a, list(r))) for a, r in zip(answers, refs, strict=True)]
    sign = 1.0 if metric.higher_is_better else -1.0
    n = len(pairs)
    return [Verdict(p.pair_id, p.left.model, p.right.model, scores[i], scores[n + i],
                    winner(p.left.model, p.right.model, sign * scores[i], sign * scores[n + i], epsilon))
            for i, p in enumerate(pairs)]


def outcomes(verdicts: Sequence[Verdict], model: str) -> list[float]:
    """`model`'s result per pair: 1 win, 0.5 tie, 0 loss."""
    out = []
    for v in verdicts:
        if model not in (v.left_model, v.right_model):
            raise DataError(f"pair {v.pair_id!r}: model {model!r} did not answer it")
        out.append(0.5 if v.winner == TIE else float(v.winner == model))
    return out


def win_tie_loss(verdicts: Sequence[Verdict], model: str) -> dict[str, int]:
    """Counts of `model`'s wins, ties and losses."""
    counts = Counter(outcomes(verdicts, model))
    return {"wins": counts[1.0], "ties": counts[0.5], "losses": counts[0.0]}


def matches(verdicts: Sequence[Verdict]) -> list[tuple[str, str, float]]:
    """Verdicts as rating matches: (left, right, 1 left wins | 0.5 tie | 0 right wins)."""
    return [(v.left_model, v.right_model, 0.5 if v.winner == TIE else float(v.winner == v.left_model))
            for v in verdicts]


def summarise(verdicts: Sequence[Verdict], *, model: str, opponent: str, samples: int = 2000,
              level: float = 0.95, seed: int = 0, prior: float = 1.0) -> dict:
    """Win/tie/loss of `model` against `opponent`, its win rate (ties half) with CI, BT ratings."""
    values = outcomes(verdicts, model)
    low, high = bootstrap_interval(values, resamples=samples, level=level, seed=seed)
    return {
        "model": model, "opponent": opponent, "pairs": len(values), **win_tie_loss(verdicts, model),
        "win_rate": sum(values) / len(values), "ci_low": low, "ci_high": high, "ci_level": level,
        "bootstrap_samples": samples, "bootstrap_seed": seed,
        "bradley_terry": bradley_terry(matches(verdicts), prior=prior), "bt_prior_ties": prior,
    }


@dataclass
class JudgeSettings:
    """How pairs are judged automatically."""

    epsilon: float = field(default=0.01, metadata={
        "help": "difference in the task's primary metric counted as a tie"})
    bootstrap: int = field(default=2000, metadata={"help": "bootstrap resamples of the win rate"})
    level: float = field(default=0.95, metadata={"help": "confidence level of the interval"})
    seed: int | None = field(default=None, metadata={"help": "seed of the sides' shuffle and the bootstrap "
                                                             "(default: the run seed)"})
    prior: float = field(default=1.0, metadata={"help": "virtual ties added in Bradley-Terry"})

    def __post_init__(self) -> None:
        if self.epsilon < 0 or self.bootstrap < 1 or not 0 < self.level < 1:
            raise ConfigError("judge: need epsilon >= 0, bootstrap >= 1 and 0 < level < 1")


def judge_run(folder: Path, settings: JudgeSettings, *, metric: Metric) -> dict[str, float]:
    """Judge the run's pairs.jsonl, write the competition outputs; the win rate and its interval."""
    verdicts = judge_pairs(read_pairs(folder / "pairs.jsonl"), metric=metric, epsilon=settings.epsilon)
    summary = summarise(verdicts, model=TUNED, opponent=BASE, samples=settings.bootstrap,
                        level=settings.level, seed=part_seed(settings.seed), prior=settings.prior)
    summary.update(metric=metric.name, epsilon=settings.epsilon)
    write_competition(folder, verdicts, summary)
    print(competition_line(summary))
    return {"win_rate": summary["win_rate"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"]}


def competition_line(s: dict) -> str:
    """One line: W/T/L, win rate with its interval, ratings."""
    ratings = ", ".join(f"{m} {r:.0f}" for m, r in s["bradley_terry"].items())
    return (f"{s['model']} vs {s['opponent']}: {s['wins']} wins, {s['ties']} ties, {s['losses']} losses; "
            f"win rate {s['win_rate']:.3f} ({s['ci_level']:.0%} CI {s['ci_low']:.3f}-{s['ci_high']:.3f}); "
            f"Bradley-Terry (Elo scale): {ratings}")


def write_competition(folder: Path, verdicts: list[Verdict], summary: dict) -> None:
    """judgements.jsonl, competition.png, and a competition section in report.json and report.md."""
    from nmm_core.runs import atomic_write_json, atomic_write_text

    atomic_write_text(folder / "judgements.jsonl",
                      "".join(json.dumps(asdict(v), ensure_ascii=False) + "\n" for v in verdicts))
    report = json.loads((folder / "report.json").read_text())
    report["competition"] = summary
    atomic_write_json(folder / "report.json", report)
    plot_competition(summary, folder / "competition.png")
    s = summary
    lines = [
        "", "## Competition (automatic judge)", "",
        f"Each pair: the answer with the higher {s['metric']} against all references wins; within "
        f"{s['epsilon']} it is a tie. Sides were shuffled (seed {s['bootstrap_seed']}) in `pairs.jsonl`.", "",
        "| model | wins | ties | losses | win rate (ties half) | "
        f"{s['ci_level']:.0%} CI (bootstrap, {s['bootstrap_samples']}) |",
        "|---|---|---|---|---|---|",
        f"| {s['model']} vs {s['opponent']} | {s['wins']} | {s['ties']} | {s['losses']} | "
        f"{s['win_rate']:.3f} | {s['ci_low']:.3f} - {s['ci_high']:.3f} |", "",
        "| model | Bradley-Terry rating (Elo scale) |", "|---|---|",
        *(f"| {m} | {r:.1f} |" for m, r in sorted(s["bradley_terry"].items(), key=lambda kv: -kv[1])),
        "", "![competition](competition.png)",
    ]
    md = (folder / "report.md").read_text()
    atomic_write_text(folder / "report.md", md + "\n".join(lines) + "\n")


def plot_competition(s: dict, path: Path) -> Path:
    """Stacked win/tie/loss bar and the win rate with its interval."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nmm_core.runs import atomic_write_bytes

    fig = Figure(figsize=(7, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    left = 0
    for label, count, colour in (("wins", s["wins"], "#55A868"), ("ties", s["ties"], "#AAAAAA"),
                                 ("losses", s["losses"], "#C44E52")):
        ax.barh([0], [count], left=left, color=colour, label=f"{label} {count}")
        left += count
    ax.set_yticks([0], [f"{s['model']}\nvs {s['opponent']}"])
    ax.set_xlabel("pairs")
    ax.legend(fontsize=8, loc="lower right")
    ax2.errorbar([0], [s["win_rate"]], yerr=[[s["win_rate"] - s["ci_low"]], [s["ci_high"] - s["win_rate"]]],
                 fmt="o", capsize=6)
    ax2.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax2.set_ylim(0, 1)
    ax2.set_xticks([])
    ax2.set_title(f"win rate, {s['ci_level']:.0%} CI", fontsize=9)
    fig.suptitle(f"{s['model']} vs {s['opponent']} ({s['metric']})")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path
