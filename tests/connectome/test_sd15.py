"""The SD1.5 path with the tiny twin: the matrix <-> image codec, training, prediction, eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from nmm_connectome.cli import main  # noqa: E402
from nmm_connectome.sd15 import MatrixCodec  # noqa: E402
from nmm_connectome.synthetic import SyntheticSpec, synthesize  # noqa: E402


def test_codec_round_trip_is_exact_on_a_whole_grid_and_measured_otherwise():
    mats = synthesize(SyntheticSpec(subjects=4, regions=16, networks=4, seed=0)).task
    codec = MatrixCodec(16, 64)
    images = codec.to_image(mats)
    assert images.shape == (4, 3, 64, 64) and images.min() >= -1 and images.max() <= 1
    np.testing.assert_allclose(codec.to_matrix(images), mats, atol=1e-6)
    assert codec.round_trip(mats) == pytest.approx({"mae": 0.0, "r": 1.0}, abs=1e-6)
    # 16 regions on 40 pixels: nearest-neighbour cells of unequal size, a small measured error
    uneven = MatrixCodec(16, 40).round_trip(mats)
    assert 0 < uneven["mae"] < 0.05 and uneven["r"] > 0.9
    # values beyond value_range are clipped
    clipped = MatrixCodec(16, 64, value_range=0.5).to_matrix(MatrixCodec(16, 64, value_range=0.5).to_image(mats))
    assert np.abs(clipped[:, ~np.eye(16, dtype=bool)]).max() <= 0.5 + 1e-6


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd15")
    assert main(["data", "synthesize", "--out", str(root / "cohort"), "--subjects", "40", "--regions", "16",
                 "--networks", "4"]) == 0
    return root


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_sd15_tiny_twin_trains_predicts_and_is_evaluated(cohort_dir, mode, capsys):
    runs = cohort_dir / f"runs-{mode}"
    assert main(["train", "--data", str(cohort_dir / "cohort"), "--method", "sd15", "--sd15-steps", "6",
                 "--sd15-batch-size", "4", "--sd15-inference-steps", "3", "--sd15-train-unet", mode,
                 "--sd15-device", "cpu", "--output-dir", str(runs)]) == 0
    [run] = sorted(runs.glob("*-train-sd15"))
    for name in ("model/unet/config.json", "model/unet/diffusion_pytorch_model.safetensors", "model/sd15.json",
                 "metrics.jsonl", "split.json"):
        assert (run / name).is_file(), name
    unet_config = json.loads((run / "model" / "unet" / "config.json").read_text())
    assert unet_config["in_channels"] == 8  # InstructPix2Pix: noisy latent + rest latent
    summary = json.loads((run / "status.json").read_text())["summary"]
    trip = summary["round_trip"]
    assert trip["codec"]["mae"] < 1e-6 and "codec + VAE" in trip  # the random tiny VAE: measured, not good
    assert np.isfinite(summary["held_out"]["mae"])
    out = cohort_dir / f"eval-{mode}"
    assert main(["eval", "--data", str(cohort_dir / "cohort"), "--runs", str(run), "--output-dir", str(out)]) == 0
    [ev] = sorted(out.glob("*-eval-*"))
    report = json.loads((ev / "report.json").read_text())
    assert "sd15" in report["methods"] and report["methods"]["sd15"]["subjects"] == 8
    assert report["round_trips"]["sd15"]["codec"]["r"] == pytest.approx(1.0)
    assert "round trip" in (ev / "report.md").read_text()
    assert main(["predict", "--run", str(run), "--output-dir", str(cohort_dir / f"pred-{mode}")]) == 0
    [pred] = sorted(Path(cohort_dir / f"pred-{mode}").glob("*/predictions.npz"))
    with np.load(pred) as z:
        assert z["task_pred"].shape == (8, 16, 16)


def test_sd15_training_is_core_trainers_lowers_the_loss_and_resumes_after_an_interruption(cohort_dir, monkeypatch,
                                                                                           capsys):
    from nmm_connectome import sd15

    runs = cohort_dir / "runs-resume"
    args = ["train", "--data", str(cohort_dir / "cohort"), "--method", "sd15", "--sd15-steps", "16",
            "--sd15-batch-size", "8", "--sd15-lr", "1e-3", "--sd15-save-steps", "4", "--sd15-inference-steps", "2",
            "--sd15-device", "cpu", "--output-dir", str(runs)]
    real = sd15.NoisePrediction.forward
    calls = []

    def killed_at_step_10(self, *a, **k):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt  # as Ctrl-C would, mid-run
        return real(self, *a, **k)

    monkeypatch.setattr(sd15.NoisePrediction, "forward", killed_at_step_10)
    assert main(args) == 130
    [run] = list(runs.iterdir())
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"  # Ctrl-C: resumable, not failed
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-8"]

    monkeypatch.setattr(sd15.NoisePrediction, "forward", real)
    capsys.readouterr()
    assert main([*args, "--sd15-lr", "1e-4", "--resume", str(run)]) == 2
    assert "it ran with sd15.lr=0.001, now 0.0001" in capsys.readouterr().err
    # settings an sd15 run does not read may differ
    assert main([*args, "--bridge-steps", "7", "--resume", str(run)]) == 0
    [done] = list(runs.iterdir())
    summary = json.loads((done / "status.json").read_text())["summary"]
    assert summary["global_step"] == 16 and summary["resumed_from"].endswith("checkpoint-8")
    losses = [r["loss"] for r in map(json.loads, (done / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.8 * losses[0]  # the noise is learnt: from ~1.2 (random UNet) down
    # the resumed run ends where an uninterrupted one does, weight for weight
    from safetensors.torch import load_file

    assert main([*args[:-1], str(cohort_dir / "runs-straight")]) == 0
    [straight] = list((cohort_dir / "runs-straight").iterdir())
    resumed, uninterrupted = (load_file(r / "model" / "unet" / "diffusion_pytorch_model.safetensors")
                              for r in (done, straight))
    assert resumed.keys() == uninterrupted.keys()
    assert all(resumed[k].equal(uninterrupted[k]) for k in resumed)

    capsys.readouterr()
    assert main([*args[:-1], str(cohort_dir / "runs-fp16"), "--sd15-dtype", "float16"]) == 2
    assert "drop --sd15-dtype float16" in capsys.readouterr().err

    assert main(["train", "--data", str(cohort_dir / "cohort"), "--method", "ridge", "--resume", str(done)]) == 2


@pytest.mark.parametrize("rank", [4, 8, 64])
def test_sd15_lora_alpha_is_its_rank_as_published(rank):
    from nmm_connectome.sd15 import unet_lora_config
    from nmm_connectome.settings import Sd15Settings

    config = unet_lora_config(Sd15Settings(train_unet="lora", lora_r=rank))
    assert (config.r, config.lora_alpha) == (rank, rank)
