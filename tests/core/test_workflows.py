"""The generic `nmm train -> eval -> compare` path writes every file it promises."""

from __future__ import annotations

import json

from PIL import Image

from nmm_core import cli
from nmm_core.data import write_jsonl_dataset
from nmm_core.pairs import read_pairs
from nmm_core.testing.shapes import make_shapes_dataset


def test_train_eval_compare_write_their_files(tmp_path, capsys):
    data = tmp_path / "data"
    examples = make_shapes_dataset(24, seed=4)
    write_jsonl_dataset(examples[:16], data, split="train")
    write_jsonl_dataset(examples[16:], data, split="test")
    common = ["--data-source", str(data), "--data-prompt-column", "prompt",
              "--data-answers-column", "answers"]
    assert cli.main(["train", *common, "--train-max-steps", "3", "--lora-r", "4",
                     "--output-dir", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert {"config.yaml", "metrics.jsonl", "adapter", "loss.png", "status.json"} <= {
        p.name for p in run.iterdir()}
    assert json.loads((run / "status.json").read_text())["summary"]["global_step"] == 3
    # every path recorded in the finished run names it as it is now: text, pickled args, TensorBoard events
    scanned = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert {"checkpoints/checkpoint-3/training_args.bin", "config.yaml", "adapter/nmm_adapter.json"} <= scanned
    assert any(name.startswith("tensorboard/events.out") for name in scanned)
    stale = [name for name in scanned if b".incomplete" in (run / name).read_bytes()]
    assert stale == [], stale

    assert cli.main(["eval", *common, "--output-dir", str(tmp_path / "evals"),
                     "--adapter", str(run / "adapter")]) == 0
    (ev,) = (tmp_path / "evals").iterdir()
    rows = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"id", "prediction", "references", "exact_match"} <= set(rows[0])

    assert cli.main(["compare", *common, "--output-dir", str(tmp_path / "cmp"),
                     "--adapter", str(run / "adapter")]) == 0
    (cmp_run,) = (tmp_path / "cmp").iterdir()
    report = json.loads((cmp_run / "report.json").read_text())
    assert [r["name"] for r in report["results"]] == ["base", "fine-tuned"]
    assert all(r["n"] == 8 and r["seconds_per_example"] > 0 for r in report["results"])
    assert "| base | 8 |" in (cmp_run / "report.md").read_text()
    with Image.open(cmp_run / "metrics.png") as png:
        assert png.size[0] > 300
    assert (cmp_run / "predictions-base.jsonl").exists()
    assert (cmp_run / "predictions-fine-tuned.jsonl").exists()
    pairs = read_pairs(cmp_run / "pairs.jsonl")
    assert len(pairs) == 8 and {p.left.model for p in pairs} | {p.right.model for p in pairs} == {
        "base", "fine-tuned"}
    assert all((cmp_run / p.image).is_file() for p in pairs)
    out = capsys.readouterr().out
    assert "fine-tuned" in out


def test_preset_defaults_fill_unset_quantization_and_answer_length(monkeypatch):
    from nmm_core import models, workflows
    from nmm_core.presets import ModelPreset

    preset = ModelPreset("tiny-4bit", "qwen2_vl", tiny=True, quantization="4bit", max_new_tokens=3)
    source = models.resolve_source("tiny-qwen2-vl")
    monkeypatch.setattr(models, "resolve_source", lambda name, family=None, revision=None: models.ModelSource(
        name, source.location, None, source.family, preset))
    seen = {}
    monkeypatch.setattr(models, "quantization_config", lambda fam, q, dtype, **kw: seen.setdefault("q", q) and None)
    models.load_model("tiny-4bit", quantization="auto")
    assert seen["q"] == "4bit"

    calls = {}
    monkeypatch.setattr(workflows, "evaluate", lambda *a, settings, **k: calls.setdefault("s", settings))
    cfg = workflows.EvalConfig(model=workflows.ModelSettings(model="tiny-4bit", quantization="none"))
    workflows.evaluate_model(cfg, workflows.Task(), [], adapter=None, name="base", out_file=None)
    assert calls["s"].max_new_tokens == 3


def test_finish_hook_writes_into_the_run_before_it_is_marked_complete(tmp_path):
    from nmm_core.task import short_answer_task
    from nmm_core.workflows import DataSettings, EvalConfig, run_eval

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(4, seed=5), data, split="test")
    seen = {}

    def finish(run):
        seen["state"] = json.loads((run / "status.json").read_text())["state"]
        seen["name"] = run.name
        (run / "extra.txt").write_text("domain output")
        return {"domain_score": 0.5}

    cfg = EvalConfig(data=DataSettings(source=str(data), prompt_column="prompt", answers_column="answers"),
                     output_dir=str(tmp_path / "runs"))
    final = run_eval(cfg, short_answer_task(), finish=finish)
    assert seen == {"state": "running", "name": final.name + ".incomplete"}
    assert (final / "extra.txt").read_text() == "domain output"
    assert json.loads((final / "status.json").read_text())["summary"]["domain_score"] == 0.5


