"""The field's measures for predicted FC, per subject, on upper-triangle edges (numpy only).

- `r`: Pearson correlation between predicted and true task edges;
- `r_subject`: the same after subtracting the group-mean task FC (of the training subjects)
  from both, i.e. how well the subject-specific part is predicted. A prediction with no
  subject-specific part (the group mean itself) has zero variance there and scores 0;
- `mae`: mean absolute error over edges;
- identification: prediction i is identified when its correlation with subject i's true task
  edges is higher than with every other held-out subject's (Finn et al. 2015 style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def n_regions_for(n_edges: int) -> int:
    """R such that R (R - 1) / 2 == n_edges."""
    r = int(round((1 + np.sqrt(1 + 8 * n_edges)) / 2))
    if r * (r - 1) // 2 != n_edges:
        raise ValueError(f"{n_edges} is not the edge count of a square matrix")
    return r


def to_edges(m: np.ndarray) -> np.ndarray:
    """Upper-triangle edges: (..., R, R) -> (..., R (R - 1) / 2); edge vectors pass through."""
    m = np.asarray(m)
    if m.ndim >= 2 and m.shape[-1] == m.shape[-2]:
        i, j = np.triu_indices(m.shape[-1], k=1)
        return m[..., i, j]
    return m


def from_edges(e: np.ndarray, diagonal: float = 1.0) -> np.ndarray:
    """Symmetric matrices from edges: (..., E) -> (..., R, R) with `diagonal` on the diagonal."""
    e = np.asarray(e)
    r = n_regions_for(e.shape[-1])
    out = np.zeros(e.shape[:-1] + (r, r), dtype=e.dtype)
    i, j = np.triu_indices(r, k=1)
    out[..., i, j] = e
    out[..., j, i] = e
    idx = np.arange(r)
    out[..., idx, idx] = diagonal
    return out


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=-1))
    return centred, norm


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of `a` with the same row of `b`: (n, E), (n, E) -> (n,).

    A row with (numerically) zero variance, such as a constant prediction, carries no pattern
    and scores 0: edges are correlation-sized, so a spread below 1e-5 per edge is round-off.
    """
    ca, na = _standardize(a)
    cb, nb = _standardize(b)
    tol = 1e-5 * np.sqrt(np.shape(a)[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ca * cb).sum(axis=-1) / (na * nb)
    return np.where((na > tol) & (nb > tol), r, 0.0)


def pearson_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of every row of `a` with every row of `b`: (n, E), (m, E) -> (n, m)."""
    ca, na = _standardize(a)
    cb, nb = _standardize(b)
    denom = np.outer(na, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ca @ cb.T / denom
    return np.where(denom > 0, r, 0.0)


def identified(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per subject: is corr(pred_i, true_i) strictly above corr(pred_i, true_j) for all j != i?"""
    c = pearson_matrix(pred, true)
    n = len(c)
    if n < 2:
        return np.zeros(n, dtype=bool)
    others = np.where(np.eye(n, dtype=bool), -np.inf, c)
    return np.diag(c) > others.max(axis=1)


@dataclass
class Scores:
    """One method's per-subject scores on the held-out subjects."""

    method: str
    subjects: list[str]
    r: np.ndarray
    r_subject: np.ndarray
    mae: np.ndarray
    identified: np.ndarray

    def summary(self) -> dict[str, float]:
        """Means (and standard deviations) over subjects; identification as a fraction."""
        return {
            "r": float(self.r.mean()), "r_sd": float(self.r.std()),
            "r_subject": float(self.r_subject.mean()), "r_subject_sd": float(self.r_subject.std()),
            "mae": float(self.mae.mean()), "mae_sd": float(self.mae.std()),
            "identification": float(self.identified.mean()), "subjects": len(self.subjects),
        }

    def per_subject(self) -> list[dict[str, object]]:
        return [{"subject": s, "r": float(r), "r_subject": float(rs), "mae": float(m),
                 "identified": bool(i)}
                for s, r, rs, m, i in zip(self.subjects, self.r, self.r_subject, self.mae,
                                          self.identified, strict=True)]


def score(method: str, pred: np.ndarray, true: np.ndarray, group_mean: np.ndarray,
          subjects: Sequence[str]) -> Scores:
    """Score predictions against the truth.

    pred, true : ndarray, shape (n, R, R) or (n, E)
    group_mean : ndarray, shape (R, R) or (E,): the mean task FC of the training subjects
    """
    p, t, g = to_edges(pred), to_edges(true), to_edges(group_mean)
    if p.shape != t.shape or g.shape != t.shape[1:]:
        raise ValueError(f"shapes differ: pred {p.shape}, true {t.shape}, group mean {g.shape}")
    if len(subjects) != len(t):
        raise ValueError(f"{len(subjects)} subject ids for {len(t)} predictions")
    return Scores(method, list(subjects), pearson_rows(p, t), pearson_rows(p - g, t - g),
                  np.abs(p - t).mean(axis=1), identified(p, t))
