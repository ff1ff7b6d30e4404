"""One seed fixes a connectome run, in two processes; an sd15 run killed with SIGKILL and resumed ends
where the uninterrupted run ends."""

from __future__ import annotations

import json

import pytest

from nmm_connectome.cli import main
from nmm_core.runs import read_jsonl
from nmm_core.testing.processes import largest_difference, run_all, run_killed

SD15 = ("--method", "sd15", "--sd15-batch-size", "8", "--sd15-inference-steps", "2", "--sd15-device", "cpu")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    assert main(["data", "synthesize", "--out", str(root / "cohort"), "--subjects", "40", "--regions", "16",
                 "--networks", "4"]) == 0
    return root / "cohort"


def _train(cohort, out, *args: str) -> tuple[str, ...]:
    return ("nmm_connectome.cli", "train", "--data", str(cohort), "--output-dir", str(out), *args)


def _run(out):
    (run,) = out.iterdir()
    return run


@pytest.mark.slow
def test_bridge_and_sd15_with_the_same_seed_save_bit_identical_models_in_two_processes(cohort, tmp_path):
    pytest.importorskip("diffusers")
    bridge = ("--method", "bridge", "--bridge-steps", "30", "--bridge-eval-every", "10")
    sd15 = (*SD15, "--sd15-steps", "3")
    out = {name: tmp_path / name for name in ("ba", "bb", "bother", "sa", "sb")}
    run_all([_train(cohort, out["ba"], *bridge, "--seed", "5"), _train(cohort, out["bb"], *bridge, "--seed", "5"),
             _train(cohort, out["bother"], *bridge, "--seed", "6"),
             _train(cohort, out["sa"], *sd15, "--seed", "5"), _train(cohort, out["sb"], *sd15, "--seed", "5")])
    assert largest_difference(_run(out["ba"]) / "model", _run(out["bb"]) / "model") == 0.0
    assert largest_difference(_run(out["sa"]) / "model", _run(out["sb"]) / "model") == 0.0
    assert largest_difference(_run(out["ba"]) / "model", _run(out["bother"]) / "model") > 1e-3
    summary = json.loads((_run(out["sa"]) / "status.json").read_text())["summary"]
    assert summary["seeds"] == {"split.seed": 5, "bridge.seed": 5, "sd15.seed": 5, "seed": 5}
    bridge_seeds = json.loads((_run(out["bother"]) / "status.json").read_text())["summary"]["seeds"]
    assert bridge_seeds["bridge.seed"] == 6


@pytest.mark.slow
def test_sd15_killed_and_resumed_ends_where_the_uninterrupted_run_ends(cohort, tmp_path):
    pytest.importorskip("diffusers")
    args = (*SD15, "--sd15-steps", "8", "--sd15-save-steps", "4", "--deterministic")
    runs, straight = tmp_path / "runs", tmp_path / "straight"
    run_killed(*_train(cohort, runs, *args), after_step=6)
    (run,) = runs.glob("*.incomplete")
    run_all([(*_train(cohort, runs, *args), "--resume", str(run)), _train(cohort, straight, *args)])
    done, uninterrupted = _run(runs), _run(straight)
    assert largest_difference(done / "model", uninterrupted / "model") == 0.0
    summary, straight_summary = (json.loads((r / "status.json").read_text())["summary"] for r in (done, uninterrupted))
    assert summary["resumed_from"] == str(done / "checkpoints" / "checkpoint-4")
    assert summary["final_loss"] == straight_summary["final_loss"]
    rows, straight_rows = (read_jsonl(r / "metrics.jsonl") for r in (done, uninterrupted))
    assert [(r["step"], r["loss"]) for r in rows if "loss" in r] == [
        (r["step"], r["loss"]) for r in straight_rows if "loss" in r]
    assert [r["train_loss"] for r in rows if "train_loss" in r] == [
        r["train_loss"] for r in straight_rows if "train_loss" in r]
