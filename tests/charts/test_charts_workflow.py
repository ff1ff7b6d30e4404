"""`nmm-charts train -> eval -> compare -> predict` on the synthetic set with the tiny twins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from nmm_charts.cli import main

# The plumbing of every chart family on a small set; that the default learns is held by
# test_charts_learning.py (16 examples cannot tell a gain from noise).
SYNTH = ["--synthetic-seed", "1", "--synthetic-train-size", "64", "--synthetic-val-size", "0",
         "--synthetic-test-size", "16", "--synthetic-kinds", "count", "--synthetic-image-size", "96"]
GEN = ["--generation-max-new-tokens", "4"]
TRAIN = ["--train-epochs", "4", "--train-batch-size", "8", "--train-lr", "3e-3", "--lora-r", "16",
         "--lora-alpha", "32", "--lora-train-projector", "--train-save-steps", "1000"]


def _only(folder):
    (run,) = folder.iterdir()
    return run


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny-qwen2-vl", "tiny-smolvlm", "tiny-moondream"])
def test_charts_train_eval_compare_predict(preset, tmp_path, capsys):
    assert main(["train", "--model", preset, *SYNTH, *TRAIN, "--output-dir", str(tmp_path / "train")]) == 0
    run = _only(tmp_path / "train")
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "complete" and status["summary"]["global_step"] == 32  # 64 / 8 x 4
    assert status["summary"]["examples"] == 64
    assert {"config.yaml", "metrics.jsonl", "loss.png"} <= {p.name for p in run.iterdir()}
    adapter = run / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert "charts/synthetic-v" in (run / "config.yaml").read_text()  # the default data, recorded

    assert main(["eval", "--model", preset, *SYNTH, *GEN, "--adapter", str(adapter),
                 "--output-dir", str(tmp_path / "eval")]) == 0
    ev = _only(tmp_path / "eval")
    rows = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and {"prediction", "references", "relaxed_accuracy", "exact_match"} <= set(rows[0])
    summary = json.loads((ev / "status.json").read_text())["summary"]
    assert {"relaxed_accuracy", "exact_match", "rouge1", "rougeL"} <= set(summary)
    assert summary["relaxed_accuracy"] == pytest.approx(sum(r["relaxed_accuracy"] for r in rows) / 16)

    assert main(["compare", "--model", preset, *SYNTH, *GEN, "--adapter", str(adapter),
                 "--output-dir", str(tmp_path / "cmp")]) == 0
    cmp_run = _only(tmp_path / "cmp")
    report = json.loads((cmp_run / "report.json").read_text())
    base, tuned = report["results"]
    assert (base["name"], tuned["name"]) == ("base", "fine-tuned")
    assert report["primary_metric"] == "relaxed_accuracy"
    assert base["seconds_per_example"] > 0 and tuned["seconds_per_example"] > 0
    # the merged fine-tuned model answers as the eval did with the same adapter
    assert tuned["relaxed_accuracy"] == pytest.approx(summary["relaxed_accuracy"])
    assert "s/example" in (cmp_run / "report.md").read_text()
    with Image.open(cmp_run / "metrics.png") as png:
        assert png.size[0] > 300
    assert (cmp_run / "pairs.jsonl").is_file()

    # predict, on a test chart of the synthetic set the run recorded in its config.yaml
    folder = Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["source"])
    record = json.loads((folder / "test.jsonl").read_text().splitlines()[0])
    capsys.readouterr()
    assert main(["predict", "--model", preset, "--adapter", str(adapter),
                 str(folder / record["image"]), record["query"]]) == 0
    answer = capsys.readouterr().out.strip()
    assert answer and "\n" not in answer


def test_charts_unknown_preset_and_foreign_adapter_fail_before_any_work(tmp_path, capsys):
    assert main(["eval", "--model", "no-such-model", "--output-dir", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown preset 'no-such-model'") and "\n" not in err
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "nmm_adapter.json").write_text(json.dumps({"base": "tiny-smolvlm", "family": "idefics3"}))
    assert main(["compare", "--model", "tiny-qwen2-vl", "--adapter", str(adapter),
                 "--output-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "trained for 'tiny-smolvlm' (idefics3), not for 'tiny-qwen2-vl' (qwen2_vl)" in err
    assert not (tmp_path / "e").exists() and not (tmp_path / "c").exists()


def test_charts_predict_rejects_unreadable_image_and_empty_question(tmp_path, capsys):
    bad = tmp_path / "chart.png"
    bad.write_bytes(b"not a png")
    assert main(["predict", str(bad), "How many bars?"]) == 2
    assert "record 'predict' field 'image': cannot read" in capsys.readouterr().err
    assert main(["predict", str(bad), "  "]) == 2
    assert "question is empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train"], ["eval"], ["data", "inspect"]])
def test_a_missing_data_source_stops_before_any_run_folder(tmp_path, capsys, argv):
    runs, missing = tmp_path / "runs", str(tmp_path / "no-such-charts")
    runs.mkdir()
    tail = [] if argv[0] == "data" else ["--output-dir", str(runs)]
    assert main([*argv, "--data-source", missing, *tail]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and missing in last and "\n" not in last
    assert list(runs.iterdir()) == []  # no failed run left behind
