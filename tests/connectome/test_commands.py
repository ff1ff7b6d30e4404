"""`nmm-connectome` commands end to end on the synthetic cohort and tiny CIFTI files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nmm_connectome.cli import main
from nmm_connectome.data import load_cohort


def _only(folder: Path, pattern: str) -> Path:
    [path] = sorted(folder.glob(pattern))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One synthetic cohort, a bridge run and a ridge run, shared by the tests below."""
    root = tmp_path_factory.mktemp("connectome")
    cohort = root / "cohort"
    assert main(["data", "synthesize", "--out", str(cohort), "--subjects", "600", "--regions", "30",
                 "--seed", "1"]) == 0
    runs = root / "runs"
    assert main(["train", "--data", str(cohort), "--method", "bridge", "--output-dir", str(runs)]) == 0
    assert main(["train", "--data", str(cohort), "--method", "ridge", "--output-dir", str(runs)]) == 0
    return root, cohort, runs


def test_synthesize_and_inspect(workspace, capsys):
    _, cohort, _ = workspace
    assert (cohort / "cohort.json").is_file() and len(list((cohort / "fc").glob("*.npz"))) == 600
    loaded, problems = load_cohort(cohort)
    assert problems == [] and loaded.n_regions == 30
    assert main(["data", "inspect", "--data", str(cohort)]) == 0
    out = capsys.readouterr().out
    assert "subjects                             600" in out and "kept 600 of 600 subjects" in out


def test_train_writes_model_split_metrics_and_status(workspace):
    _, _, runs = workspace
    bridge = _only(runs, "*-train-bridge")
    for name in ("config.yaml", "split.json", "metrics.jsonl", "loss.png", "model/bridge.pt", "model/bridge.json"):
        assert (bridge / name).is_file(), name
    status = json.loads((bridge / "status.json").read_text())
    assert status["state"] == "complete"
    summary = status["summary"]
    assert summary["train_subjects"] == 480 and summary["best_step"] >= 25
    assert summary["held_out"]["r_subject"] > 0.6
    split = json.loads((bridge / "split.json").read_text())
    assert len(split["test"]) == 120 and not set(split["test"]) & set(split["train"])
    ridge = _only(runs, "*-train-ridge")
    assert (ridge / "model" / "ridge.npz").is_file()
    assert json.loads((ridge / "split.json").read_text())["test"] == split["test"]


