"""A task reports only the scores that mean something for its answers, each in [0, 1]."""

from __future__ import annotations

import json
import random

import pytest

from nmm_core.evaluate import scored
from nmm_core.metrics import BLEU, EXACT_MATCH, ROUGE, ROUGE2
from nmm_core.records import Example
from nmm_core.report import write_comparison
from nmm_core.task import Task, short_answer_task

_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
_COUNTS = ["1", "2", "3", "4", "5"]


def _shapes_like(n: int = 100, seed: int = 0) -> tuple[list[str], dict[str, list[str]]]:
    """One-word references and three models' answers: trained (58% right), 4-token babble, constant."""
    rng = random.Random(seed)
    refs = [rng.choice(_COLOURS + _COUNTS) for _ in range(n)]
    vocab = _COLOURS + _COUNTS + ["the", "circle", "square", "is", "a"]
    answers = {
        "trained": [r if rng.random() < 0.58 else rng.choice(_COLOURS + _COUNTS) for r in refs],
        "babble": [" ".join(rng.choice(vocab) for _ in range(4)) for _ in refs],  # a random model
        "constant": ["red"] * n,
    }
    return refs, answers


def _scores(task: Task, answers: list[str], refs: list[str]) -> dict[str, float]:
    examples = [Example(f"q{i}", None, "What colour is the circle?", (r,)) for i, r in enumerate(refs)]
    return scored(examples, {i: (a, 0.01) for i, a in enumerate(answers)}, task=task, name="m").metrics


def test_every_metric_of_the_short_answer_task_ranks_a_trained_model_above_babble_and_a_constant():
    task = short_answer_task()
    refs, answers = _shapes_like()
    scores = {name: _scores(task, a, refs) for name, a in answers.items()}
    assert list(scores["trained"]) == list(task.metric_names)
    for metric, trained in scores["trained"].items():
        for broken in ("babble", "constant"):
            assert trained > scores[broken][metric] + 0.2, (metric, broken, scores)


def test_bleu_and_rouge2_are_left_out_because_they_misrank_one_word_answers():
    task = Task(metrics=(EXACT_MATCH, ROUGE2, BLEU))  # the declaration short answers used to have
    refs, answers = _shapes_like()
    trained, babble = (_scores(task, answers[m], refs) for m in ("trained", "babble"))
    assert trained["exact_match"] > 0.5 > babble["exact_match"]
    assert trained["bleu"] == 0.0 < babble["bleu"]  # corpus BLEU: 0 without a 4-gram
    assert trained["rouge2"] == babble["rouge2"] == 0.0  # no bigram in a one-word reference
    assert {"bleu", "rouge2"}.isdisjoint(short_answer_task().metric_names)


def test_every_score_is_in_0_1_bleu_included():
    task = Task(metrics=(EXACT_MATCH, *ROUGE, BLEU))
    sentences = ["the cat sat on the mat today", "a dog barked at the postman"]
    perfect = _scores(task, sentences, sentences)
    assert perfect == {"exact_match": 1.0, "rouge1": pytest.approx(1.0), "rouge2": pytest.approx(1.0),
                       "rougeL": pytest.approx(1.0), "bleu": pytest.approx(1.0)}


def test_a_report_shows_every_metric_on_the_same_0_1_scale(tmp_path, capsys, monkeypatch):
    import matplotlib.axes

    from nmm_core.report import print_table

    bars, draw = [], matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda ax, x, heights, *a, **k: (
        bars.extend(heights), draw(ax, x, heights, *a, **k))[1])

    task = Task(metrics=(EXACT_MATCH, *ROUGE, BLEU))
    refs = ["the cat sat on the mat today", "a dog barked at the postman", "two birds on a wire"]
    answers = {"base": ["a cat", "the dog barked at a man", "birds"], "fine-tuned": refs}
    examples = [Example(f"q{i}", None, "What does it show?", (r,)) for i, r in enumerate(refs)]
    results = [scored(examples, {i: (a, 0.01) for i, a in enumerate(ans)}, task=task, name=name)
               for name, ans in answers.items()]
    write_comparison(results, tmp_path, title="t", primary="exact_match")
    print_table(results, title="t")
    report = json.loads((tmp_path / "report.json").read_text())
    tuned = report["results"][1]
    assert tuned["bleu"] == pytest.approx(1.0)
    keys = ("exact_match", "rouge1", "rouge2", "rougeL", "bleu")
    assert all(0 <= result[k] <= 1 for result in report["results"] for k in keys)
    assert "| fine-tuned | 3 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 |" in (tmp_path / "report.md").read_text()
    assert "100.0" not in capsys.readouterr().out
    assert len(bars) == 2 * len(keys) and max(bars) == pytest.approx(1.0)  # metrics.png: BLEU's bar as tall as EM's


def test_an_unknown_metric_is_named():
    with pytest.raises(ValueError, match="unknown metric 'blue'"):
        Task(metrics=("blue",)).score(["a"], [["a"]])
