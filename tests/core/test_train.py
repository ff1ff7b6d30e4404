"""The one trainer: it learns, logs, checkpoints, resumes after a kill, and runs under accelerate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
        "--output-dir", str(out), *extra,
    ]


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    data, out = _dataset(tmp_path, 64), tmp_path / "runs"
    steps = 120
    cmd = [sys.executable, "-m", "nmm_core.cli", "train",
           *_train_cmd(data, out, "--train-max-steps", str(steps), "--train-save-steps", "10")]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            found = list(out.glob("*.incomplete/checkpoints/checkpoint-20/trainer_state.json"))
            if found or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert found, "no checkpoint appeared in time"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    (run,) = out.glob("*.incomplete")
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    assert not (run / "adapter").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "nmm_core.cli", "train",
         *_train_cmd(data, out, "--train-max-steps", str(steps), "--train-save-steps", "10"),
         "--resume", str(run)],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = run.with_name(run.name.removesuffix(".incomplete"))
    status = json.loads((final / "status.json").read_text())
    assert status["state"] == "complete"
    assert status["summary"]["global_step"] == steps
    assert status["summary"]["resumed_from"].split("checkpoint-")[-1] in {"20", "30", "40"}
    assert (final / "adapter" / "adapter_model.safetensors").exists()
    state = json.loads((final / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps


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
