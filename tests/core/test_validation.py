"""Validation during training: the seeded holdout, the settings' checks, the Trainer's arguments,
the loss plot, and (slow) keep-best with early stopping on a set made to overfit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmm_core.config import parse_config
from nmm_core.data import holdout, write_jsonl_dataset
from nmm_core.errors import ConfigError, DataError
from nmm_core.records import Example
from nmm_core.report import plot_loss
from nmm_core.runs import append_jsonl, read_jsonl
from nmm_core.train import TrainSettings, evaluation_arguments
from nmm_core.workflows import TrainConfig


def _examples(n: int) -> list[Example]:
    return [Example(f"ex-{i:03d}", f"img-{i}.png", f"question {i}?", (str(i),)) for i in range(n)]


def test_the_holdout_is_seeded_disjoint_and_keeps_the_training_order():
    examples = _examples(50)
    rest, held = holdout(examples, 0.2, seed=7)
    again_rest, again_held = holdout(examples, 0.2, seed=7)
    _, other_held = holdout(examples, 0.2, seed=8)
    assert len(held) == 10 and len(rest) == 40
    assert [e.id for e in held] == [e.id for e in again_held]  # same seed, same records
    assert [e.id for e in rest] == [e.id for e in again_rest]
    assert {e.id for e in held} != {e.id for e in other_held}  # another seed, others
    assert not {e.id for e in held} & {e.id for e in rest}  # never trained on
    assert {e.id for e in held} | {e.id for e in rest} == {e.id for e in examples}
    order = [e.id for e in examples]
    assert [e.id for e in rest] == [i for i in order if i in {e.id for e in rest}]
    # the draw does not depend on the order the records arrive in
    assert {e.id for e in holdout(examples[::-1], 0.2, seed=7)[1]} == {e.id for e in held}


def test_a_holdout_that_leaves_nothing_to_validate_on_says_so():
    with pytest.raises(DataError, match="--data-val-fraction"):
        holdout(_examples(4), 0.1, seed=0)


@pytest.mark.parametrize("argv, says", [
    (["--train-eval-steps", "0"], "eval_steps must be at least 1"),
    (["--train-eval-steps", "-5"], "eval_steps must be at least 1"),
    (["--train-eval-steps", "often"], "--train-eval-steps"),
    (["--data-val-fraction", "0"], "--data-val-fraction must be between 0 and 1"),
    (["--data-val-fraction", "1.5"], "--data-val-fraction must be between 0 and 1"),
    (["--train-eval-steps", "10", "--train-eval-generate-limit", "-1"], "eval_generate_limit must be 0 or more"),
    (["--train-eval-generate-limit", "8"], "eval_generate_limit needs eval_steps"),
    (["--train-keep-best", "loss"], "keep_best needs eval_steps"),
    (["--train-early-stopping-patience", "3"], "early_stopping_patience needs eval_steps"),
    (["--train-eval-steps", "10", "--train-early-stopping-patience", "0"],
     "early_stopping_patience must be at least 1"),
    (["--train-eval-steps", "10", "--train-keep-best", "metric"], "keep_best metric needs eval_generate_limit"),
    (["--train-eval-steps", "30", "--train-keep-best", "loss"], "save_steps (100) to be a multiple of eval_steps (30)"),
    (["--train-eval-steps", "10", "--train-keep-best", "best"], "--train-keep-best"),
])
def test_bad_validation_settings_are_one_config_error(argv, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_config(TrainConfig, argv=argv)


def test_good_validation_settings_parse_and_become_the_trainers_arguments():
    cfg = parse_config(TrainConfig, argv=["--train-eval-steps", "20", "--train-keep-best", "metric",
                                          "--train-eval-generate-limit", "16", "--train-early-stopping-patience", "2",
                                          "--data-val-fraction", "0.25"])
    assert cfg.train.eval_steps == 20 and cfg.data.val_fraction == 0.25
    assert evaluation_arguments(cfg.train, "exact_match") == {
        "eval_strategy": "steps", "eval_steps": 20, "per_device_eval_batch_size": cfg.train.batch_size,
        "prediction_loss_only": True, "metric_for_best_model": "eval_exact_match", "greater_is_better": True,
        "load_best_model_at_end": True, "restore_callback_states_from_checkpoint": True}
    by_epoch = TrainSettings(eval_steps="epoch", early_stopping_patience=3)
    assert evaluation_arguments(by_epoch, "exact_match") == {
        "eval_strategy": "epoch", "per_device_eval_batch_size": 8, "prediction_loss_only": True,
        "metric_for_best_model": "eval_loss", "greater_is_better": False,
        "restore_callback_states_from_checkpoint": True}  # patience alone: the last step is kept
    assert evaluation_arguments(TrainSettings(), "exact_match") == {}  # no validation: the Trainer's defaults
    assert parse_config(TrainConfig, argv=["--train-eval-steps", "epoch"]).train.eval_steps == "epoch"


def test_the_loss_plot_shows_the_validation_curve(tmp_path):
    log = tmp_path / "metrics.jsonl"
    for step in range(1, 7):
        append_jsonl(log, {"step": step, "loss": 3.0 / step})
        if step % 2 == 0:
            append_jsonl(log, {"step": step, "eval_loss": 2.0 + step / 10, "eval_runtime": 0.1})
            append_jsonl(log, {"step": step, "eval_exact_match": step / 10})
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    calls = []
    real = pyplot.Axes.plot

    def spy(self, x, y, *args, **kwargs):
        calls.append((kwargs.get("label"), list(x), list(y)))
        return real(self, x, y, *args, **kwargs)

    pyplot.Axes.plot = spy
    try:
        assert plot_loss(log, tmp_path / "loss.png") == tmp_path / "loss.png"
    finally:
        pyplot.Axes.plot = real
    by_label = {label: (x, y) for label, x, y in calls}
    assert by_label["training"][0] == [1, 2, 3, 4, 5, 6]
    assert by_label["validation"] == ([2, 4, 6], [2.2, 2.4, 2.6])
    assert by_label["validation exact_match"] == ([2, 4, 6], [0.2, 0.4, 0.6])
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_a_resumed_run_finds_its_best_checkpoint_where_the_run_folder_is_now(tmp_path):
    from nmm_core.checkpoints import best_checkpoint

    checkpoints = tmp_path / "moved" / "checkpoints"
    for step in (12, 16):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
    state = {"global_step": 16, "best_model_checkpoint": "/gone/run.incomplete/checkpoints/checkpoint-12"}
    (checkpoints / "checkpoint-16" / "trainer_state.json").write_text(json.dumps(state))
    assert best_checkpoint(str(checkpoints / "checkpoint-16"), checkpoints) == str(checkpoints / "checkpoint-12")
    state["best_model_checkpoint"] = "/gone/checkpoints/checkpoint-8"  # rotated away: none
    (checkpoints / "checkpoint-16" / "trainer_state.json").write_text(json.dumps(state))
    assert best_checkpoint(str(checkpoints / "checkpoint-16"), checkpoints) is None
    assert best_checkpoint(None, checkpoints) is None


def test_without_a_validation_split_train_holds_out_a_seeded_share_and_records_it(tmp_path):
    from nmm_core.cli import main
    from nmm_core.testing.shapes import make_shapes_dataset

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(20, seed=4), data, split="train")
    args = ["train", "--data", str(data), "--data-prompt-column", "prompt", "--data-answers-column", "answers",
            "--lora-r", "4", "--train-batch-size", "4", "--train-max-steps", "2", "--train-eval-steps", "1",
            "--data-val-fraction", "0.25", "--train-seed", "3", "--output-dir", str(tmp_path / "runs")]
    assert main(args) == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "status.json").read_text())["summary"]
    assert summary["validation"] == {"split": "holdout of train", "fraction": 0.25, "seed": 3, "examples": 5,
                                     "stopped_early": False}
    assert summary["examples"] == 15  # the held-out five are not trained on
    assert summary["weights"] == {"step": 2, "reason": "last step"}
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "eval_loss" in r] == [1, 2]
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["val_fraction"] == 0.25 and saved["train"]["seed"] == 3  # what draws the holdout


@pytest.mark.parametrize("preset_cap", [None, 5])
def test_validation_generates_answers_as_long_as_eval_would(tmp_path, monkeypatch, preset_cap, generate_caps):
    """The generated validation metric caps answers as `eval` does for the model: its preset's
    max_new_tokens where the preset sets one (5 here), else evaluate's default of 16; the run
    records the cap with its validation settings."""
    from dataclasses import replace

    from nmm_core import presets
    from nmm_core.cli import main
    from nmm_core.evaluate import answer_length
    from nmm_core.testing.shapes import make_shapes_dataset

    if preset_cap is not None:
        twin = presets.all_presets()["tiny-qwen2-vl"]
        monkeypatch.setitem(presets._registry.presets, "tiny-qwen2-vl", replace(twin, max_new_tokens=preset_cap))
    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(20, seed=4), data, split="train")
    assert main(["train", "--data", str(data), "--data-prompt-column", "prompt", "--data-answers-column", "answers",
                 "--model", "tiny-qwen2-vl", "--lora-r", "4", "--train-batch-size", "4", "--train-max-steps", "2",
                 "--train-eval-steps", "2", "--train-eval-generate-limit", "3", "--data-val-fraction", "0.25",
                 "--output-dir", str(tmp_path / "runs")]) == 0
    expected = 16 if preset_cap is None else preset_cap
    # every validation batch, and nothing else generated
    assert generate_caps and set(generate_caps) == {expected}, generate_caps
    assert answer_length(None, presets.all_presets()["tiny-qwen2-vl"]) == expected  # what eval would use
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "status.json").read_text())["summary"]
    assert summary["validation"]["max_new_tokens"] == expected
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "eval_exact_match" in r] == [2]


def test_the_answer_cap_is_the_given_one_else_the_preset_s_else_16():
    from nmm_core.evaluate import answer_length
    from nmm_core.presets import ModelPreset

    preset = ModelPreset("x", "qwen2_vl", tiny=True, max_new_tokens=48)
    assert answer_length(7, preset) == 7 and answer_length(None, preset) == 48
    assert answer_length(None, None) == 16 and answer_length(3, None) == 3


def _overfit_args(data: Path, out: Path, *extra: str) -> list[str]:
    """8 training questions, a high constant learning rate, 60 epochs, validation every 2 steps."""
    return ["--data", str(data), "--data-prompt-column", "prompt", "--data-answers-column", "answers",
            "--data-val-split", "val", "--lora-r", "8", "--train-batch-size", "8", "--train-lr", "1e-2",
            "--train-scheduler", "constant", "--train-warmup", "0", "--train-epochs", "60",
            "--train-logging-steps", "1", "--train-eval-steps", "2", "--train-save-steps", "2",
            "--train-keep-best", "loss", "--train-early-stopping-patience", "6",
            "--output-dir", str(out), *extra]


def _overfit_data(tmp_path: Path) -> Path:
    from nmm_core.testing.shapes import make_shapes_dataset

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(8, seed=2), data, split="train")
    write_jsonl_dataset(make_shapes_dataset(16, seed=3), data, split="val")
    return data


@pytest.mark.slow
def test_a_run_killed_after_its_best_step_and_resumed_elsewhere_keeps_the_best(tmp_path):
    """Killed after step 21 (checkpoints: the best so far and 20), its folder moved (the state names
    the old place), then resumed: the best so far stays the kept step, and early stopping's count of
    validations without improvement carries over (the run stops 6 validations after the best, not 6
    after the resume)."""
    import shutil

    from nmm_core.testing.processes import run_killed

    data = _overfit_data(tmp_path)
    out, moved = tmp_path / "runs", tmp_path / "moved"
    run_killed("nmm_core.cli", "train", *_overfit_args(data, out), after_step=21)
    shutil.move(out, moved)
    (run,) = moved.glob("*.incomplete")
    saved = json.loads((run / "checkpoints" / "checkpoint-20" / "trainer_state.json").read_text())
    best_so_far = Path(saved["best_model_checkpoint"]).name
    assert best_so_far != "checkpoint-20", saved["log_history"]  # a count of bad validations to carry over
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted([best_so_far, "checkpoint-20"])

    from nmm_core.cli import main

    assert main(["train", *_overfit_args(data, moved), "--resume", str(run)]) == 0
    final = run.with_name(run.name.removesuffix(".incomplete"))
    summary = json.loads((final / "status.json").read_text())["summary"]
    val = {r["step"]: r["eval_loss"] for r in read_jsonl(final / "metrics.jsonl") if "eval_loss" in r}
    kept = summary["weights"]["step"]
    assert summary["resumed_from"] == str(final / "checkpoints" / "checkpoint-20")
    assert f"checkpoint-{kept}" == best_so_far and val[kept] == min(val.values()), val
    assert summary["global_step"] == kept + 6 * 2  # patience 6, a validation every 2 steps
    _assert_adapter_is_checkpoint(final, kept, other=summary["global_step"])


def _assert_adapter_is_checkpoint(run: Path, step: int, *, other: int) -> None:
    """The run's adapter holds checkpoint-`step`'s weights, not checkpoint-`other`'s."""
    from safetensors.torch import load_file

    adapter = load_file(run / "adapter" / "adapter_model.safetensors")
    best = load_file(run / "checkpoints" / f"checkpoint-{step}" / "adapter_model.safetensors")
    newest = load_file(run / "checkpoints" / f"checkpoint-{other}" / "adapter_model.safetensors")
    assert all((adapter[k] == best[k]).all() for k in best)
    assert any((adapter[k] != newest[k]).any() for k in newest)


