"""The offline default learns: `nmm-charts train` then `compare` with the twin's recipe beats the base."""

from __future__ import annotations

import json

import pytest
import yaml

from nmm_charts.cli import main
from nmm_core.metrics import relaxed_accuracy

# The default commands, at a smaller set (the recipe's lr, batch, epochs and projector apply).
SYNTH = ["--synthetic-train-size", "600", "--synthetic-val-size", "0", "--synthetic-test-size", "100"]


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One default train run and its compare: (train config.yaml, compare report.json, predictions)."""
    out = tmp_path_factory.mktemp("charts-learning")
    assert main(["train", *SYNTH, "--output-dir", str(out / "train")]) == 0
    (run,) = (out / "train").iterdir()
    assert main(["compare", *SYNTH, "--adapter", str(run / "adapter"), "--output-dir", str(out / "cmp")]) == 0
    (cmp_run,) = (out / "cmp").iterdir()
    rows = [json.loads(line) for line in (cmp_run / "predictions-fine-tuned.jsonl").read_text().splitlines()]
    return (yaml.safe_load((run / "config.yaml").read_text()),
            json.loads((cmp_run / "report.json").read_text()), rows)


@pytest.mark.slow
def test_charts_default_records_the_twin_recipe(learned):
    config, _, _ = learned
    assert config["model"]["model"] == "tiny-qwen2-vl"
    assert (config["train"]["lr"], config["train"]["epochs"], config["train"]["batch_size"]) == (3e-3, 3.0, 16)
    assert config["lora"]["train_projector"] is True


@pytest.mark.slow
def test_charts_default_fine_tuned_beats_base_with_interval_above_zero(learned):
    _, report, _ = learned
    base, tuned = report["results"]
    assert base["relaxed_accuracy"] == 0.0  # the random twin answers nothing right
    assert tuned["relaxed_accuracy"] >= 0.08, report
    low, _ = report["delta_ci95_vs_first"]["fine-tuned"]
    assert low > 0, report


@pytest.mark.slow
def test_charts_default_beats_every_constant_answer(learned):
    """Not only the answer prior: no single answer given to every question scores as well."""
    _, report, rows = learned
    references = [r["references"] for r in rows]
    candidates = {ref for refs in references for ref in refs}
    best = max(relaxed_accuracy([c] * len(rows), references) for c in candidates)
    assert report["results"][1]["relaxed_accuracy"] > best, best