def test_eval_compares_runs_and_baselines_on_the_same_subjects(workspace, capsys):
    root, cohort, runs = workspace
    out_dir = root / "eval"
    train_runs = [str(p) for p in sorted(runs.glob("*-train-*"))]
    assert main(["eval", "--data", str(cohort), "--runs", *train_runs, "--output-dir", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "bridge (x0-conditioned)" in printed and "ridge (PCA 50)" in printed  # the size it kept
    run = _only(out_dir, "*-eval-connectome")
    for name in ("report.md", "report.json", "methods.png", "matrices.png", "edges.png", "predictions.npz"):
        assert (run / name).stat().st_size > 0, name
    report = json.loads((run / "report.json").read_text())
    methods = report["methods"]
    assert set(methods) == {"rest FC", "group mean", "ridge (PCA 50)", "bridge (x0-conditioned)",
                            "bridge (x0-conditioned), 1-step endpoint", "ridge"}
    assert all(m["subjects"] == 120 for m in methods.values())
    bridge, rest, mean = methods["bridge (x0-conditioned)"], methods["rest FC"], methods["group mean"]
    assert bridge["r_subject"] > rest["r_subject"] + 0.02 and mean["r_subject"] == 0.0
    assert methods["ridge"]["r_subject"] == pytest.approx(methods["ridge (PCA 50)"]["r_subject"])
    assert any(v.startswith("bridge (x0-conditioned) beats the rest-FC and group-mean") for v in report["verdicts"])
    assert not any(v.startswith("ridge (PCA") for v in report["verdicts"])  # a baseline gets no verdict
    md = (run / "report.md").read_text()
    assert "| bridge (x0-conditioned) |" in md and "beats the rest-FC" in md
    with np.load(run / "predictions.npz") as z:
        assert z["edges"].shape == (6, 120, 435) and z["truth"].shape == (120, 435)
    # the numbers in the report are those of the saved predictions
    from nmm_connectome.evaluate import pearson_rows

    with np.load(run / "predictions.npz") as z:
        i = list(z["methods"]).index("rest FC")
        np.testing.assert_allclose(pearson_rows(z["edges"][i], z["truth"]).mean(), rest["r"], rtol=1e-5)


def test_predict_writes_matrices_for_the_held_out_subjects(workspace):
    root, _, runs = workspace
    bridge = _only(runs, "*-train-bridge")
    assert main(["predict", "--run", str(bridge), "--output-dir", str(root / "pred")]) == 0
    with np.load(_only(root / "pred", "*-predict-*") / "predictions.npz") as z:
        pred, subjects = z["task_pred"], list(z["subjects"])
    assert subjects == json.loads((bridge / "split.json").read_text())["test"]
    assert pred.shape == (120, 30, 30)
    np.testing.assert_array_equal(pred, np.swapaxes(pred, 1, 2))
    np.testing.assert_array_equal(np.diagonal(pred, axis1=1, axis2=2), 1.0)


def test_eval_refuses_a_run_trained_on_another_split(workspace, capsys):
    root, cohort, runs = workspace
    bridge = _only(runs, "*-train-bridge")
    code = main(["eval", "--data", str(cohort), "--runs", str(bridge), "--split-seed", "7",
                 "--output-dir", str(root / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "another split" in err and bridge.name in err


def test_train_from_yaml_with_flag_override(workspace, tmp_path):
    _, cohort, _ = workspace
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {cohort}\nmethod: bridge\nbridge:\n  steps: 20\n  eval_every: 10\n  hidden: 16\n"
                   f"  condition_on_x0: false\n  sigma: 0.2\n")
    assert main(["train", "--config", str(cfg), "--bridge-samples", "2", "--name", "nox0",
                 "--output-dir", str(tmp_path / "runs")]) == 0
    run = _only(tmp_path / "runs", "*-train-nox0")
    saved = json.loads((run / "model" / "bridge.json").read_text())["settings"]
    assert saved["steps"] == 20 and saved["samples"] == 2 and saved["condition_on_x0"] is False


def test_build_fc_from_hcp_cifti(tmp_path, cifti, capsys):
    atlas = cifti.write_dlabel(tmp_path / "atlas.dlabel.nii")
    root = tmp_path / "hcp"
    for k, subject in enumerate(("100206", "100307", "100408")):
        results = root / subject / "MNINonLinear" / "Results"
        run = "rfMRI_REST1_LR"
        cifti.write_dtseries(results / run / f"{run}_Atlas_MSMAll_hp2000_clean.dtseries.nii",
                             cifti.parcel_signals(200, seed=k), seed=k)
        if subject != "100408":
            cifti.write_dtseries(results / "tfMRI_MOTOR_RL" / "tfMRI_MOTOR_RL_Atlas_MSMAll.dtseries.nii",
                                 cifti.parcel_signals(284, seed=50 + k), seed=k)
    out = tmp_path / "cohort"
    assert main(["data", "build-fc", "--source", str(root), "--parcellation", str(atlas), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "kept 2 of 3 subjects; skipped 1: 1 unpaired" in captured.err
    cohort, _ = load_cohort(out)
    assert cohort.subjects == ["100206", "100307"] and cohort.regions == list(cifti.PARCELS)
    problem = json.loads((out / "problems.jsonl").read_text().splitlines()[0])
    assert problem["id"] == "100408" and problem["kind"] == "unpaired"
    # --on-bad stop turns the same skip into an error naming the subject
    code = main(["data", "build-fc", "--source", str(root), "--parcellation", str(atlas),
                 "--out", str(tmp_path / "c2"), "--on-bad", "stop"])
    assert code == 2 and "record '100408'" in capsys.readouterr().err


def test_build_fc_from_precomputed_matrices_and_bad_input(tmp_path, capsys):
    src = tmp_path / "fc"
    rng = np.random.default_rng(0)
    for subject in ("a", "b", "c", "d"):
        for cond in ("rest", "task"):
            (src / cond).mkdir(parents=True, exist_ok=True)
            np.save(src / cond / f"{subject}.npy", np.corrcoef(rng.standard_normal((6, 100))))
    bad = np.corrcoef(rng.standard_normal((6, 100)))
    bad[0, 3] = 0.9  # no longer symmetric
    np.save(src / "task" / "d.npy", bad)
    out = tmp_path / "cohort"
    assert main(["data", "build-fc", "--source", str(src), "--input", "fc", "--out", str(out)]) == 0
    assert "skipped 1: 1 not symmetric" in capsys.readouterr().err
    assert load_cohort(out)[0].subjects == ["a", "b", "c"]
    code = main(["data", "build-fc", "--source", str(src), "--input", "fc", "--out", str(tmp_path / "x"),
                 "--on-bad", "stop"])
    err = capsys.readouterr().err
    assert code == 2 and "record 'd' field 'task'" in err and "d.npy" in err and "not symmetric" in err
    # a cifti build without a parcellation, and a folder that is no cohort
    assert main(["data", "build-fc", "--source", str(src), "--out", str(tmp_path / "y")]) == 2
    assert "--parcellation" in capsys.readouterr().err
    assert main(["data", "inspect", "--data", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["data", "synthesize", "--out", str(tmp_path / "z"), "--regions", "5"]) == 2
    assert "regions must be at least" in capsys.readouterr().err


def test_eval_report_counts_the_skipped_subjects_and_lists_them(tmp_path, capsys):
    src, rng = tmp_path / "fc", np.random.default_rng(0)
    subjects = [f"s{i:02d}" for i in range(12)]
    for subject in subjects:
        for cond in ("rest", "task"):
            (src / cond).mkdir(parents=True, exist_ok=True)
            np.save(src / cond / f"{subject}.npy", np.corrcoef(rng.standard_normal((6, 100))))
    bad = np.load(src / "task" / "s03.npy")
    bad[0, 3] = 0.9  # no longer symmetric
    np.save(src / "task" / "s03.npy", bad)
    assert main(["eval", "--data", str(src), "--output-dir", str(tmp_path / "runs")]) == 0
    run = _only(tmp_path / "runs", "*-eval-*")
    assert "- records: 11 of 12 used; 1 skipped, listed in problems-data.jsonl" in (run / "report.md").read_text()
    records = json.loads((run / "report.json").read_text())["records"]
    assert records == {"used": 11, "total": 12, "skipped": 1, "listed_in": "problems-data.jsonl"}
    [listed] = [json.loads(line) for line in (run / "problems-data.jsonl").read_text().splitlines()]
    assert listed["id"] == "s03" and listed["field"] == "task"


def test_inspect_lists_skipped_subjects_like_the_kit_and_writes_them_all(tmp_path, capsys):
    src = tmp_path / "fc"
    rng = np.random.default_rng(0)
    for subject in ("a", "b", "c", "d", "e", "f"):
        for cond in ("rest", "task"):
            (src / cond).mkdir(parents=True, exist_ok=True)
            m = np.corrcoef(rng.standard_normal((6, 100)))
            if subject in ("d", "e") and cond == "task":
                m[0, 3] = 0.9  # no longer symmetric
            np.save(src / cond / f"{subject}.npy", m)
    problems = tmp_path / "out" / "problems.jsonl"
    assert main(["data", "inspect", "--data", str(src), "--listed", "1", "--problems", str(problems)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.endswith("kept 4 of 6 subjects; skipped 2: 2 not symmetric") for line in out)
    skipped = [line for line in out if line.startswith("  skipped") or line.startswith("  ...")]
    assert skipped[0].startswith("  skipped record 'd' field 'task': ") and "not symmetric" in skipped[0]
    assert skipped[1:] == ["  ... and 1 more (--problems FILE lists all)"]
    rows = [json.loads(line) for line in problems.read_text().splitlines()]
    assert [(r["id"], r["field"], r["kind"]) for r in rows] == [("d", "task", "not symmetric"),
                                                               ("e", "task", "not symmetric")]


def test_a_stopped_bridge_run_says_it_does_not_resume_and_clean_failed_removes_it(workspace, tmp_path, monkeypatch,
                                                                                  capsys):
    import dataclasses

    from nmm_connectome.methods import METHODS

    def stopped(cfg, train, run):
        raise KeyboardInterrupt  # as Ctrl-C would, mid-fit

    _, cohort, _ = workspace
    runs = tmp_path / "runs"
    monkeypatch.setitem(METHODS, "bridge", dataclasses.replace(METHODS["bridge"], fit=stopped))
    assert main(["train", "--data", str(cohort), "--method", "bridge", "--output-dir", str(runs)]) == 130
    [run] = list(runs.iterdir())
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"interrupted: {run} keeps no checkpoints (this run does not resume: run it again; " \
                   "runs --clean-failed removes it)"
    assert main(["runs", "--runs-dir", str(runs), "--clean-failed"]) == 0
    assert f"removing interrupted run {run}" in capsys.readouterr().out and not run.exists()
