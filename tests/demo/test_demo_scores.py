"""The demo's own answers, rescored: no metric it reports ranks its random base above its fine-tuned model.

fixtures/demo-answers.jsonl holds the raw answers of one `nmm-demo` run with its defaults (commit
f274be5, 2 CPU cores; 100 held-out questions): the random base babbles ("der cell redin"), the
fine-tuned model answers one word, 58 of them right. Its report then gave the base BLEU 0.79 and
the fine-tuned model 0.00.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmm_core.evaluate import scored
from nmm_core.metrics import bleu
from nmm_core.records import Example
from nmm_core.task import short_answer_task

_ROWS = [json.loads(line) for line in (Path(__file__).parent / "fixtures" / "demo-answers.jsonl").open()]
_MODELS = ("base", "fine-tuned")


@pytest.fixture(scope="module")
def results():
    examples = [Example(r["id"], None, r["prompt"], tuple(r["references"])) for r in _ROWS]
    task = short_answer_task("shapes-vqa")  # the task the demo scores with
    return {m: scored(examples, {i: (r[m], 0.01) for i, r in enumerate(_ROWS)}, task=task, name=m)
            for m in _MODELS}


def test_every_metric_the_demo_reports_ranks_fine_tuned_above_its_random_base(results):
    base, tuned = (results[m].metrics for m in _MODELS)
    assert tuned["exact_match"] == 0.58 and base["exact_match"] == 0.0
    for key in base:
        assert 0 <= base[key] < tuned[key] <= 1, (key, base, tuned)


def test_on_these_answers_corpus_bleu_ranks_the_random_base_first(results):
    # why the short-answer task no longer reports it: no one-word answer has a 4-gram
    refs = [r["references"] for r in _ROWS]
    by_model = {m: bleu([r[m] for r in _ROWS], refs) for m in _MODELS}
    assert by_model["base"] == pytest.approx(0.0079, abs=1e-4) and by_model["fine-tuned"] == 0.0
    assert "bleu" not in results["base"].metrics
