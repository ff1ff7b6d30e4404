"""The comparison report says how sure a difference is: a paired bootstrap over the examples."""

from __future__ import annotations

import json

import pytest

from nmm_core.evaluate import EvalResult
from nmm_core.ratings import bootstrap_interval
from nmm_core.report import delta_lines, paired_interval, write_comparison


def _result(name: str, scores: list[float], *, bleu: float = 0.3) -> EvalResult:
    rows = [{"id": f"q{i}", "prediction": "x", "exact_match": s} for i, s in enumerate(scores)]
    return EvalResult(name, {"exact_match": sum(scores) / len(scores), "bleu": bleu}, 0.01, rows)


def test_the_interval_is_the_bootstrap_of_the_per_example_differences():
    base = _result("base", [0, 0, 1, 1, 0, 1, 0, 0])
    tuned = _result("fine-tuned", [1, 1, 1, 1, 0, 1, 1, 0])
    assert paired_interval(base, tuned, "exact_match") == bootstrap_interval([1, 1, 0, 0, 0, 0, 1, 0])
    # rows matched by id, not position
    shuffled = EvalResult("fine-tuned", tuned.metrics, 0.01, tuned.predictions[::-1])
    assert paired_interval(base, shuffled, "exact_match") == paired_interval(base, tuned, "exact_match")


def test_a_sure_gain_and_a_tie_are_told_apart(tmp_path):
    base = _result("base", [0] * 40)
    sure = _result("fine-tuned", [1] * 30 + [0] * 10)
    some = _result("other", [1, 0] * 10 + [0] * 20)  # 10 of 40 better, none worse
    noisy = EvalResult("noisy", {"exact_match": 0.0, "bleu": 0.01}, 0.01,  # as often better as worse
                       [{"id": f"q{i}", "exact_match": s} for i, s in enumerate([1, -1] * 20)])
    lines = delta_lines([base, sure, some, noisy], "exact_match")
    assert lines[0].startswith("fine-tuned +0.7500 vs base (95% interval +0.") and lines[0].endswith(
        "paired bootstrap over 40 examples: a difference)")
    assert "a difference" in lines[1]
    assert lines[2].endswith("no clear difference: the interval holds 0)")

    write_comparison([base, sure], tmp_path, title="t", primary="exact_match")
    report = json.loads((tmp_path / "report.json").read_text())
    low, high = report["delta_ci95_vs_first"]["fine-tuned"]
    assert 0.5 < low <= 0.75 <= high < 0.9
    assert "95% interval" in (tmp_path / "report.md").read_text()


def test_a_metric_scored_only_over_the_corpus_gets_no_interval(tmp_path):
    base, tuned = _result("base", [0, 1], bleu=0.1), _result("fine-tuned", [1, 1], bleu=0.2)
    assert paired_interval(base, tuned, "bleu") is None
    assert delta_lines([base, tuned], "bleu") == ["fine-tuned +0.1000 vs base"]
    write_comparison([base, tuned], tmp_path, title="t", primary="bleu")
    assert json.loads((tmp_path / "report.json").read_text())["delta_ci95_vs_first"] == {}


def test_models_answering_different_examples_get_no_interval():
    base = _result("base", [0, 1, 1])
    other = EvalResult("other", {"exact_match": 1.0, "bleu": 0.01}, 0.01, [{"id": "elsewhere", "exact_match": 1}])
    assert paired_interval(base, other, "exact_match") is None
    unnamed = EvalResult("detector", {"exact_match": 1.0}, 0.01, [{"exact_match": 1}] * 3)  # rows without ids
    assert paired_interval(base, unnamed, "exact_match") is None
    fewer = _result("fewer", [1, 1])  # q0, q1 of base's q0-q2: the delta of the means is not theirs
    assert paired_interval(base, fewer, "exact_match") is None
    repeated = EvalResult("rep", base.metrics, 0.01, [dict(r, id="q0") for r in base.predictions])
    assert paired_interval(repeated, repeated, "exact_match") is None
    nan = _result("nan", [float("nan"), 1, 1])
    assert paired_interval(base, nan, "exact_match") is None


@pytest.mark.parametrize("n", [10, 1000])
def test_the_interval_narrows_with_more_examples(n):
    base = _result("base", [0, 1] * (n // 2))
    tuned = _result("fine-tuned", [1, 1] * (n // 2))
    low, high = paired_interval(base, tuned, "exact_match")
    assert low <= 0.5 <= high
    assert (high - low < 0.1) == (n == 1000)


def test_print_table_shows_every_header_whole(capsys, monkeypatch):
    from nmm_core.report import print_table

    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal
    keys = ["closed_accuracy_norm", "closed_accuracy_strict", "open_accuracy_norm", "open_accuracy_strict",
            "open_recall", "yes_rate", "exact_match"]  # pathology's columns and more
    results = [EvalResult(name, dict.fromkeys(keys, 0.5), 0.01, []) for name in ("base", "fine-tuned")]
    print_table(results, title="pathvqa")
    out = capsys.readouterr().out
    assert "…" not in out
    for header in keys:
        assert header in out


def test_save_png_writes_at_the_dpi_asked_and_closes_the_figure(tmp_path):
    from PIL import Image

    from nmm_core.report import pyplot, save_png

    plt = pyplot()
    widths = []
    for dpi in (50, 100):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [0, 1])
        path = save_png(fig, tmp_path / f"dpi{dpi}.png", dpi=dpi)
        assert not plt.fignum_exists(fig.number)
        widths.append(Image.open(path).size[0])
    assert 1.8 < widths[1] / widths[0] < 2.2
