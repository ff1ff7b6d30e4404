"""An interrupted eval or compare resumes: answers already given are kept, only the rest generated."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from transformers import Qwen2VLForConditionalGeneration

from nmm_core.data import write_jsonl_dataset
from nmm_core.errors import ConfigError, DataError
from nmm_core.evaluate import GenerationSettings, answers_log, previous_answers
from nmm_core.lora import LoraSettings, apply_lora, save_adapter
from nmm_core.models import load_model
from nmm_core.runs import read_jsonl
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.workflows import DataSettings, EvalConfig, ModelSettings, run_compare, run_eval

N = 10


class Killed(RuntimeError):
    pass


@pytest.fixture
def generate_calls(monkeypatch):
    """Counts the model's generate() calls; `state["kill_at"] = k` makes call k raise `Killed`."""
    state = {"calls": 0, "kill_at": None}
    real = Qwen2VLForConditionalGeneration.generate

    def counting(self, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] == state["kill_at"]:
            raise Killed("the process was stopped")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Qwen2VLForConditionalGeneration, "generate", counting)
    return state


def _cfg(tmp_path, **generation) -> EvalConfig:
    data = tmp_path / "data"
    if not data.exists():
        write_jsonl_dataset(make_shapes_dataset(N, seed=6), data, split="test")
    return EvalConfig(data=DataSettings(source=str(data), prompt_column="prompt", answers_column="answers"),
                      generation=GenerationSettings(batch_size=4, max_new_tokens=3, **generation),
                      output_dir=str(tmp_path / "runs"))


def _raw(folder, name="predictions.jsonl"):
    return {r["id"]: r["raw_prediction"] for r in read_jsonl(folder / name)}


def test_an_interrupted_eval_resumes_and_gives_the_answers_of_an_uninterrupted_one(tmp_path, generate_calls):
    task = short_answer_task()
    cfg = _cfg(tmp_path)
    generate_calls["kill_at"] = 2
    with pytest.raises(Killed):
        run_eval(cfg, task)
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith(".incomplete")
    assert json.loads((run / "status.json").read_text())["state"] == "failed"
    assert len(read_jsonl(answers_log(run / "predictions.jsonl"))) == 4  # the first batch, kept

    with pytest.raises(ConfigError, match=r"generation.max_new_tokens=3, now 5"):
        run_eval(replace(cfg, resume=str(run), generation=replace(cfg.generation, max_new_tokens=5)), task)

    generate_calls.update(calls=0, kill_at=None)
    # a smaller batch is allowed (after running out of memory, say): it changes no answer's settings
    final = run_eval(replace(cfg, resume=str(run), generation=replace(cfg.generation, batch_size=2)), task)
    assert generate_calls["calls"] == 3  # the 6 unanswered examples, 2 at a time
    assert json.loads((final / "status.json").read_text())["state"] == "complete"
    assert not answers_log(final / "predictions.jsonl").exists()
    resumed = _raw(final)
    assert len(resumed) == N

    fresh = run_eval(replace(cfg, output_dir=str(tmp_path / "fresh")), task)
    assert _raw(fresh) == resumed
    report = json.loads((final / "report.json").read_text())
    assert report["results"][0]["n"] == N and report["results"][0]["seconds_per_example"] > 0


def test_a_compare_resumed_after_the_base_finished_loads_only_the_fine_tuned_model(tmp_path, generate_calls,
                                                                                   monkeypatch):
    loaded = load_model("tiny-qwen2-vl")
    adapter = save_adapter(apply_lora(loaded, LoraSettings(r=4)), tmp_path / "adapter",
                           base_name="tiny-qwen2-vl", family="qwen2_vl")
    cfg = replace(_cfg(tmp_path), adapter=str(adapter))
    task = short_answer_task()
    generate_calls["kill_at"] = 5  # base: 3 batches; fine-tuned: its second batch
    with pytest.raises(Killed):
        run_compare(cfg, task)
    (run,) = (tmp_path / "runs").iterdir()
    assert len(read_jsonl(run / "predictions-base.jsonl")) == N
    assert len(read_jsonl(answers_log(run / "predictions-fine-tuned.jsonl"))) == 4

    loads = []
    real_load = ModelSettings.load
    monkeypatch.setattr(ModelSettings, "load", lambda self, **kw: loads.append(1) or real_load(self, **kw))
    generate_calls.update(calls=0, kill_at=None)
    final = run_compare(replace(cfg, resume=str(run)), task)
    assert len(loads) == 1 and generate_calls["calls"] == 2
    assert len(read_jsonl(final / "pairs.jsonl")) == N
    assert [r["name"] for r in json.loads((final / "report.json").read_text())["results"]] == ["base", "fine-tuned"]


