"""The one trainer: it learns, logs, checkpoints, resumes after a kill, and runs under accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmm_core.data import write_jsonl_dataset
from nmm_core.lora import LoraSettings, apply_lora
from nmm_core.models import load_model
from nmm_core.runs import read_jsonl
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.train import TrainSettings, train


def test_overfitting_a_batch_lowers_the_loss(tmp_path):
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings(r=8, alpha=16, dropout=0.0))
    examples = make_shapes_dataset(8, seed=1)
    settings = TrainSettings(max_steps=30, batch_size=8, lr=1e-2, warmup=0, logging_steps=1,
                             save_steps=10)
    outcome = train(model, loaded.processor, loaded.family, examples, task=short_answer_task(),
                    settings=settings, run_dir=tmp_path, use_cpu=True)
    losses = [r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in r]
    assert outcome.global_step == 30
    assert len(losses) >= 25
    assert losses[-1] < 0.3 * losses[0], losses
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "checkpoint-20", "checkpoint-30"]  # save_total_limit=2 keeps the last two
    assert list((tmp_path / "tensorboard").iterdir()), "TensorBoard events are written"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _dataset(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(n, seed=2), data, split="train")
    return data


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-source", str(data), "--data-prompt-column", "prompt",
        "--data-answers-column", "answers", "--model-model", "tiny-qwen2-vl",
        "--lora-r", "4", "--train-batch-size", "2", "--train-logging-steps", "1",
        # the frozen vision tower and projector: the feature cache serves (the twin's recipe trains the projector)
        "--no-lora-train-projector", "--train-lr", "2e-4",
        "--output-dir", str(out), *extra,
    ]


@pytest.mark.slow
def test_a_run_killed_and_resumed_ends_where_the_uninterrupted_run_ends(tmp_path):
    """kill -9 after step 23 of 40 (checkpoints every 10), then --resume: with --deterministic the
    adapter is bit for bit the uninterrupted run's, and the records read as if it never stopped."""
    from nmm_core.testing.processes import largest_difference, run_all, run_killed

    data, out, straight = _dataset(tmp_path, 16), tmp_path / "runs", tmp_path / "straight"
    steps = 40
    settings = ("--train-max-steps", str(steps), "--train-save-steps", "10", "--train-save-total-limit", "5",
                "--deterministic")
    run_killed("nmm_core.cli", "train", *_train_cmd(data, out, *settings), after_step=23)
    (run,) = out.glob("*.incomplete")
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    assert not (run / "adapter").exists()
    assert max(r["step"] for r in read_jsonl(run / "metrics.jsonl")) == 23  # logged past checkpoint-20
    # what a kill during a write leaves (an atomic write's temp file, a half-saved adapter folder)
    (run / ".status.json.0123456789ab.tmp").write_text("{")
    (run / ".adapter-k1lled_x").mkdir()

    run_all([("nmm_core.cli", "train", *_train_cmd(data, out, *settings), "--resume", str(run)),
             ("nmm_core.cli", "train", *_train_cmd(data, straight, *settings))])
    final = run.with_name(run.name.removesuffix(".incomplete"))
    (uninterrupted,) = straight.iterdir()
    summary = json.loads((final / "status.json").read_text())["summary"]
    assert summary["global_step"] == steps
    assert summary["resumed_from"] == str(final / "checkpoints" / "checkpoint-20")
    assert Path(summary["resumed_from"]).is_dir()
    assert largest_difference(final / "adapter", uninterrupted / "adapter") == 0.0

    rows, straight_rows = (read_jsonl(r / "metrics.jsonl") for r in (final, uninterrupted))
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, steps + 1))  # one row per step
    assert [r["loss"] for r in rows if "loss" in r] == [r["loss"] for r in straight_rows if "loss" in r]
    straight_summary = json.loads((uninterrupted / "status.json").read_text())["summary"]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert summary["train_loss"] == straight_summary["train_loss"]  # the mean over all 40 steps
    assert summary["train_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert [r["train_loss"] for r in rows if "train_loss" in r] == [summary["train_loss"]]
    assert not [p for p in final.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".adapter")]
    # resumed at step 20 of 8-step epochs: the vision-feature cache fills again and serves epochs 4 and 5
    assert summary["feature_cache"]["hits"] > 0


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    # accelerate's `--cpu` launcher starts several processes only through mpirun; its torchrun
    # launcher (`--multi_gpu`) on a machine without CUDA gives gloo data parallelism on CPU.
    data, out = _dataset(tmp_path, 32), tmp_path / "runs"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "nmm_core.cli", "train",
           *_train_cmd(data, out, "--train-max-steps", "4", "--train-save-steps", "100")]
    env = _env()
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert not run.name.endswith(".incomplete")
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "complete" and status["summary"]["global_step"] == 4
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert status["summary"]["world_size"] == 2
