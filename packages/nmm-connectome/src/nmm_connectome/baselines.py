"""Baselines every report carries: the rest FC itself, the group-mean task FC, PCA + ridge.

All work on upper-triangle edge vectors, shape (n_subjects, E).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmm_core.errors import DataError
from nmm_core.files import atomic_write_npz


def rest_fc(rest: np.ndarray) -> np.ndarray:
    """Predict each subject's task FC by its own rest FC: (n, E) -> (n, E)."""
    return np.array(rest, dtype=np.float32, copy=True)


def group_mean(train_task: np.ndarray, n: int) -> np.ndarray:
    """Predict everyone's task FC by the training subjects' mean: (n_train, E) -> (n, E)."""
    return np.repeat(np.asarray(train_task, dtype=np.float32).mean(axis=0, keepdims=True), n, axis=0)


@dataclass
class PcaRidge:
    """Rest edges -> PCA (k components) -> ridge regression -> task edges.

    The fitted model is plain arrays (saved as .npz, no pickle):
    y = y_mean + ((x - x_mean) @ components.T) @ coef.T

    x_mean : (E,), components : (k, E), coef : (E, k), y_mean : (E,)
    """

    x_mean: np.ndarray
    components: np.ndarray
    coef: np.ndarray
    y_mean: np.ndarray
    alpha: float

    @classmethod
    def fit(cls, rest: np.ndarray, task: np.ndarray, *, n_components: int = 50,
            alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)) -> PcaRidge:
        """Fit on training edges; `alpha` is chosen by efficient leave-one-out (RidgeCV)."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import RidgeCV

        rest, task = np.asarray(rest, np.float64), np.asarray(task, np.float64)
        if len(rest) < 3:
            raise DataError(f"ridge needs at least 3 training subjects, got {len(rest)}")
        k = max(1, min(n_components, len(rest) - 1, rest.shape[1]))
        pca = PCA(n_components=k, svd_solver="full").fit(rest)
        ridge = RidgeCV(alphas=list(alphas)).fit(pca.transform(rest), task)
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                   np.asarray(ridge.coef_, np.float32), np.asarray(ridge.intercept_, np.float32),
                   float(ridge.alpha_))

    def predict(self, rest: np.ndarray) -> np.ndarray:
        """(n, E) rest edges -> (n, E) predicted task edges."""
        scores = (np.asarray(rest, np.float32) - self.x_mean) @ self.components.T
        return scores @ self.coef.T + self.y_mean

    def save(self, path: str | Path) -> Path:
        return atomic_write_npz(path, x_mean=self.x_mean, components=self.components, coef=self.coef,
                                y_mean=self.y_mean, alpha=np.float64(self.alpha))

    @classmethod
    def load(cls, path: str | Path) -> PcaRidge:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["x_mean"], z["components"], z["coef"], z["y_mean"], float(z["alpha"]))
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{path}: not a saved ridge model ({e})") from None