@pytest.mark.slow
def test_keep_best_holds_an_earlier_step_and_early_stopping_ends_the_run(tmp_path):
    """8 training questions, a high constant learning rate and 60 epochs: the validation loss turns
    up while the training loss falls; the adapter holds the best validated step, not the last."""
    from nmm_core.cli import main

    epochs = 60
    assert main(["train", *_overfit_args(_overfit_data(tmp_path), tmp_path / "runs"),
                 "--train-eval-generate-limit", "4"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "status.json").read_text())["summary"]
    rows = read_jsonl(run / "metrics.jsonl")
    val = {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}
    kept, last = summary["weights"]["step"], summary["global_step"]
    assert last < epochs  # one step per epoch: early stopping ended it
    assert summary["validation"] == {"split": "val", "examples": 16, "stopped_early": True, "max_new_tokens": 16}
    assert kept < last and val[kept] < val[last]
    assert val[kept] == min(val.values())
    assert summary["weights"]["reason"] == f"best eval_loss {val[kept]:.4g}"
    marker = json.loads((run / "adapter" / "nmm_adapter.json").read_text())
    assert marker["weights"] == summary["weights"]
    assert [r["step"] for r in rows if "eval_exact_match" in r] == sorted(val)  # the generated metric at each
    assert (run / "checkpoints" / f"checkpoint-{kept}").is_dir()  # rotation kept the best
    _assert_adapter_is_checkpoint(run, kept, other=last)
    assert Path(run / "loss.png").stat().st_size > 0

    # killed after its last save, before it was marked complete: resuming trains no more
    assert main(["train", *_overfit_args(_overfit_data(tmp_path), tmp_path / "runs"),
                 "--train-eval-generate-limit", "4", "--resume", str(run)]) == 0
    again = json.loads((run / "status.json").read_text())["summary"]
    assert (again["global_step"], again["weights"]) == (last, summary["weights"])
    _assert_adapter_is_checkpoint(run, kept, other=last)


def test_keep_best_metric_follows_the_metric_s_direction():
    from nmm_core.metric import Metric

    cfg = TrainSettings(eval_steps=2, save_steps=2, eval_generate_limit=4, keep_best="metric")
    errors = Metric("error_rate", per_example=lambda p, r: 0.0, corpus=None, scale=1.0, higher_is_better=False)
    assert evaluation_arguments(cfg, errors)["greater_is_better"] is False  # fewer errors is better
    assert evaluation_arguments(cfg, "exact_match")["greater_is_better"] is True
    assert evaluation_arguments(cfg, errors)["metric_for_best_model"] == "eval_error_rate"
