"""Shared builders for the connectome tests: a small synthetic cohort, tiny CIFTI files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmm_connectome.data import Cohort
from nmm_connectome.synthetic import SyntheticSpec, synthesize

# Two surfaces with unlabelled vertices beyond the data, and a few subcortical voxels.
N_VERTICES = 30
PARCELS = ("L_motor", "L_visual", "R_motor", "R_visual", "thalamus")


@pytest.fixture(scope="session")
def small_cohort() -> Cohort:
    return synthesize(SyntheticSpec(subjects=40, regions=24, seed=3))


def brain_models(*, vertex_order=None):
    """Left/right cortex (vertices 0..29 of 34, optionally reordered) + 4 thalamus voxels."""
    from nibabel.cifti2 import BrainModelAxis

    order = np.arange(N_VERTICES) if vertex_order is None else np.asarray(vertex_order)
    left = BrainModelAxis.from_surface(order, N_VERTICES + 4, name="CortexLeft")
    right = BrainModelAxis.from_surface(order, N_VERTICES + 4, name="CortexRight")
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[1, 1, :] = True
    mask[0, 0, 0] = True
    return left + right + BrainModelAxis.from_mask(mask, name="thalamus_left",
                                                   affine=np.diag([2.0, 2.0, 2.0, 1.0]))


def parcel_of(models) -> np.ndarray:
    """The ground-truth parcel index of each grayordinate: vertex < 15 motor, else visual."""
    out = []
    for name, _, sub in models.iter_structures():
        for v in sub.vertex[sub.surface_mask]:
            side = 0 if "LEFT" in name else 2
            out.append(side + (0 if v < 15 else 1))
        out.extend([4] * int(sub.volume_mask.sum()))
    return np.array(out)


def write_dlabel(path: Path) -> Path:
    import nibabel as nib
    from nibabel.cifti2 import LabelAxis

    models = brain_models()
    table = {0: ("???", (0, 0, 0, 0))}
    table.update({k + 1: (name, (k / 5, 0.5, 0.5, 1.0)) for k, name in enumerate(PARCELS)})
    keys = parcel_of(models) + 1
    img = nib.Cifti2Image(keys[None, :].astype(np.int32), header=(LabelAxis(["parcels"], [table]), models))
    nib.save(img, path)
    return path


def write_dtseries(path: Path, signals: np.ndarray, *, noise: float = 0.05, seed: int = 0,
                   vertex_order=None) -> Path:
    """Each grayordinate = its parcel's signal (frames, 5) + small noise."""
    import nibabel as nib
    from nibabel.cifti2 import SeriesAxis

    rng = np.random.default_rng(seed)
    models = brain_models(vertex_order=vertex_order)
    data = signals[:, parcel_of(models)] + noise * rng.standard_normal((len(signals), len(models)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Cifti2Image(data.astype(np.float32),
                          header=(SeriesAxis(0.0, 0.72, len(signals)), models))
    nib.save(img, path)
    return path


def parcel_signals(frames: int, seed: int) -> np.ndarray:
    """(frames, 5) correlated parcel signals with a known structure."""
    rng = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.2, 0.6, 0.0, 0.3], [0.0, 1.0, 0.1, 0.5, 0.0], [0.0, 0.0, 1.0, 0.2, 0.0],
                    [0.0, 0.0, 0.0, 1.0, 0.4], [0.0, 0.0, 0.0, 0.0, 1.0]])
    return rng.standard_normal((frames, 5)) @ mix


@pytest.fixture
def cifti():
    """The CIFTI builders as one namespace."""
    import types

    return types.SimpleNamespace(write_dlabel=write_dlabel, write_dtseries=write_dtseries,
                                 parcel_signals=parcel_signals, brain_models=brain_models,
                                 parcel_of=parcel_of, PARCELS=PARCELS)
