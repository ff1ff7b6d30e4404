"""The offline default learns: `train` then `compete` on the TinyLLaVA twin with its recipe beats the base."""

from __future__ import annotations

from collections import Counter

import pytest

from nmm_core.testing.learning import train_and_compare
from nmm_memes.cli import main
from nmm_memes.synthetic import TEMPLATES


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One default `train` and its `compete`, shared by the checks below."""
    return train_and_compare(main, ["train"], ["compete"], tmp_path_factory.mktemp("memes"))


@pytest.mark.slow
def test_memes_default_records_the_twin_recipe(learned):
    config = learned.config
    assert config["model"]["model"] == "tiny-tinyllava"
    assert (config["train"]["lr"], config["train"]["batch_size"], config["train"]["epochs"]) == (3e-3, 16, 3.0)


@pytest.mark.slow
def test_memes_default_beats_base_on_rouge_with_interval_above_zero(learned):
    base, tuned = learned.report["results"]
    assert tuned["rougeL"] > base["rougeL"]
    low, _ = learned.report["delta_ci95_vs_first"]["fine-tuned"]
    assert low > 0, learned.report


@pytest.mark.slow
def test_memes_default_wins_the_competition(learned):
    comp = learned.report["competition"]
    assert comp["ci_low"] > 0.5, comp  # the whole interval of the win rate, not only wins > losses


@pytest.mark.slow
def test_memes_default_reads_the_feeling_off_the_image(learned):
    """The scene's feeling (sun: happy, storm: sad, ...) is named far more often than by always naming one."""
    feelings = {t.feeling for t in TEMPLATES}

    def named(text: str) -> str | None:
        return next((w for w in text.split() if w in feelings), None)

    truth = [named(r["references"][0]) for r in learned.predictions]
    said = [named(r["prediction"]) for r in learned.predictions]
    right = sum(t == s for t, s in zip(truth, said, strict=True)) / len(truth)
    constant = Counter(truth).most_common(1)[0][1] / len(truth)
    assert right >= constant + 0.25, (right, constant)
