"""The offline default learns: `vqa train` then `vqa compare` with the twin's recipe beats the base and always-"yes"."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from nmm_core.testing.learning import train_and_compare
from nmm_pathology.cli import main
from nmm_pathology.metrics import closed_accuracy_per_example

MARGIN = 0.05  # closed accuracy above the better constant answer


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One default `vqa train` and its `vqa compare`, shared by the checks below."""
    return train_and_compare(main, ["vqa", "train"], ["vqa", "compare"], tmp_path_factory.mktemp("vqa"))


@pytest.mark.slow
def test_pathology_default_records_the_twin_recipe(learned):
    config = learned.config
    assert config["model"]["model"] == "tiny-llava-1.5"
    assert (config["train"]["lr"], config["train"]["batch_size"]) == (3e-3, 16)
    assert config["lora"]["train_projector"] is True


@pytest.mark.slow
def test_pathology_default_beats_base_with_interval_above_zero(learned):
    base, tuned = learned.report["results"]
    assert tuned["closed_accuracy_norm"] > base["closed_accuracy_norm"]
    low, _ = learned.report["delta_ci95_vs_first"]["fine-tuned"]  # accuracy_norm, the primary metric
    assert low > 0, learned.report


@pytest.mark.slow
def test_pathology_default_closed_accuracy_beats_always_yes(learned):
    """A constant "yes" (about half right) or "no" is beaten (the twin answers yes/no by the question's wording)."""
    closed = [r for r in learned.predictions if r["closed"]]
    always_yes = sum(closed_accuracy_per_example(["yes"] * len(closed), [r["references"] for r in closed]))
    constant = max(always_yes, len(closed) - always_yes) / len(closed)
    tuned = learned.report["results"][1]["closed_accuracy_norm"]
    assert tuned >= constant + MARGIN, (tuned, constant)


@pytest.mark.slow
def test_pathology_default_reads_open_answers_off_the_image(learned):
    """What stain, what lesion: right far more often than the commonest answer to each question."""
    open_rows = [r for r in learned.predictions if not r["closed"]]
    answers = defaultdict(list)
    for r in open_rows:
        answers[r["prompt"]].append(r["references"][0])
    constant = sum(Counter(a).most_common(1)[0][1] for a in answers.values()) / len(open_rows)
    tuned = learned.report["results"][1]["open_exact_match_norm"]
    assert tuned >= constant + 0.2, (tuned, constant)
