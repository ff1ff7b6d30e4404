"""CIFTI dense time series + a parcellation -> region time series -> FC, on tiny files."""

from __future__ import annotations

import numpy as np
import pytest

from nmm_connectome.fc import (
    build_cohort_from_cifti,
    connectivity,
    load_parcellation,
    region_timeseries,
)
from nmm_core.errors import DataError


def test_connectivity_is_pearson_per_run_zscored_and_concatenated():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((120, 5)) @ rng.standard_normal((5, 5))
    b = 10 + 3 * (rng.standard_normal((80, 5)) @ rng.standard_normal((5, 5)))
    np.testing.assert_allclose(connectivity([a]), np.corrcoef(a.T), atol=1e-10)
    z = np.concatenate([(x - x.mean(0)) / x.std(0) for x in (a, b)])
    np.testing.assert_allclose(connectivity([a, b]), np.corrcoef(z.T), atol=1e-10)
    shrunk = connectivity([a], estimator="ledoit_wolf")
    off = ~np.eye(5, dtype=bool)
    assert np.abs(shrunk[off]).sum() < np.abs(np.corrcoef(a.T)[off]).sum()
    np.testing.assert_array_equal(np.diag(shrunk), 1.0)


def test_connectivity_rejects_constant_regions_and_nan():
    ts = np.random.default_rng(1).standard_normal((50, 4))
    ts[:, 2] = 7.0
    with pytest.raises(DataError, match=r"run.npy: 1 regions have a constant signal \(first: column 2\)"):
        connectivity([ts], source="run.npy")
    ts[:, 2] = np.nan
    with pytest.raises(DataError, match="NaN/Inf"):
        connectivity([ts], source="run.npy")


def test_dlabel_parcellation_matches_vertices_not_positions(tmp_path, cifti):
    parc = load_parcellation(cifti.write_dlabel(tmp_path / "atlas.dlabel.nii"))
    assert parc.names == list(cifti.PARCELS)
    signals = cifti.parcel_signals(100, seed=0)
    # the data file lists the surface vertices in another order than the atlas
    order = np.random.default_rng(0).permutation(30)
    path = cifti.write_dtseries(tmp_path / "x.dtseries.nii", signals, noise=0.0, vertex_order=order)
    ts = region_timeseries(path, parc)
    assert ts.shape == (100, 5)
    np.testing.assert_allclose(ts, signals, atol=1e-5)


def test_missing_parcels_are_named(tmp_path, cifti):
    parc = load_parcellation(cifti.write_dlabel(tmp_path / "atlas.dlabel.nii"))
    # only vertices 15..29 (the visual half) are present in this file
    path = cifti.write_dtseries(tmp_path / "half.dtseries.nii", cifti.parcel_signals(60, 0),
                                vertex_order=np.arange(15, 30))
    with pytest.raises(DataError, match=r"half.dtseries.nii: 2 of 5 parcels have no grayordinates .*L_motor, R_motor"):
        region_timeseries(path, parc)


def test_nifti_label_volume_parcellates_cifti_voxels_and_4d_nifti(tmp_path, cifti):
    import nibabel as nib

    labels = np.zeros((6, 6, 6), dtype=np.int16)  # a 1 mm grid: CIFTI voxels are 2 mm
    labels[2:4, 2:4, :] = 7
    labels[0:2, 0:2, 0:2] = 3
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "labels.nii.gz")
    parc = load_parcellation(tmp_path / "labels.nii.gz")
    assert parc.names == ["label_3", "label_7"] and parc.volume is not None
    signals = cifti.parcel_signals(40, seed=1)
    path = cifti.write_dtseries(tmp_path / "x.dtseries.nii", signals, noise=0.0)
    ts = region_timeseries(path, parc)
    # CIFTI voxel (0,0,0) -> 0 mm -> label 3; voxels (1,1,k) -> 2 mm -> label 7 (k = 0, 1, 2)
    np.testing.assert_allclose(ts[:, 0], signals[:, 4], atol=1e-5)
    np.testing.assert_allclose(ts[:, 1], signals[:, 4], atol=1e-5)
    bold = np.random.default_rng(0).standard_normal((6, 6, 6, 30)).astype(np.float32)
    nib.save(nib.Nifti1Image(bold, np.eye(4)), tmp_path / "bold.nii.gz")
    vol_ts = region_timeseries(tmp_path / "bold.nii.gz", parc)
    np.testing.assert_allclose(vol_ts[:, 1], bold[2:4, 2:4, :].reshape(-1, 30).mean(0), atol=1e-5)


def test_hcp_layout_to_cohort_with_skips(tmp_path, cifti):
    atlas = cifti.write_dlabel(tmp_path / "atlas.dlabel.nii")
    root = tmp_path / "hcp"
    truth = {}
    for k, subject in enumerate(("100206", "100307", "100408")):
        results = root / subject / "MNINonLinear" / "Results"
        rest = [cifti.parcel_signals(300, seed=10 * k + r) for r in range(2)]
        for run, sig in zip(("rfMRI_REST1_LR", "rfMRI_REST1_RL"), rest, strict=True):
            cifti.write_dtseries(results / run / f"{run}_Atlas_MSMAll_hp2000_clean.dtseries.nii", sig,
                                 seed=k)
        truth[subject] = np.concatenate([(s - s.mean(0)) / s.std(0) for s in rest])
        if subject != "100408":  # this one has no motor task runs
            cifti.write_dtseries(results / "tfMRI_MOTOR_LR" / "tfMRI_MOTOR_LR_Atlas_MSMAll.dtseries.nii",
                                 cifti.parcel_signals(284, seed=100 + k), seed=k)
    cohort, problems = build_cohort_from_cifti(root, atlas)
    assert cohort.subjects == ["100206", "100307"]
    assert cohort.regions == list(cifti.PARCELS) and cohort.kind == "correlation"
    [problem] = problems
    assert problem.id == "100408" and problem.kind == "unpaired"
    # small per-grayordinate noise averages out: FC is the parcel signals' correlation
    np.testing.assert_allclose(cohort.rest[0], np.corrcoef(truth["100206"].T), atol=0.02)
    assert cohort.meta["files"]["100206"]["rest"][0].endswith("rfMRI_REST1_LR_Atlas_MSMAll_hp2000_clean.dtseries.nii")
    with pytest.raises(DataError, match="record '100408' field 'task': unpaired"):
        build_cohort_from_cifti(root, atlas, policy="stop")
    z, _ = build_cohort_from_cifti(root, atlas, fisher=True)
    assert z.kind == "fisher_z"
    np.testing.assert_allclose(np.tanh(z.rest[0])[~np.eye(5, dtype=bool)],
                               cohort.rest[0][~np.eye(5, dtype=bool)], atol=1e-5)


def test_not_a_parcellation_or_timeseries(tmp_path, cifti):
    (tmp_path / "junk.nii").write_bytes(b"not nifti")
    with pytest.raises(DataError, match="junk.nii: cannot read the parcellation"):
        load_parcellation(tmp_path / "junk.nii")
    dt = cifti.write_dtseries(tmp_path / "x.dtseries.nii", cifti.parcel_signals(20, 0))
    with pytest.raises(DataError, match="not a dense label file"):
        load_parcellation(dt)
