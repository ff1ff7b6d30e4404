"""`nmm-pathology vqa train -> eval -> compare -> predict` end to end on the tiny LLaVA-1.5 twin."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from nmm_core.runs import read_jsonl
from nmm_pathology.cli import main
from nmm_pathology.task import PathVqaTask, extract_short_answer

SYNTH = ["--synthetic-train-size", "128", "--synthetic-test-size", "24"]
TRAIN = ["--train-epochs", "3", "--train-lr", "5e-3", "--train-batch-size", "16", "--train-save-steps", "1000",
         "--lora-r", "16", "--lora-alpha", "32", "--lora-train-projector"]


def _only(folder: Path, pattern: str) -> Path:
    [path] = sorted(folder.glob(pattern))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vqa-runs")
    assert main(["vqa", "train", "--output-dir", str(out), *SYNTH, *TRAIN]) == 0
    return _only(out, "*-train-tiny-llava-1.5")


@pytest.mark.slow
def test_pathology_vqa_train_writes_adapter_and_falling_loss(trained):
    status = json.loads((trained / "status.json").read_text())
    assert status["state"] == "complete" and status["summary"]["examples"] == 128
    assert (trained / "adapter" / "adapter_config.json").is_file()
    assert (trained / "loss.png").is_file() and (trained / "config.yaml").is_file()
    losses = [r["loss"] for r in read_jsonl(trained / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_pathology_vqa_compare_and_eval_report_numbers_and_review(trained, tmp_path):
    adapter = str(trained / "adapter")
    assert main(["vqa", "compare", "--adapter", adapter, "--output-dir", str(tmp_path), *SYNTH]) == 0
    run = _only(tmp_path, "*-compare-tiny-llava-1.5")
    report = json.loads((run / "report.json").read_text())
    assert report["primary_metric"] == "accuracy_norm"
    base, tuned = report["results"]
    for key in ("closed_accuracy", "open_recall", "open_exact_match", "exact_match", "accuracy"):
        assert f"{key}_strict" in tuned and f"{key}_norm" in tuned
    # that the default learns (above the base and always-"yes") is held by test_pathology_vqa_learning.py
    # the report's numbers are the task's scores of the saved raw predictions
    rows = read_jsonl(run / "predictions-fine-tuned.jsonl")
    again = PathVqaTask().score([r["raw_prediction"] for r in rows], [r["references"] for r in rows])
    assert again == pytest.approx({k: tuned[k] for k in again})
    for name in ("report.md", "metrics.png", "pairs.jsonl", "review.json"):
        assert (run / name).is_file(), name
    # one review row per answer that is not a literal match, for both models
    with open(run / "review-fine-tuned.csv", newline="") as f:
        review = list(csv.DictReader(f))
    task = PathVqaTask()
    misses = [r for r in rows if task.score_one(r["raw_prediction"], r["references"])["exact_match_strict"] < 1]
    assert [r["id"] for r in review] == [r["id"] for r in misses]
    for r in review:
        assert Path(r["image"]).is_file() and r["question"] and r["reference"]
        assert r["clinician_verdict"] == ""
    counts = json.loads((run / "review.json").read_text())
    assert counts["reviews"]["review-fine-tuned"]["disagreements"] == len(review)
    assert sum(counts["questions"].values()) == 24

    assert main(["vqa", "eval", "--adapter", adapter, "--output-dir", str(tmp_path), *SYNTH]) == 0
    ev = _only(tmp_path, "*-eval-tiny-llava-1.5")
    [result] = json.loads((ev / "report.json").read_text())["results"]
    assert result["accuracy_norm"] == pytest.approx(tuned["accuracy_norm"])  # same model, same greedy answers
    assert (ev / "review.csv").is_file()


@pytest.mark.slow
def test_pathology_vqa_predict_answers_one_image(trained, tmp_path, capsys):
    from nmm_pathology.data import SyntheticSettings, synthetic_folder

    folder = synthetic_folder(SyntheticSettings(train_size=128, test_size=24))
    image = sorted((folder / "images").glob("*.png"))[0]
    assert main(["vqa", "predict", str(image), "is there necrosis?",
                 "--adapter", str(trained / "adapter")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["question"] == "is there necrosis?" and isinstance(out["raw"], str)
    assert out["answer"] == extract_short_answer(out["raw"])


def test_pathology_vqa_predict_missing_image_is_one_line(tmp_path, capsys):
    code = main(["vqa", "predict", "--image", str(tmp_path / "none.png"), "--question", "what is present?"])
    err = capsys.readouterr().err
    assert code == 2 and "none.png" in err and "Traceback" not in err


def test_pathology_takes_llava_presets_only_and_info_probes_its_own_model(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["vqa", "train", "--model", "tiny-qwen2-vl", "--output-dir", str(runs)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --model tiny-qwen2-vl is a preset of nmm-charts, not of nmm-pathology "
        "(its presets: llava-1.5-13b, llava-1.5-7b, tiny-llava-1.5)")
    assert main(["vqa", "predict", "a.png", "is it?", "--model", "tiny-gill"]) == 2
    assert "--model tiny-gill is a preset of nmm-memes" in capsys.readouterr().err
    assert main(["info", "--image", "64x64", "--model", "smolvlm"]) == 2
    assert "--model smolvlm is a preset of nmm-charts" in capsys.readouterr().err
    assert main(["info", "--image", "64x64"]) == 0  # the domain's default model, not core's tiny-qwen2-vl
    assert "tiny-llava-1.5 (llava), a 64x64 image:" in capsys.readouterr().out
    assert not runs.exists()


@pytest.mark.parametrize("argv, settings", [
    (["vqa", "predict", "a.png", "is it?"], {"image": "a.png", "question": "is it?"}),
    (["vqa", "predict", "--image", "a.png", "--question", "is it?"], {"image": "a.png", "question": "is it?"}),
    (["vqa", "predict", "a.png", "--question", "is it?"], {"image": "a.png", "question": "is it?"}),
    (["detect", "predict", "scans/"], {"source": "scans/"}),
    (["detect", "predict", "--source", "scans/"], {"source": "scans/"}),
])
def test_predict_takes_positionals_with_the_flags_as_aliases(argv, settings):
    from nmm_core.domain import domain_parser, domain_verbs, verb_config
    from nmm_pathology.cli import PATHOLOGY

    verbs = domain_verbs(PATHOLOGY)
    ns = domain_parser(PATHOLOGY, verbs).parse_args(argv)
    cfg = verb_config(verbs[ns.nmm_verb][0], ns)
    assert {k: getattr(cfg, k) for k in settings} == settings


def test_pathology_qlora_without_bitsandbytes_says_how_to_run_on_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as on a machine without it
    code = main(["vqa", "train", "--model-quantization", "4bit", "--output-dir", str(tmp_path),
                 "--synthetic-train-size", "8", "--synthetic-test-size", "4"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("error: 4bit quantization needs bitsandbytes") and "CPU" in err


def test_pathology_real_preset_resolves_to_its_pinned_hub_revision(tmp_path, capsys):
    # offline, the 7B cannot load: one line naming the hub id and the pinned revision
    code = main(["vqa", "eval", "--model", "llava-1.5-7b", "--output-dir", str(tmp_path),
                 "--synthetic-train-size", "8", "--synthetic-test-size", "4"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert "llava-hf/llava-1.5-7b-hf" in err and "95f2cf316249a98c11183f471ab76065c3e5f494" in err


def test_pathology_vqa_train_keeps_the_study_epochs_and_the_twin_its_recipe():
    from nmm_core.domain import domain_parser, domain_verbs, verb_config
    from nmm_pathology.cli import PATHOLOGY

    verbs = domain_verbs(PATHOLOGY)
    parser = domain_parser(PATHOLOGY, verbs)
    real, twin = (verb_config(verbs["vqa train"][0], parser.parse_args(["vqa", "train", *model]))
                  for model in (["--model", "llava-1.5-7b"], []))
    assert (real.train.epochs, twin.train.epochs) == (3.0, 2.0)
    assert twin.data.source == "synthetic" and twin.synthetic.train_size == 1200  # the twin's recipe


def test_inspect_describes_the_generated_set_that_train_uses_by_default(capsys):
    from dataclasses import replace

    from nmm_core.config import parse_config
    from nmm_core.domain import domain_verbs
    from nmm_core.seeds import part_seed
    from nmm_pathology.cli import PATHOLOGY

    verbs = domain_verbs(PATHOLOGY)
    inspect, train = (parse_config(verbs[verb][0]) for verb in ("vqa data inspect", "vqa train"))
    # the same generated set (no run seed: seed None reads as train's 0), the twin's recipe, not 400 / 60
    assert replace(inspect.synthetic, seed=part_seed(inspect.synthetic.seed)) == train.synthetic
    assert (inspect.synthetic.train_size, inspect.synthetic.test_size) == (1200, 200)
    given = parse_config(verbs["vqa data inspect"][0], argv=["--synthetic-train-size", "50"])
    assert (given.synthetic.train_size, given.synthetic.test_size) == (50, 200)  # a flag still wins
    with pytest.raises(SystemExit):
        main(["vqa", "data", "inspect", "--help"])
    assert "(default: 400; tiny twin tiny-llava-1.5: 1200)" in " ".join(capsys.readouterr().out.split())
