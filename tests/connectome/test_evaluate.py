"""The field's measures and the baselines, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from nmm_connectome.baselines import PcaRidge, group_mean, rest_fc
from nmm_connectome.evaluate import (
    from_edges,
    identified,
    n_regions_for,
    pearson_rows,
    score,
    to_edges,
)


def test_edges_round_trip_upper_triangle_order():
    m = np.array([[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]])
    np.testing.assert_array_equal(to_edges(m), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(from_edges(np.array([0.1, 0.2, 0.3])), m)
    assert n_regions_for(3) == 3 and n_regions_for(4950) == 100
    with pytest.raises(ValueError):
        n_regions_for(5)
    batch = np.stack([m, 2 * m])
    assert to_edges(batch).shape == (2, 3)
    np.testing.assert_array_equal(from_edges(to_edges(batch), diagonal=0.0)[1, 0], [0.0, 0.2, 0.4])


def test_scores_match_hand_computed_values():
    true = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    pred = np.array([[1.0, 2.0, 3.0, 5.0], [4.0, 2.0, 2.0, 1.0]])
    g = np.array([2.5, 2.5, 2.5, 2.5])
    s = score("m", pred, true, g, ["a", "b"])
    # subject a: pred-mean (-1.75,-0.75,0.25,2.25), true-mean (-1.5,-0.5,0.5,1.5):
    # cov = 2.625+0.375+0.125+3.375 = 6.5; |p| = sqrt(8.75), |t| = sqrt(5) -> r = 6.5 / sqrt(43.75)
    np.testing.assert_allclose(s.r[0], 6.5 / np.sqrt(43.75))
    # g is constant, so subtracting it does not change a Pearson r here
    np.testing.assert_allclose(s.r_subject, s.r)
    np.testing.assert_allclose(s.mae, [0.25, 0.25])
    # corr(pred_a, true_a) = 0.983 > corr(pred_a, true_b) = -0.983; likewise for b
    np.testing.assert_array_equal(s.identified, [True, True])
    summary = s.summary()
    assert summary["identification"] == 1.0 and summary["subjects"] == 2
    assert summary["mae"] == pytest.approx(0.25)


def test_subject_specific_r_removes_the_group_mean():
    g = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    dev = np.array([[0.1, -0.1, 0.0, 0.05, -0.05], [-0.1, 0.1, 0.05, 0.0, -0.05]])
    true = g + dev
    # the group mean itself: high raw r, no subject-specific part (zero variance -> 0)
    s = score("group-mean", np.tile(g, (2, 1)), true, g, ["a", "b"])
    assert (s.r > 0.85).all()
    np.testing.assert_array_equal(s.r_subject, [0.0, 0.0])
    # one prediction for everyone is closest to the same subject: at most one identified
    assert s.identified.sum() <= 1
    # swapping subjects: raw r stays high, subject-specific r is negative
    swapped = score("swap", true[::-1], true, g, ["a", "b"])
    assert (swapped.r > 0.6).all()
    np.testing.assert_allclose(swapped.r_subject, pearson_rows(dev[::-1], dev))
    assert (swapped.r_subject < 0).all()
    assert not swapped.identified.any()


def test_identification_needs_the_own_subject_strictly_best():
    true = np.eye(3)
    assert identified(true, true).tolist() == [True, True, True]
    assert identified(true[[1, 0, 2]], true).tolist() == [False, False, True]
    assert identified(np.ones((1, 3)) + [[0, 1, 2]], true[:1]).tolist() == [False]


def test_score_checks_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        score("m", np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(4), ["a", "b"])
    with pytest.raises(ValueError, match="3 subject ids for 2"):
        score("m", np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3), ["a", "b", "c"])


def test_baselines_rest_and_group_mean():
    rest = np.array([[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_array_equal(rest_fc(rest), rest.astype(np.float32))
    np.testing.assert_allclose(group_mean(np.array([[1.0, 2.0], [3.0, 6.0]]), 3),
                               [[2.0, 4.0]] * 3)


def test_pca_ridge_recovers_a_linear_map_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 10)) @ rng.standard_normal((10, 30))  # rank 10
    w = rng.standard_normal((30, 20)) * 0.1
    y = x @ w + 0.5
    model = PcaRidge.fit(x[:50], y[:50], n_components=10, alphas=(1e-6, 1e-3))
    np.testing.assert_allclose(model.predict(x[50:]), y[50:], atol=1e-3)
    assert model.components.shape == (10, 30) and model.coef.shape == (20, 10)
    loaded = PcaRidge.load(model.save(tmp_path / "ridge.npz"))
    np.testing.assert_array_equal(loaded.predict(x[50:]), model.predict(x[50:]))
    assert loaded.alpha == model.alpha
    # more components than subjects allow are capped at n_train - 1
    assert PcaRidge.fit(x[:5], y[:5], n_components=50).components.shape[0] == 4


def test_ridge_beats_rest_and_group_mean_on_the_synthetic_cohort(small_cohort):
    rest, task = to_edges(small_cohort.rest), to_edges(small_cohort.task)
    g = task[:30].mean(0)
    subjects = small_cohort.subjects[30:]
    ridge = score("ridge", PcaRidge.fit(rest[:30], task[:30]).predict(rest[30:]), task[30:], g, subjects)
    rest_s = score("rest", rest_fc(rest[30:]), task[30:], g, subjects)
    mean_s = score("mean", group_mean(task[:30], 10), task[30:], g, subjects)
    assert mean_s.summary()["r_subject"] == 0.0
    assert ridge.summary()["mae"] < min(rest_s.summary()["mae"], mean_s.summary()["mae"])
    assert ridge.summary()["r"] > max(rest_s.summary()["r"], mean_s.summary()["r"])