def test_answers_that_do_not_match_the_evaluation_set_are_refused(tmp_path):
    examples = make_shapes_dataset(4, seed=1)
    out = tmp_path / "predictions.jsonl"
    answers_log(out).write_text(json.dumps({"index": 1, "id": "someone-else", "raw_prediction": "red"}) + "\n")
    with pytest.raises(DataError, match="'someone-else' \\(position 1\\).*changed since the run started"):
        previous_answers(out, examples)
    answers_log(out).write_text(json.dumps({"index": 1, "id": examples[1].id, "raw_prediction": "red",
                                            "seconds": 0.5}) + "\n" + '{"index": 2, "id": "cut sh')
    assert previous_answers(out, examples) == {1: ("red", 0.5)}  # a line cut short by the kill is dropped


def test_resume_needs_a_run_that_recorded_its_settings(tmp_path):
    run = tmp_path / "20260101-000000-eval-x.incomplete"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"state": "failed", "command": "eval"}))
    with pytest.raises(ConfigError, match="no config.yaml"):
        run_eval(replace(_cfg(tmp_path), resume=str(run)), short_answer_task())


def test_a_run_killed_after_its_last_answer_finishes_without_the_model_and_leaves_no_log(tmp_path, monkeypatch):
    """Killed while scoring: every answer is in the log, no predictions file. Resuming scores them
    (no model loaded), writes predictions.jsonl and drops the log; resuming the finished run again
    is harmless; the other command cannot take the run over."""
    import nmm_core.evaluate as evaluate_module

    task = short_answer_task()
    cfg = _cfg(tmp_path)
    real_scored = evaluate_module.scored
    monkeypatch.setattr(evaluate_module, "scored", lambda *a, **k: (_ for _ in ()).throw(Killed("while scoring")))
    with pytest.raises(Killed):
        run_eval(cfg, task)
    monkeypatch.setattr(evaluate_module, "scored", real_scored)
    (run,) = (tmp_path / "runs").iterdir()
    assert len(read_jsonl(answers_log(run / "predictions.jsonl"))) == N
    assert not (run / "predictions.jsonl").exists()

    loads = []
    real_load = ModelSettings.load
    monkeypatch.setattr(ModelSettings, "load", lambda self, **kw: loads.append(1) or real_load(self, **kw))
    final = run_eval(replace(cfg, resume=str(run)), task)
    assert not loads
    assert sorted(p.name for p in final.glob("*predictions*")) == ["predictions.jsonl"]
    assert len(read_jsonl(final / "predictions.jsonl")) == N

    again = run_eval(replace(cfg, resume=str(final)), task)  # a finished run: scored again, still complete
    assert again == final and json.loads((final / "status.json").read_text())["state"] == "complete"
    with pytest.raises(ConfigError, match="made by 'eval', and this command is 'compare'"):
        run_compare(replace(cfg, resume=str(final), adapter=str(tmp_path)), task)


def test_a_setting_added_after_the_run_started_does_not_block_its_resume(tmp_path, generate_calls):
    cfg = _cfg(tmp_path)
    generate_calls["kill_at"] = 2
    with pytest.raises(Killed):
        run_eval(cfg, short_answer_task())
    (run,) = (tmp_path / "runs").iterdir()
    # the run's config.yaml as an older version wrote it: without `generation.min_new_tokens`
    text = (run / "config.yaml").read_text()
    assert "  min_new_tokens: 0\n" in text
    (run / "config.yaml").write_text(text.replace("  min_new_tokens: 0\n", ""))
    generate_calls.update(calls=0, kill_at=None)
    assert run_eval(replace(cfg, resume=str(run)), short_answer_task()).is_dir()


def test_generation_halves_its_batch_when_the_card_runs_out_of_memory(monkeypatch, caplog):
    import torch

    from nmm_core.errors import DeviceError
    from nmm_core.evaluate import generate

    loaded = load_model("tiny-qwen2-vl")
    examples = make_shapes_dataset(7, seed=2)
    task = short_answer_task()
    settings = GenerationSettings(batch_size=2, max_new_tokens=3)
    expected, _ = generate(loaded.model, loaded.processor, loaded.family, examples, task=task,
                           settings=settings, progress=False)
    real = Qwen2VLForConditionalGeneration.generate
    sizes = []

    def small_card(self, *args, **kwargs):
        sizes.append(len(kwargs["input_ids"]))
        if sizes[-1] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Qwen2VLForConditionalGeneration, "generate", small_card)
    answers, _ = generate(loaded.model, loaded.processor, loaded.family, examples, task=task, progress=False,
                          settings=replace(settings, batch_size=5))
    assert answers == expected
    assert sizes == [5, 2, 2, 2, 1]  # 5 fails; the rest at 2 (the last batch holds what is left)
    assert "out of memory at batch 5: continuing at batch 2" in caplog.text

    monkeypatch.setattr(Qwen2VLForConditionalGeneration, "generate",
                        lambda self, *a, **k: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA OOM")))
    with pytest.raises(DeviceError, match="out of memory generating one answer at a time"):
        generate(loaded.model, loaded.processor, loaded.family, examples, task=task, progress=False,
                 settings=settings)
