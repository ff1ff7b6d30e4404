"""The domain's methods as one table, name -> (fit, save, predict): adding a method is one row (and its settings)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmm_connectome.baselines import PcaRidge
from nmm_connectome.evaluate import to_edges
from nmm_core.runs import RunDir, append_jsonl

Predict = Callable[[Path, np.ndarray], np.ndarray]  # (the run's model folder, rest edges) -> task edges


@dataclass(frozen=True)
class Method:
    """How a method fits on the training subjects, saves under the run's model/ (its summary), predicts."""

    fit: Callable[[Any, Any, RunDir], Any]  # (train config, training cohort, run) -> the fitted model
    save: Callable[[Any, RunDir], dict]
    predict: Predict
    label: Callable[[Any], str] = lambda cfg: cfg.method  # its row in eval's report
    one_step: Predict | None = None  # a second prediction eval scores with --one-step (bridge's endpoint)
    round_trip: Callable[[Path], dict] | None = None  # what eval's report says of its matrix codec
    # `train --resume` continues it from its checkpoints, and may change these settings; None: it keeps none
    resume_may_change: tuple[str, ...] | None = None


def _ridge_save(model: PcaRidge, run: RunDir) -> dict:
    model.save(run.subdir("model") / "ridge.npz")
    return {"alpha": model.alpha}


def _bridge(cfg, train, run: RunDir):
    from nmm_connectome.bridge import train_bridge

    rows: list[dict] = []
    log = lambda row: (rows.append(row), append_jsonl(run.file("metrics.jsonl"), row))  # noqa: E731
    return train_bridge(to_edges(train.rest), to_edges(train.task), cfg.bridge, log=log), rows


def _bridge_save(fitted, run: RunDir) -> dict:
    from nmm_connectome.report import plot_training

    model, rows = fitted
    model.save(run.subdir("model"))
    plot_training(rows, run.file("loss.png"))
    return {"best_step": model.best_step, "best_val_loss": model.best_val_loss, "steps": rows[-1]["step"]}


def _bridge_predict(model_dir: Path, rest: np.ndarray, *, one_step: bool = False) -> np.ndarray:
    from nmm_connectome.bridge import BridgeModel

    model = BridgeModel.load(model_dir)
    return model.predict(rest, steps=1, samples=1) if one_step else model.predict(rest)


def _sd15(cfg, train, run: RunDir) -> dict:
    from nmm_connectome.sd15 import train_sd15

    # core's trainer; it saves the UNet itself, and its checkpoints make it resumable
    return train_sd15(train, cfg.sd15, run, resume=bool(cfg.resume), deterministic=cfg.deterministic)


def _sd15_predict(model_dir: Path, rest: np.ndarray) -> np.ndarray:
    from nmm_connectome.sd15 import predict_sd15

    return predict_sd15(model_dir, rest)


METHODS: dict[str, Method] = {
    "bridge": Method(_bridge, _bridge_save, _bridge_predict,
                     label=lambda cfg: "bridge (x0-conditioned)" if cfg.bridge.condition_on_x0
                     else "bridge (unconditioned)",
                     one_step=lambda model_dir, rest: _bridge_predict(model_dir, rest, one_step=True)),
    "ridge": Method(lambda cfg, train, run: PcaRidge.fit(to_edges(train.rest), to_edges(train.task),
                                                         n_components=cfg.ridge.components, alphas=cfg.ridge.alphas),
                    _ridge_save, lambda model_dir, rest: PcaRidge.load(model_dir / "ridge.npz").predict(rest)),
    "sd15": Method(_sd15, lambda summary, run: summary, _sd15_predict,
                   resume_may_change=("sd15.save_steps", "sd15.device"),
                   round_trip=lambda model_dir: json.loads((model_dir / "sd15.json").read_text())["round_trip"]),
}
