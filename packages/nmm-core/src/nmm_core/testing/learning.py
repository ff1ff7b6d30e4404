"""One default train run and its comparison through a domain CLI: what the domains' learning tests check."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nmm_core.runs import read_jsonl


@dataclass
class Learned:
    """A train run's recorded settings, its comparison's report and the fine-tuned model's predictions."""

    config: dict[str, Any]
    report: dict[str, Any]
    predictions: list[dict[str, Any]]


def train_and_compare(main: Callable[[list[str]], int], train: Sequence[str], compare: Sequence[str],
                      out: Path) -> Learned:
    """Run `main(train)`, then `main(compare --adapter <its adapter>)`, each into its own folder under `out`."""
    assert main([*train, "--output-dir", str(out / "train")]) == 0
    (run,) = (out / "train").iterdir()
    assert main([*compare, "--adapter", str(run / "adapter"), "--output-dir", str(out / "compare")]) == 0
    (compared,) = (out / "compare").iterdir()
    return Learned(yaml.safe_load((run / "config.yaml").read_text()),
                   json.loads((compared / "report.json").read_text()),
                   read_jsonl(compared / "predictions-fine-tuned.jsonl"))