def test_a_domain_source_is_read_and_its_skips_listed_in_the_run(tmp_path, capsys):
    from nmm_core.records import Problem, ValidationReport
    from nmm_core.runs import RunDir
    from nmm_core.workflows import load_split

    kept = make_shapes_dataset(2, seed=6)

    class Own:
        settings = {"own": "settings"}

        def resolve(self):
            return self

        def load(self, split):
            return ValidationReport(kept=kept, problems=[Problem("x", "image", "missing", "image missing")],
                                    total=3)

    run = RunDir.create(tmp_path, "eval", "m")
    assert load_split({"own": "settings"}, "test", run, source=Own()) == kept
    assert "[test] kept 2 of 3 records; skipped 1: 1 image missing" in capsys.readouterr().err
    assert json.loads(run.file("problems-test.jsonl").read_text())["id"] == "x"


def test_no_progress_turns_the_generation_bar_off(tmp_path, capsys):
    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(4, seed=4), data, split="test")
    common = ["eval", "--data-source", str(data), "--data-prompt-column", "prompt", "--data-answers-column",
              "answers", "--generation-max-new-tokens", "2", "--output-dir", str(tmp_path / "runs")]
    assert cli.main(common) == 0
    err = capsys.readouterr().err
    assert "generating" in err and "Loading weights" in err  # the bars, the baseline
    assert cli.main([*common, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "generating" not in err and "Loading weights" not in err


def test_compare_into_a_train_run_makes_one_folder_with_a_breakdown(tmp_path):
    # the demo's path: run_train names its folder, its finish compares base vs adapter in that folder
    from nmm_core.lora import LoraSettings
    from nmm_core.task import short_answer_task
    from nmm_core.train import TrainSettings
    from nmm_core.workflows import EvalConfig, TrainConfig, run_compare, run_train

    examples = make_shapes_dataset(16, seed=6)
    task = short_answer_task("shapes")
    cfg = TrainConfig(lora=LoraSettings(r=4), train=TrainSettings(max_steps=2, save_steps=10**9),
                      output_dir=str(tmp_path / "runs"))

    def compare(run):
        run_compare(EvalConfig(adapter=str(run / "adapter")), task, examples=examples[8:], into=run,
                    breakdown="kind")
        return {"compared": True}

    final = run_train(cfg, task, examples=examples[:8], finish=compare, kind="demo")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [final.name] and "-demo-" in final.name
    assert {"adapter", "loss.png", "config.yaml", "report.md", "pairs.jsonl", "predictions-base.jsonl",
            "predictions-fine-tuned.jsonl"} <= {p.name for p in final.iterdir()}
    report = json.loads((final / "report.json").read_text())
    kinds = {ex.meta["kind"] for ex in examples[8:]}
    assert set(report["breakdown"]) == {"base", "fine-tuned"} and set(report["breakdown"]["base"]) == kinds
    assert report["context"]["adapter"] == "adapter"  # relative to the report, valid once the folder is renamed
    status = json.loads((final / "status.json").read_text())
    assert status["state"] == "complete" and status["summary"]["compared"] is True
