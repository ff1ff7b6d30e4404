"""The synthetic cohort, cohort folders, precomputed-FC folders and their validation."""

from __future__ import annotations

import numpy as np
import pytest

from nmm_connectome.data import (
    Candidate,
    assemble,
    canonical,
    find_pairs,
    load_any,
    load_array_folder,
    load_cohort,
    matrix_problem,
    summarize,
)
from nmm_connectome.evaluate import score, to_edges
from nmm_connectome.synthetic import SyntheticSpec, synthesize
from nmm_core.errors import DataError


def test_synthetic_fc_is_symmetric_unit_diagonal_psd(small_cohort):
    for fc in (small_cohort.rest, small_cohort.task):
        assert fc.shape == (40, 24, 24) and fc.dtype == np.float32
        np.testing.assert_array_equal(fc, np.swapaxes(fc, 1, 2))
        np.testing.assert_array_equal(np.diagonal(fc, axis1=1, axis2=2), 1.0)
        assert np.linalg.eigvalsh(fc.astype(np.float64)).min() > -1e-6
        assert np.abs(fc).max() <= 1.0
        assert all(matrix_problem(m) is None for m in fc)


def test_synthetic_cohort_is_seeded_and_nested():
    a = synthesize(SyntheticSpec(subjects=12, regions=24, seed=5))
    b = synthesize(SyntheticSpec(subjects=12, regions=24, seed=5))
    c = synthesize(SyntheticSpec(subjects=12, regions=24, seed=6))
    np.testing.assert_array_equal(a.rest, b.rest)
    np.testing.assert_array_equal(a.task, b.task)
    assert not np.allclose(a.rest, c.rest)
    # population parts come first: a larger cohort starts with the same subjects
    big = synthesize(SyntheticSpec(subjects=20, regions=24, seed=5))
    np.testing.assert_array_equal(big.rest[:12], a.rest)


def test_synthetic_fc_has_network_blocks(small_cohort):
    nets = np.array(small_cohort.networks)
    same = nets[:, None] == nets[None, :]
    off = ~np.eye(len(nets), dtype=bool)
    mean_fc = small_cohort.rest.mean(axis=0)
    assert mean_fc[same & off].mean() > mean_fc[~same].mean() + 0.3
    assert small_cohort.networks[:4] == ["visual"] * 4
    assert small_cohort.regions[4] == "somatomotor_01"


def test_task_effect_is_in_the_motor_subset_and_subject_dependent(small_cohort):
    regions = small_cohort.regions
    motor = [regions.index(r) for r in small_cohort.meta["motor_regions"]]
    assert [regions[i].split("_")[0] for i in motor] == ["somatomotor"] * len(motor)
    change = small_cohort.task - small_cohort.rest  # (n, R, R)
    mean_change = np.abs(change.mean(axis=0))
    others = [i for i in range(len(regions)) if i not in motor
              and regions[i] not in small_cohort.meta["partner_regions"]]
    motor_block = mean_change[np.ix_(motor, motor)][~np.eye(len(motor), dtype=bool)]
    assert motor_block.mean() > 5 * mean_change[np.ix_(others, others)].mean()
    # the effect differs between subjects far beyond sampling noise
    spread = change.std(axis=0)
    motor_spread = spread[np.ix_(motor, motor)][~np.eye(len(motor), dtype=bool)].mean()
    other_spread = spread[np.ix_(others, others)][~np.eye(len(others), dtype=bool)].mean()
    assert motor_spread > 1.5 * other_spread


def test_rest_fc_carries_subject_specific_information_about_task_fc(small_cohort):
    rest, task = to_edges(small_cohort.rest), to_edges(small_cohort.task)
    train_mean = task[:30].mean(axis=0)
    own = score("rest", rest[30:], task[30:], train_mean, small_cohort.subjects[30:])
    shuffled = score("rest", rest[30:][::-1], task[30:], train_mean, small_cohort.subjects[30:])
    assert own.r_subject.mean() > 0.3
    assert own.r_subject.mean() > shuffled.r_subject.mean() + 0.3


def test_cohort_save_and_load_round_trip(small_cohort, tmp_path):
    small_cohort.save(tmp_path / "cohort")
    assert (tmp_path / "cohort" / "fc" / "sub-00.npz").is_file()
    loaded, problems = load_cohort(tmp_path / "cohort")
    assert problems == []
    np.testing.assert_array_equal(loaded.rest, small_cohort.rest)
    np.testing.assert_array_equal(loaded.task, small_cohort.task)
    assert loaded.subjects == small_cohort.subjects and loaded.regions == small_cohort.regions
    assert loaded.networks == small_cohort.networks
    assert loaded.meta["motor_regions"] == small_cohort.meta["motor_regions"]
    assert load_any(tmp_path / "cohort")[0].subjects == small_cohort.subjects


def _fc(n: int, seed: int) -> np.ndarray:
    ts = np.random.default_rng(seed).standard_normal((50, n))
    return np.corrcoef(ts.T)


@pytest.mark.parametrize("matrix, kind_of_problem", [
    (np.ones((3, 4)), "wrong shape"),
    (np.triu(_fc(5, 0)), "not symmetric"),
    (np.where(np.eye(5, dtype=bool), 1.0, np.nan), "NaN/Inf"),
    (_fc(5, 1) * 3, "out of range"),
])
def test_matrix_problems_are_named(matrix, kind_of_problem):
    found = matrix_problem(matrix)
    assert found is not None and found[0] == kind_of_problem, found


