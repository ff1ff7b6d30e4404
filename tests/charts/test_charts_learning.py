"""The offline default learns: `nmm-charts train` then `compare` with the twin's recipe beats the base."""

from __future__ import annotations

import pytest

from nmm_charts.cli import main
from nmm_core.metrics import relaxed_accuracy
from nmm_core.testing.learning import train_and_compare

# The default commands, at a smaller set (the recipe's lr, batch, epochs and projector apply).
SYNTH = ["--synthetic-train-size", "600", "--synthetic-val-size", "0", "--synthetic-test-size", "100"]


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One default train run and its compare, shared by the checks below."""
    return train_and_compare(main, ["train", *SYNTH], ["compare", *SYNTH], tmp_path_factory.mktemp("charts"))


@pytest.mark.slow
def test_charts_default_records_the_twin_recipe(learned):
    config = learned.config
    assert config["model"]["model"] == "tiny-qwen2-vl"
    assert (config["train"]["lr"], config["train"]["epochs"], config["train"]["batch_size"]) == (3e-3, 3.0, 16)
    assert config["lora"]["train_projector"] is True


@pytest.mark.slow
def test_charts_default_fine_tuned_beats_base_with_interval_above_zero(learned):
    base, tuned = learned.report["results"]
    assert base["relaxed_accuracy"] == 0.0  # the random twin answers nothing right
    assert tuned["relaxed_accuracy"] >= 0.08, learned.report
    low, _ = learned.report["delta_ci95_vs_first"]["fine-tuned"]
    assert low > 0, learned.report


@pytest.mark.slow
def test_charts_default_beats_every_constant_answer(learned):
    """Not only the answer prior: no single answer given to every question scores as well."""
    references = [r["references"] for r in learned.predictions]
    candidates = {ref for refs in references for ref in refs}
    best = max(relaxed_accuracy([c] * len(references), references) for c in candidates)
    assert learned.report["results"][1]["relaxed_accuracy"] > best, best
