"""The kit's `compete` on a second domain: charts' pairs judged by relaxed accuracy, its primary metric."""

from __future__ import annotations

import json

import pytest

from nmm_charts.cli import main
from nmm_charts.task import chart_task
from nmm_core.competition import JudgeSettings, judge_run
from nmm_core.pairs import Pair, Side, read_pairs, write_pairs

SYNTH = ["--synthetic-seed", "1", "--synthetic-train-size", "8", "--synthetic-val-size", "0",
         "--synthetic-test-size", "6", "--synthetic-kinds", "count", "--synthetic-image-size", "64"]
GEN = ["--generation-max-new-tokens", "4"]


def test_charts_pairs_are_judged_by_relaxed_accuracy_not_rouge(tmp_path, capsys):
    # by hand: 11.5 is within ChartQA's 5% of 12, "the answer is 12" is not a number (ROUGE-L would
    # pick it: 0.4 vs 0); "no" loses to "yes"; both "7": a tie. So fine-tuned 1 win, 1 tie, 1 loss:
    # win rate 0.5, equal ratings.
    pairs = [Pair("c:1", "1", None, "q", ["12"], Side("base", "the answer is 12"), Side("fine-tuned", "11.5"),
                  "chartqa"),
             Pair("c:2", "2", None, "q", ["yes"], Side("fine-tuned", "no"), Side("base", "yes"), "chartqa"),
             Pair("c:3", "3", None, "q", ["7"], Side("base", "7"), Side("fine-tuned", "7"), "chartqa")]
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    (tmp_path / "report.json").write_text("{}")
    (tmp_path / "report.md").write_text("# compare\n")
    result = judge_run(tmp_path, JudgeSettings(bootstrap=200, seed=0), metric=chart_task().primary_metric)
    verdicts = [json.loads(line) for line in (tmp_path / "judgements.jsonl").read_text().splitlines()]
    assert [v["winner"] for v in verdicts] == ["fine-tuned", "base", "tie"]
    comp = json.loads((tmp_path / "report.json").read_text())["competition"]
    assert (comp["wins"], comp["ties"], comp["losses"], comp["metric"]) == (1, 1, 1, "relaxed_accuracy")
    assert result["win_rate"] == comp["win_rate"] == 0.5
    assert comp["bradley_terry"] == pytest.approx({"base": 1000.0, "fine-tuned": 1000.0})
    assert "1 wins, 1 ties, 1 losses; win rate 0.500" in capsys.readouterr().out
    assert "higher relaxed_accuracy against all references" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_charts_compete_with_an_adapter_that_changes_nothing_is_all_ties(tmp_path, capsys):
    # lr 1e-12 for one step: LoRA's B leaves zero by ~1e-12, below float32's resolution of the merged
    # weights, so the merged model answers exactly as the base: every pair a tie, win rate 0.5
    assert main(["train", *SYNTH, "--train-max-steps", "1", "--train-lr", "1e-12", "--train-batch-size", "8",
                 "--output-dir", str(tmp_path / "train")]) == 0
    (run,) = (tmp_path / "train").iterdir()
    assert main(["compete", *SYNTH, *GEN, "--adapter", str(run / "adapter"), "--judge-bootstrap", "100",
                 "--output-dir", str(tmp_path / "cmp")]) == 0
    (cmp_run,) = (tmp_path / "cmp").iterdir()
    pairs = read_pairs(cmp_run / "pairs.jsonl")
    assert len(pairs) == 6 and all(p.left.answer == p.right.answer for p in pairs)
    comp = json.loads((cmp_run / "report.json").read_text())["competition"]
    assert (comp["wins"], comp["ties"], comp["losses"], comp["metric"]) == (0, 6, 0, "relaxed_accuracy")
    assert (comp["win_rate"], comp["ci_low"], comp["ci_high"]) == (0.5, 0.5, 0.5)
    assert json.loads((cmp_run / "status.json").read_text())["state"] == "complete"
    assert "0 wins, 6 ties, 0 losses; win rate 0.500" in capsys.readouterr().out
    assert (cmp_run / "competition.png").is_file() and (cmp_run / "judgements.jsonl").is_file()