def test_matrix_problem_wrong_size_and_inf():
    assert matrix_problem(_fc(5, 0), n_regions=6)[0] == "wrong shape"
    bad = _fc(5, 0)
    bad[1, 2] = bad[2, 1] = np.inf
    kind, why = matrix_problem(bad)
    assert kind == "NaN/Inf" and "[1, 2]" in why
    # Fisher z with an infinite diagonal is fine: the diagonal is not an edge
    with np.errstate(divide="ignore"):
        z = np.arctanh(np.clip(_fc(5, 0), -1, 1))
    assert matrix_problem(z, kind="fisher_z") is None
    np.testing.assert_array_equal(np.diag(canonical(z, "fisher_z")), 0.0)


def test_assemble_skips_and_counts_or_stops_naming_the_subject():
    good = [Candidate(f"s{i}", _fc(6, i), _fc(6, 10 + i), f"s{i}_rest.npy", f"s{i}_task.npy")
            for i in range(3)]
    asym = _fc(6, 20)
    asym[0, 1] += 0.5
    bad = [
        Candidate("unpaired", _fc(6, 30), None, "unpaired_rest.npy", ""),
        Candidate("mismatch", _fc(6, 31), _fc(7, 32), "mismatch_rest.npy", "mismatch_task.npy"),
        Candidate("asym", _fc(6, 33), asym, "asym_rest.npy", "asym_task.npy"),
        Candidate("nan", np.full((6, 6), np.nan), _fc(6, 34), "nan_rest.npy", "nan_task.npy"),
    ]
    cohort, problems = assemble(good + bad, policy="skip")
    assert cohort.subjects == ["s0", "s1", "s2"]
    by_id = {p.id: p for p in problems}
    assert by_id["unpaired"].kind == "unpaired" and "no task" in by_id["unpaired"].why
    assert by_id["mismatch"].kind == "mismatched parcellation"
    assert "mismatch_rest.npy is 6 x 6" in by_id["mismatch"].why and "7 x 7" in by_id["mismatch"].why
    assert by_id["asym"].kind == "not symmetric" and by_id["asym"].field == "task"
    assert "asym_task.npy" in by_id["asym"].why
    assert by_id["nan"].kind == "NaN/Inf"
    assert summarize(len(cohort), problems).startswith("kept 3 of 7 subjects; skipped 4:")
    with pytest.raises(DataError, match="record 'unpaired' field 'task': unpaired"):
        assemble(good + bad, policy="stop")
    with pytest.raises(DataError, match="no usable subjects"):
        assemble(bad, policy="skip")


def test_precomputed_npy_folder_with_rest_and_task_subfolders(tmp_path):
    for i in range(3):
        for cond, seed in (("rest", i), ("task", 10 + i)):
            (tmp_path / cond).mkdir(exist_ok=True)
            np.save(tmp_path / cond / f"{100 + i}.npy", _fc(8, seed))
    np.save(tmp_path / "rest" / "999.npy", _fc(8, 50))  # no task: unpaired
    cohort, problems = load_array_folder(tmp_path)
    assert cohort.subjects == ["100", "101", "102"] and cohort.n_regions == 8
    np.testing.assert_allclose(cohort.rest[0], _fc(8, 0), atol=1e-6)
    assert [(p.id, p.kind) for p in problems] == [("999", "unpaired")]


def test_precomputed_csv_and_mat_flat_layout(tmp_path):
    from scipy.io import savemat

    np.savetxt(tmp_path / "a_rest.csv", _fc(5, 0), delimiter=",")
    np.savetxt(tmp_path / "a_task.csv", _fc(5, 1), delimiter=",")
    savemat(tmp_path / "b_rest.mat", {"fc": _fc(5, 2)})
    savemat(tmp_path / "b_task.mat", {"fc": _fc(5, 3)})
    (tmp_path / "c_rest.csv").write_text("not,a,number\n")
    np.savetxt(tmp_path / "c_task.csv", _fc(5, 4), delimiter=",")
    assert sorted(find_pairs(tmp_path)) == ["a", "b", "c"]
    cohort, problems = load_array_folder(tmp_path)
    assert cohort.subjects == ["a", "b"]
    np.testing.assert_allclose(cohort.task[1], _fc(5, 3), atol=1e-6)
    [problem] = problems
    assert problem.id == "c" and problem.kind == "unreadable" and "c_rest.csv" in problem.why


def test_parcellated_timeseries_folder_gives_fc_and_fisher_z(tmp_path):
    rng = np.random.default_rng(0)
    series = {}
    for subject in ("s1", "s2"):
        for cond in ("rest", "task"):
            series[subject, cond] = rng.standard_normal((200, 6))
            np.save(tmp_path / f"{subject}_{cond}.npy", series[subject, cond])
    cohort, problems = load_array_folder(tmp_path, content="timeseries")
    assert problems == [] and cohort.kind == "correlation"
    np.testing.assert_allclose(cohort.rest[0], np.corrcoef(series["s1", "rest"].T), atol=1e-5)
    z, _ = load_array_folder(tmp_path, content="timeseries", fisher=True)
    assert z.kind == "fisher_z"
    np.testing.assert_allclose(z.task[1], canonical(np.arctanh(np.clip(
        np.corrcoef(series["s2", "task"].T), -0.999999, 0.999999)), "fisher_z"), atol=1e-4)


def test_empty_or_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no FC files"):
        find_pairs(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        find_pairs(tmp_path / "nope")
    with pytest.raises(DataError, match="not a cohort folder"):
        load_cohort(tmp_path)
