"""From HCP files to FC: CIFTI dense time series -> parcels -> region time series -> FC.

- `load_parcellation`: a CIFTI dlabel (`*.dlabel.nii`: Glasser 360, Schaefer 100/200/400 on
  fsLR 32k) or a NIfTI label volume. Parcels are the label keys > 0, in key order.
- `region_timeseries`: a `*.dtseries.nii` (or a 4-D NIfTI) averaged within each parcel, the
  grayordinates matched by brain structure + vertex (surface) or by scanner coordinates
  (volume), so a file with fewer grayordinates than the atlas still maps correctly.
- `connectivity` (its own module: data.py's time-series folders use it too): nilearn's
  `ConnectivityMeasure(kind="correlation")` over the runs, each z-scored on its own and then
  concatenated (HCP rest: REST1/2 x LR/RL).
- `build_cohort_from_cifti`: the whole HCP layout into a `Cohort`, every failure a `Problem`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmm_connectome.connectivity import Estimator, connectivity
from nmm_connectome.data import Candidate, Cohort, Policy, assemble, read_candidate
from nmm_core.errors import DataError
from nmm_core.records import Problem

# HCP S1200 layout (MSMAll-registered; rest ICA-FIX cleaned). Override for other releases.
HCP_REST = "{subject}/MNINonLinear/Results/rfMRI_REST*/rfMRI_REST*_Atlas_MSMAll_hp2000_clean.dtseries.nii"
HCP_TASK = "{subject}/MNINonLinear/Results/tfMRI_MOTOR_*/tfMRI_MOTOR_*_Atlas_MSMAll.dtseries.nii"
_SCHAEFER_RE = re.compile(r"^\d+Networks_(?:LH|RH)_([A-Za-z]+)_")


@dataclass
class Parcellation:
    """Parcel names and where each grayordinate belongs.

    surface : {CIFTI structure name: int array over that surface's vertices}, -1 = no parcel
    volume : int array (i, j, k) of parcel indices (-1 none), with its voxel-to-mm `affine`
    """

    names: list[str]
    source: str
    surface: dict[str, np.ndarray] = field(default_factory=dict)
    volume: np.ndarray | None = None
    affine: np.ndarray | None = None

    def networks(self) -> list[str] | None:
        """Network of each parcel for Schaefer-style names (`7Networks_LH_SomMot_1`), else None."""
        found = [_SCHAEFER_RE.match(n) for n in self.names]
        return [m[1] for m in found] if all(found) else None

    def assign(self, brain_models: Any) -> np.ndarray:
        """Parcel index (-1: none) of each grayordinate of a `BrainModelAxis`."""
        out = np.full(len(brain_models), -1, dtype=np.int64)
        positions = np.arange(len(brain_models))
        for name, slc, sub in brain_models.iter_structures():
            idx = positions[slc]
            surf = sub.surface_mask
            lookup = self.surface.get(name)
            if surf.any() and lookup is not None:
                vertex = sub.vertex[surf]
                ok = vertex < len(lookup)
                out[idx[surf][ok]] = lookup[vertex[ok]]
            vol = sub.volume_mask
            if vol.any() and self.volume is not None:
                out[idx[vol]] = self._volume_labels(sub.voxel[vol], brain_models.affine)
        return out

    def _volume_labels(self, ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Labels at voxels `ijk` (n, 3) of a grid with `affine`, by nearest label voxel."""
        to_label = np.linalg.inv(self.affine) @ affine
        lab = np.rint(ijk @ to_label[:3, :3].T + to_label[:3, 3]).astype(np.int64)
        inside = np.all((lab >= 0) & (lab < np.array(self.volume.shape)), axis=1)
        out = np.full(len(ijk), -1, dtype=np.int64)
        out[inside] = self.volume[tuple(lab[inside].T)]
        return out


def load_parcellation(path: str | Path, *, map_index: int = 0) -> Parcellation:
    """A CIFTI dlabel (`.dlabel.nii`) or a NIfTI integer label volume (`.nii`, `.nii.gz`)."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises several unrelated types for a bad file
        raise DataError(f"{path}: cannot read the parcellation ({e})") from None
    if isinstance(img, nib.Cifti2Image):
        return _cifti_parcellation(img, path, map_index)
    if isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        data = np.asarray(img.dataobj)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3 or not np.allclose(data, np.round(data)):
            raise DataError(f"{path}: a NIfTI parcellation must be a 3-D volume of integer labels "
                            f"(shape {data.shape})")
        keys = np.unique(data.astype(np.int64))
        keys = keys[keys > 0]
        if not len(keys):
            raise DataError(f"{path}: no labels > 0")
        volume = np.searchsorted(keys, data.astype(np.int64))
        volume = np.where(data > 0, volume, -1)
        return Parcellation([f"label_{k}" for k in keys], str(path), volume=volume, affine=img.affine)
    raise DataError(f"{path}: not a CIFTI dlabel or NIfTI label file ({type(img).__name__})")


def _cifti_parcellation(img: Any, path: Path, map_index: int) -> Parcellation:
    import nibabel as nib

    labels, models = img.header.get_axis(0), img.header.get_axis(1)
    if not isinstance(labels, nib.cifti2.LabelAxis) or not isinstance(models, nib.cifti2.BrainModelAxis):
        raise DataError(f"{path}: not a dense label file (axes {type(labels).__name__}, "
                        f"{type(models).__name__}; expected LabelAxis, BrainModelAxis)")
    if not 0 <= map_index < len(labels):
        raise DataError(f"{path}: map {map_index} out of range ({len(labels)} maps)")
    table = labels.label[map_index]
    keys = sorted(k for k in table if k > 0)
    if not keys:
        raise DataError(f"{path}: the label table has no labels > 0")
    values = np.asarray(img.dataobj)[map_index].astype(np.int64)
    lut = np.full(max(keys[-1], int(values.max(initial=0))) + 1, -1, dtype=np.int64)
    lut[keys] = np.arange(len(keys))
    parcel = np.where(values >= 0, lut[np.clip(values, 0, None)], -1)
    parc = Parcellation([table[k][0] for k in keys], str(path))
    for name, slc, sub in models.iter_structures():
        part = parcel[slc]
        if sub.surface_mask.any():
            lookup = np.full(sub.nvertices[name], -1, dtype=np.int64)
            lookup[sub.vertex[sub.surface_mask]] = part[sub.surface_mask]
            parc.surface[name] = lookup
        if sub.volume_mask.any():
            if parc.volume is None:
                parc.volume = np.full(models.volume_shape, -1, dtype=np.int64)
                parc.affine = models.affine
            parc.volume[tuple(sub.voxel[sub.volume_mask].T)] = part[sub.volume_mask]
    return parc


def region_timeseries(path: str | Path, parcellation: Parcellation) -> np.ndarray:
    """(frames, parcels): the mean signal of each parcel in a dtseries or 4-D NIfTI file."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(path)
    except Exception as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if isinstance(img, nib.Cifti2Image):
        series, models = img.header.get_axis(0), img.header.get_axis(1)
        if not isinstance(series, nib.cifti2.SeriesAxis) or not isinstance(models, nib.cifti2.BrainModelAxis):
            raise DataError(f"{path}: not a dense time series (axes {type(series).__name__}, "
                            f"{type(models).__name__}; expected SeriesAxis, BrainModelAxis)")
        data = np.asarray(img.dataobj, dtype=np.float32)
        assignment = parcellation.assign(models)
    elif isinstance(img, nib.Nifti1Image | nib.Nifti2Image) and img.ndim == 4:
        if parcellation.volume is None:
            raise DataError(f"{path}: a volume time series needs a volume parcellation "
                            f"({parcellation.source} has none)")
        ijk = np.indices(img.shape[:3]).reshape(3, -1).T
        labels = parcellation._volume_labels(ijk, img.affine)
        keep = labels >= 0
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(-1, img.shape[3])[keep].T
        assignment = labels[keep]
    else:
        raise DataError(f"{path}: not a CIFTI dtseries or a 4-D NIfTI ({type(img).__name__})")
    return parcellate(data, assignment, parcellation.names, source=str(path))


def parcellate(data: np.ndarray, assignment: np.ndarray, names: Sequence[str], *,
               source: str = "") -> np.ndarray:
    """Average columns by parcel: data (frames, grayordinates), assignment (grayordinates,)
    of parcel indices (-1 ignored) -> (frames, parcels). Empty parcels are an error."""
    from scipy import sparse

    n = len(names)
    counts = np.bincount(assignment[assignment >= 0], minlength=n)[:n]
    empty = [names[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"{source}: {len(empty)} of {n} parcels have no grayordinates in this file "
                        f"({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}): "
                        "mismatched parcellation and data?")
    cols = np.flatnonzero(assignment >= 0)
    weights = sparse.csr_matrix((1.0 / counts[assignment[cols]], (cols, assignment[cols])),
                                shape=(data.shape[1], n))
    return np.asarray(weights.T @ data.T).T.astype(np.float32)


def build_cohort_from_cifti(
    root: str | Path, parcellation: str | Path, *, rest_pattern: str = HCP_REST,
    task_pattern: str = HCP_TASK, subjects: Sequence[str] | None = None,
    estimator: Estimator | str = "empirical", fisher: bool = False, policy: Policy = "skip",
) -> tuple[Cohort, list[Problem]]:
    """Rest and task FC for every subject folder under `root` (or the given `subjects`).

    Patterns are globs relative to `root` with `{subject}`; every match is one run.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    parc = load_parcellation(parcellation)
    if subjects is None:
        subjects = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    candidates, files = [], {}

    def read(paths: list[Path]) -> np.ndarray:
        return connectivity([region_timeseries(p, parc) for p in paths], estimator=estimator,
                            source=", ".join(p.name for p in paths))

    for subject in subjects:
        found = {"rest": sorted(root.glob(rest_pattern.format(subject=subject))),
                 "task": sorted(root.glob(task_pattern.format(subject=subject)))}
        files[subject] = {k: [str(p.relative_to(root)) for p in v] for k, v in found.items()}
        if not any(found.values()):
            candidates.append(Candidate(subject, None, None, problem=Problem(
                subject, "rest", f"no files match {rest_pattern!r} or {task_pattern!r}", "unpaired")))
            continue
        candidates.append(read_candidate(
            subject, {k: v for k, v in found.items() if v}, read, fisher=fisher,
            sources={k: ", ".join(v) for k, v in files[subject].items()}))
    meta = {"source": str(root), "parcellation": parc.source, "estimator": estimator,
            "rest_pattern": rest_pattern, "task_pattern": task_pattern, "files": files}
    return assemble(candidates, kind="fisher_z" if fisher else "correlation", policy=policy,
                    regions=parc.names, networks=parc.networks(), meta=meta)
