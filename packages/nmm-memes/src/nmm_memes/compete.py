"""`compete`: base vs fine-tuned on the same held-out memes, a blind pair file, automatic judging.

The pair file is core's (`nmm_core.pairs`), the one the arena reads. Judging: per pair the
answer with the higher ROUGE-L against all references wins (a tie within `epsilon`); the
fine-tuned model's win rate (ties half) gets a seeded bootstrap interval, and both models a
Bradley-Terry rating on the Elo scale.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nmm_core.domain import Domain, run_domain_eval
from nmm_core.errors import ConfigError
from nmm_core.metric import Metric
from nmm_core.seeds import part_seed
from nmm_memes.gill import refuse_gill
from nmm_memes.judge import Verdict, judge_pairs, summarise

BASE, TUNED = "base", "fine-tuned"


@dataclass
class JudgeSettings:
    """How pairs are judged automatically."""

    epsilon: float = field(default=0.01, metadata={"help": "ROUGE-L difference counted as a tie"})
    bootstrap: int = field(default=2000, metadata={"help": "bootstrap resamples of the win rate"})
    level: float = field(default=0.95, metadata={"help": "confidence level of the interval"})
    seed: int | None = field(default=None, metadata={"help": "seed of the sides' shuffle and the bootstrap "
                                                             "(default: the run seed)"})
    prior: float = field(default=1.0, metadata={"help": "virtual ties added in Bradley-Terry"})

    def __post_init__(self) -> None:
        if self.epsilon < 0 or self.bootstrap < 1 or not 0 < self.level < 1:
            raise ConfigError("judge: need epsilon >= 0, bootstrap >= 1 and 0 < level < 1")


def compete_config(evaluate: type) -> type:
    """`compete`'s settings: the domain's `eval` settings and how its pairs are judged."""

    @dataclass
    class CompeteConfig(evaluate):
        """`compete`: base vs fine-tuned on the same held-out memes; blind pairs + automatic judging."""

        judge: JudgeSettings = field(default_factory=JudgeSettings)

    return CompeteConfig


def run_compete(memes: Domain, cfg: Any) -> Path:
    """The kit's `compare` on the memes (pairs.jsonl, report) as a `compete` run, its pairs judged into it."""
    metric = memes.task.primary_metric
    return run_domain_eval(memes, refuse_gill(cfg, "compete"), compare=True, kind="compete", seed=cfg.judge.seed,
                           finish=lambda folder: judge_run(folder, cfg.judge, metric=metric))


def judge_run(folder: Path, settings: JudgeSettings, *, metric: str | Metric) -> dict[str, float]:
    """Judge the run's pairs.jsonl, write the competition outputs; the win rate and its interval."""
    from nmm_core.pairs import read_pairs

    verdicts = judge_pairs(read_pairs(folder / "pairs.jsonl"), metric=metric, epsilon=settings.epsilon)
    summary = summarise(verdicts, model=TUNED, opponent=BASE, samples=settings.bootstrap,
                        level=settings.level, seed=part_seed(settings.seed), prior=settings.prior)
    summary.update(metric=metric.name if isinstance(metric, Metric) else metric, epsilon=settings.epsilon)
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
