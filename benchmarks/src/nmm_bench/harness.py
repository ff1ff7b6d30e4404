"""Timing, machine facts and result files shared by every benchmark."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
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
    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "accelerate", "nmm-core"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], *, warmup: int, repeats: int) -> list[float]:
    """Wall seconds of `repeats` calls of `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


@dataclass
class Row:
    """One contender's measurement; `ratio` is against the benchmark's reference row."""

    label: str
    value: float  # in `unit`, higher is better
    unit: str
    raw_seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None


@dataclass
class Result:
    """A benchmark's rows, settings and environment, written as one JSON file."""

    name: str
    size: str
    reference: str
    settings: dict[str, Any]
    rows: list[Row]
    checks: dict[str, Any] = field(default_factory=dict)
    device: str = field(default_factory=device_name)
    versions: dict[str, str] = field(default_factory=versions)

    def __post_init__(self) -> None:
        ref = next(r for r in self.rows if r.label == self.reference)
        for row in self.rows:
            row.ratio = row.value / ref.value if ref.value else None

    def write(self, folder: Path = RESULTS) -> Path:
        """`<folder>/<name>-<size>-<device>.json`, atomically."""
        path = folder / f"{self.name}-{self.size}-{self.device.replace(' ', '-').lower()}.json"
        atomic_write_json(path, asdict(self))
        return path

    def table(self) -> str:
        lines = [f"{self.name} [{self.size}, {self.device}] (ratio vs {self.reference})"]
        for r in self.rows:
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
            lines.append(f"  {r.label:<34} {r.value:>12.3f} {r.unit:<14} {ratio:>8}")
        for key, value in self.checks.items():
            lines.append(f"  check {key}: {value}")
        return "\n".join(lines)
