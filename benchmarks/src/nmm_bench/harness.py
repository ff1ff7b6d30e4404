"""Timing, machine facts and result files shared by every benchmark."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from nmm_core.runs import atomic_write_json

RESULTS = Path(__file__).resolve().parents[2] / "results"


def device_name() -> str:
    """The accelerator's name, or the CPU's core count."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu-{os.cpu_count()}cores"


def versions() -> dict[str, str]:
    """Versions of the libraries whose speed is measured."""
    from nmm_core import __version__

    # nmm's own version from the import, so a tree run with PYTHONPATH (not installed) has one too
    out = {"python": platform.python_version(), "nmm-core": __version__}
    for dist in ("torch", "transformers", "peft", "accelerate"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


Seconds = dict[str, list[float]]  # contender -> seconds per round


def round_order(labels: Sequence[str], r: int) -> list[str]:
    """Contenders' order in round `r`: rotated every other round, reversed in odd rounds, so no
    contender always runs first or always right after the same one (3 contenders: all 6 orders)."""
    k = (r // 2) % len(labels)
    order = list(labels[k:]) + list(labels[:k])
    return order[::-1] if r % 2 else order


def interleaved(contenders: dict[str, Callable[[], Any]], *, rounds: int) -> tuple[Seconds, dict[str, Any]]:
    """Seconds per round of each contender, timed in interleaved rounds after one untimed call of
    each, so a drift of the machine's speed falls on every contender alike; plus each one's last output."""
    outputs = {label: fn() for label, fn in contenders.items()}
    seconds: Seconds = {label: [0.0] * rounds for label in contenders}
    for r in range(rounds):
        for label in round_order(list(contenders), r):
            sync()
            t0 = time.perf_counter()
            outputs[label] = contenders[label]()
            sync()
            seconds[label][r] = time.perf_counter() - t0
    return seconds, outputs


def time_ratios(seconds: Seconds, label: str, reference: str) -> list[float]:
    """Per round: `label`'s time / `reference`'s time in the same round."""
    return [t / ref for t, ref in zip(seconds[label], seconds[reference], strict=True)]


def ratio_verdict(ratios: Sequence[float], target: float) -> dict[str, Any]:
    """Median of per-round time ratios, their range, and whether the range clears `target`
    (conclusive when every round falls on the same side of it)."""
    low, high = min(ratios), max(ratios)
    median = statistics.median(ratios)
    return {"median": round(median, 3), "range": [round(low, 3), round(high, 3)],
            "target_met": median <= target, "conclusive": high <= target or low > target}


@dataclass
class Row:
    """One contender's measurement; `ratio` is against the benchmark's reference row."""

    label: str
    value: float  # in `unit`, higher is better
    unit: str
    raw_seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None


def round_rows(seconds: Seconds, count: int, unit: str, reference: str) -> list[Row]:
    """One row per contender of `interleaved`: median, min and max of `count` / seconds, and each
    round's time / the reference's time in that round."""
    rows = []
    for label, times in seconds.items():
        rates = [count / t for t in times]
        per_round = [round(x, 3) for x in time_ratios(seconds, label, reference)]
        extra = {"min": min(rates), "max": max(rates), f"time / {reference} time, per round": per_round}
        rows.append(Row(label, statistics.median(rates), unit, times, extra))
    return rows


@dataclass
class Result:
    """A benchmark's rows, settings and environment, written as one JSON file."""

    name: str
    size: str
    reference: str
    settings: dict[str, Any]
    rows: list[Row]
    checks: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # the headline figures (issue 22's keys)
    device: str = field(default_factory=device_name)
    versions: dict[str, str] = field(default_factory=versions)
    provenance: dict[str, Any] = field(default_factory=dict)  # set by `write`

    def __post_init__(self) -> None:
        ref = next(r for r in self.rows if r.label == self.reference)
        for row in self.rows:
            row.ratio = row.value / ref.value if ref.value else None

    def write(self, provenance: dict[str, Any], folder: Path = RESULTS) -> Path:
        """`<folder>/<name>-<size>-<device>.json` with its `provenance` (commit, dirty, date), atomically."""
        self.provenance = provenance
        path = folder / f"{self.name}-{self.size}-{self.device.replace(' ', '-').lower()}.json"
        data = asdict(self)
        data["summary"] = data.pop("summary")  # the file ends with its headline figures
        atomic_write_json(path, data)
        return path

    def table(self) -> str:
        """The rows as aligned columns (label, value, unit, ratio), then the checks and summary."""
        lines = [f"{self.name} [{self.size}, {self.device}] (ratio vs {self.reference})"]
        cells = [(r.label, f"{r.value:.3f}", r.unit, f"{r.ratio:.2f}x" if r.ratio is not None else "-")
                 for r in self.rows]
        # each column as wide as its widest cell: a long label no longer pushes its row's numbers out
        widths = [max((len(row[i]) for row in cells), default=0) for i in range(4)]
        for label, value, unit, ratio in cells:
            lines.append(f"  {label:<{widths[0]}}  {value:>{widths[1]}} {unit:<{widths[2]}}  {ratio:>{widths[3]}}")
        for key, value in self.checks.items():
            lines.append(f"  check {key}: {value}")
        if self.summary:
            lines.append(f"  summary: {self.summary}")
        return "\n".join(lines)
