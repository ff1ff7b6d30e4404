"""Functional connectivity from parcellated time series, shared by CIFTI cohorts (fc) and array folders (data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from nmm_core.errors import DataError

Estimator = Literal["empirical", "ledoit_wolf"]


def connectivity(runs: Sequence[np.ndarray], *, estimator: Estimator | str = "empirical",
                 source: str = "") -> np.ndarray:
    """Correlation FC (regions, regions) of one or more runs of shape (frames, regions).

    Each run is z-scored per region before concatenation, so runs with different scanner
    scaling weigh by their length only. `empirical` is the plain Pearson correlation;
    `ledoit_wolf` is nilearn's default shrinkage.
    """
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import EmpiricalCovariance, LedoitWolf

    if not runs:
        raise DataError(f"{source}: no runs to compute FC from")
    parts = []
    for k, ts in enumerate(runs):
        ts = np.asarray(ts, dtype=np.float64)
        where = f"{source} run {k}" if len(runs) > 1 else source
        if ts.ndim != 2:
            raise DataError(f"{where}: time series must be 2-D (frames, regions), got {ts.shape}")
        if ts.shape[1] != np.shape(runs[0])[1]:
            raise DataError(f"{where}: {ts.shape[1]} regions, first run has {np.shape(runs[0])[1]}")
        if ts.shape[0] < 3:
            raise DataError(f"{where}: {ts.shape[0]} frames; FC needs at least 3")
        if not np.isfinite(ts).all():
            raise DataError(f"{where}: {int((~np.isfinite(ts)).sum())} NaN/Inf values")
        sd = ts.std(axis=0)
        flat = np.flatnonzero(sd < 1e-8 * max(1.0, float(np.abs(ts).max())))
        if len(flat):
            raise DataError(f"{where}: {len(flat)} regions have a constant signal (first: column "
                            f"{int(flat[0])}); FC is undefined there")
        parts.append((ts - ts.mean(axis=0)) / sd)
    if estimator not in ("empirical", "ledoit_wolf"):
        raise DataError(f"estimator {estimator!r}: expected 'empirical' or 'ledoit_wolf'")
    cov = EmpiricalCovariance() if estimator == "empirical" else LedoitWolf(store_precision=False)
    measure = ConnectivityMeasure(kind="correlation", cov_estimator=cov, standardize="zscore_sample")
    fc = measure.fit_transform([np.concatenate(parts)])[0]
    np.fill_diagonal(fc, 1.0)
    return fc
