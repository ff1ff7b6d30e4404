"""The domain's methods as one table, name -> (fit, save, predict): adding a method is one row.

Heavy libraries load inside the functions, so the table (and `--help`) stays torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nmm_connectome.evaluate import to_edges
from nmm_core.runs import RunDir, append_jsonl

if TYPE_CHECKING:
    from nmm_connectome.commands import TrainConfig
    from nmm_connectome.data import Cohort

Predict = Callable[[Path, np.ndarray], np.ndarray]  # (the run's model folder, rest edges) -> task edges


@dataclass(frozen=True)
class Method:
    """How a method trains into a run folder, saves under `model/`, and predicts from it."""

    fit: Callable[[TrainConfig, Cohort, RunDir], Any]  # the fitted model (training subjects only)
    save: Callable[[Any, RunDir], dict]  # writes it under the run's model/; its summary fields
    predict: Predict
    label: Callable[[TrainConfig], str] = lambda cfg: cfg.method  # its row in eval's report
    # `train --resume` continues it from its checkpoints, and may change these of its settings; None: it keeps none
    resume_may_change: tuple[str, ...] | None = None
    one_step: Predict | None = None  # a second prediction eval scores with `--one-step` (bridge's endpoint)
    round_trip: Callable[[Path], dict] | None = None  # what eval's report says of the model's codec


def _fit_ridge(cfg: TrainConfig, train: Cohort, run: RunDir):
    from nmm_connectome.baselines import PcaRidge

    return PcaRidge.fit(to_edges(train.rest), to_edges(train.task), n_components=cfg.ridge.components,
                        alphas=cfg.ridge.alphas)


def _save_ridge(model, run: RunDir) -> dict:
    model.save(run.subdir("model") / "ridge.npz")
    return {"alpha": model.alpha}


def _predict_ridge(model_dir: Path, rest: np.ndarray) -> np.ndarray:
    from nmm_connectome.baselines import PcaRidge

    return PcaRidge.load(model_dir / "ridge.npz").predict(rest)


def _fit_bridge(cfg: TrainConfig, train: Cohort, run: RunDir):
    from nmm_connectome.bridge import train_bridge

    rows: list[dict] = []

    def record(row: dict) -> None:
        rows.append(row)
        append_jsonl(run.file("metrics.jsonl"), row)

    return train_bridge(to_edges(train.rest), to_edges(train.task), cfg.bridge, log=record), rows


def _save_bridge(fitted, run: RunDir) -> dict:
    from nmm_connectome.report import plot_training

    model, rows = fitted
    model.save(run.subdir("model"))
    plot_training(rows, run.file("loss.png"))
    return {"best_step": model.best_step, "best_val_loss": model.best_val_loss, "steps": rows[-1]["step"]}


def _predict_bridge(model_dir: Path, rest: np.ndarray, *, one_step: bool = False) -> np.ndarray:
    from nmm_connectome.bridge import BridgeModel

    model = BridgeModel.load(model_dir)
    return model.predict(rest, steps=1, samples=1) if one_step else model.predict(rest)


def _label_bridge(cfg: TrainConfig) -> str:
    return "bridge (x0-conditioned)" if cfg.bridge.condition_on_x0 else "bridge (unconditioned)"


def _fit_sd15(cfg: TrainConfig, train: Cohort, run: RunDir) -> dict:
    from nmm_connectome.sd15 import train_sd15

    # trains with core's trainer and saves the UNet itself (its checkpoints make it resumable)
    return train_sd15(train, cfg.sd15, run, resume=bool(cfg.resume), deterministic=cfg.deterministic)


def _predict_sd15(model_dir: Path, rest: np.ndarray) -> np.ndarray:
    from nmm_connectome.sd15 import predict_sd15

    return predict_sd15(model_dir, rest)


def _round_trip_sd15(model_dir: Path) -> dict:
    return json.loads((model_dir / "sd15.json").read_text())["round_trip"]


METHODS: dict[str, Method] = {
    "bridge": Method(_fit_bridge, _save_bridge, _predict_bridge, label=_label_bridge,
                     one_step=lambda model_dir, rest: _predict_bridge(model_dir, rest, one_step=True)),
    "ridge": Method(_fit_ridge, _save_ridge, _predict_ridge),
    "sd15": Method(_fit_sd15, lambda summary, run: summary, _predict_sd15,
                   resume_may_change=("sd15.save_steps", "sd15.device"),
                   round_trip=_round_trip_sd15),
}
