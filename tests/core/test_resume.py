"""`--resume` continues only the command that made a run, with the settings it ran with."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nmm_core.config import dump_yaml
from nmm_core.errors import ConfigError
from nmm_core.resume import open_resumed
from nmm_core.runs import RunDir
from nmm_core.workflows import TRAIN_MAY_CHANGE, DataSettings, TrainConfig


def _interrupted_train(tmp_path) -> tuple[TrainConfig, RunDir]:
    cfg = TrainConfig(data=DataSettings(source="data"), output_dir=str(tmp_path))
    run = RunDir.create(tmp_path, "train", "tiny")
    dump_yaml(cfg, run.file("config.yaml"))
    run.fail("killed")
    return cfg, run


def test_a_train_run_resumes_with_its_settings_and_refuses_others(tmp_path):
    cfg, run = _interrupted_train(tmp_path)
    with pytest.raises(ConfigError, match=r"it ran with train.lr=0.0002, now 0.0001"):
        open_resumed(replace(cfg, train=replace(cfg.train, lr=1e-4)), str(run.path), "train",
                     may_change=TRAIN_MAY_CHANGE)
    assert json.loads(run.file("status.json").read_text())["state"] == "failed"  # a refusal changes nothing
    with pytest.raises(ConfigError, match="made by 'train', and this command is 'eval'"):
        open_resumed(cfg, str(run.path), "eval")
    faster = replace(cfg, train=replace(cfg.train, save_steps=7, num_workers=2), output_dir="elsewhere")
    resumed = open_resumed(faster, str(run.path), "train", may_change=TRAIN_MAY_CHANGE)
    assert json.loads(resumed.file("status.json").read_text())["state"] == "running"


def test_a_completed_run_resumed_again_is_running_and_can_fail_again(tmp_path):
    cfg, run = _interrupted_train(tmp_path)
    final = run.complete()
    resumed = open_resumed(cfg, str(final), "train", may_change=TRAIN_MAY_CHANGE)
    with pytest.raises(RuntimeError), resumed:
        raise RuntimeError("failed while continuing")
    assert json.loads((final / "status.json").read_text())["state"] == "failed"


def test_a_train_run_stopped_after_its_last_checkpoint_takes_no_extra_step(tmp_path):
    """The process saved checkpoint-6 of 6 (mid-epoch) and died before the adapter: resuming loads
    it and saves it, where transformers alone would take a seventh step."""
    import shutil

    from safetensors.torch import load_file

    from nmm_core import cli
    from nmm_core.data import write_jsonl_dataset
    from nmm_core.testing.shapes import make_shapes_dataset

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(16, seed=4), data, split="train")
    args = ["train", "--data-source", str(data), "--data-prompt-column", "prompt", "--data-answers-column",
            "answers", "--train-max-steps", "6", "--train-save-steps", "3", "--train-batch-size", "4",
            "--output-dir", str(tmp_path / "runs")]
    assert cli.main(args) == 0
    (done,) = (tmp_path / "runs").iterdir()
    run = done.rename(done.with_name(done.name + ".incomplete"))
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "failed"}))
    shutil.rmtree(run / "adapter")

    assert cli.main([*args, "--resume", str(run)]) == 0
    (final,) = (tmp_path / "runs").iterdir()
    summary = json.loads((final / "status.json").read_text())["summary"]
    assert summary["global_step"] == 6 and summary["resumed_from"].endswith("checkpoint-6")
    saved = load_file(final / "adapter" / "adapter_model.safetensors")
    checkpoint = load_file(final / "checkpoints" / "checkpoint-6" / "adapter_model.safetensors")
    assert saved.keys() == checkpoint.keys() and all(saved[k].equal(checkpoint[k]) for k in saved)


def test_a_checkpoint_cut_short_by_a_kill_is_passed_over(tmp_path):
    from nmm_core.checkpoints import last_checkpoint

    assert last_checkpoint(tmp_path / "none") is None
    for step, complete in ((3, True), (6, True), (9, False), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")


def test_ctrl_c_names_the_folder_to_resume_and_the_resumed_run_its_checkpoint(tmp_path, capsys, monkeypatch):
    import transformers

    from nmm_core import cli
    from nmm_core.data import write_jsonl_dataset
    from nmm_core.testing.shapes import make_shapes_dataset

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(16, seed=4), data, split="train")
    args = ["train", "--data-source", str(data), "--data-prompt-column", "prompt", "--data-answers-column",
            "answers", "--train-max-steps", "3", "--train-save-steps", "2", "--train-batch-size", "4",
            "--output-dir", str(tmp_path / "runs")]
    real = transformers.Trainer.training_step
    steps = []

    def ctrl_c_in_step_three(self, *a, **k):
        steps.append(1)
        if len(steps) == 3:  # checkpoint-2 is saved
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(transformers.Trainer, "training_step", ctrl_c_in_step_three)
    assert cli.main(args) == 130
    (run,) = (tmp_path / "runs").iterdir()
    last = capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1]  # after the progress bar
    assert last[last.index("interrupted: "):] == (f"interrupted: {run} keeps its last checkpoint, checkpoint-2; "
                                                  f"continue with --resume {run}")
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["stopped_by"]) == ("interrupted", "KeyboardInterrupt")  # not failed

    monkeypatch.setattr(transformers.Trainer, "training_step", real)
    assert cli.main([*args, "--resume", str(run)]) == 0
    said = capsys.readouterr().err.splitlines()
    assert f"resuming from {run / 'checkpoints' / 'checkpoint-2'} (step 2)" in said


def test_resuming_another_program_s_run_names_the_program_and_its_command(tmp_path, capsys):
    from nmm_charts.cli import main as charts
    from nmm_core.cli import run_cli

    made: list[RunDir] = []
    assert run_cli(lambda: made.append(RunDir.create(tmp_path, "train", "tiny")), "nmm-pathology", "vqa train") == 0
    [run] = made
    dump_yaml(TrainConfig(data=DataSettings(source="pathology-data")), run.file("config.yaml"))
    run.fail(KeyboardInterrupt())
    status = json.loads(run.file("status.json").read_text())
    assert (status["program"], status["verb"]) == ("nmm-pathology", "vqa train")
    # before: a data.source difference, as if the settings were the trouble
    assert charts(["train", "--resume", str(run.path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --resume {run.path}: that run was made by nmm-pathology, not nmm-charts: resume it with "
        f"nmm-pathology vqa train --resume {run.path}")
