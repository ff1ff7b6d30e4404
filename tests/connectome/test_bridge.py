"""Bridge matching: the path against its closed form, the sampler, training beats baselines."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from nmm_connectome.baselines import group_mean, rest_fc
from nmm_connectome.bridge import (
    BridgeModel,
    BridgeSettings,
    BrownianBridgeMatcher,
    EdgeBridgeNet,
    train_bridge,
)
from nmm_connectome.evaluate import score, to_edges
from nmm_connectome.synthetic import SyntheticSpec, synthesize


def test_bridge_marginal_matches_its_closed_form():
    fm = BrownianBridgeMatcher(sigma=0.7)
    x0 = torch.tensor([[0.0, 1.0, -2.0]])
    x1 = torch.tensor([[1.0, -1.0, 2.0]])
    n = 200_000
    for t_value in (0.1, 0.5, 0.9):
        t = torch.full((n,), t_value)
        eps = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
        xt = fm.sample_xt(x0.expand(n, 3), x1.expand(n, 3), t, eps)
        # (B1): mean (1 - t) x0 + t x1, variance sigma^2 t (1 - t)
        torch.testing.assert_close(xt.mean(0), ((1 - t_value) * x0 + t_value * x1)[0], atol=6e-3, rtol=0)
        expected_var = 0.7**2 * t_value * (1 - t_value)
        torch.testing.assert_close(xt.var(0), torch.full((3,), expected_var), atol=4e-3, rtol=0.02)
        # the general form (B0-B1) agrees with the simplified one
        s2, sb2 = fm.sigma_t2(t[:1]), fm.sigma_bar_t2(t[:1])
        torch.testing.assert_close(fm.compute_var_t(t[:1]), s2 * sb2 / (s2 + sb2))
    # pinned ends: x_0 = x0 and no variance at t = 0
    t0 = torch.zeros(1)
    torch.testing.assert_close(fm.sample_xt(x0, x1, t0, torch.randn(1, 3)), x0)


def test_drift_and_loss_weight():
    fm = BrownianBridgeMatcher(sigma=0.5)
    x1, xt, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([0.75])
    # (B2): beta (x1 - x_t) / sigma_bar^2 = 0.25 * (1, -1) / (0.25 * 0.25) = (4, -4)
    torch.testing.assert_close(fm.compute_drift(x1, xt, t), torch.tensor([[4.0, -4.0]]))
    # (B4): the weighted drift error equals the endpoint error
    x1_hat = torch.tensor([[1.5, 0.5]])
    weighted = fm.loss_weight(t) * ((fm.compute_drift(x1_hat, xt, t) - fm.compute_drift(x1, xt, t)) ** 2).sum()
    torch.testing.assert_close(weighted, ((x1_hat - x1) ** 2).sum().reshape(1))
    t, xt, ut = fm.sample_location_and_drift(torch.zeros(64, 2), torch.ones(64, 2))
    assert t.shape == (64,) and xt.shape == ut.shape == (64, 2)
    assert 0 <= t.min() and t.max() <= fm.t_max


def test_euler_maruyama_with_the_exact_drift_follows_the_bridge():
    fm = BrownianBridgeMatcher(sigma=0.8)
    n = 20_000
    x0, x1 = torch.zeros(n, 2), torch.tensor([[1.0, -3.0]]).expand(n, 2)
    path: list[torch.Tensor] = []
    end = fm.euler_maruyama(lambda t, x: fm.compute_drift(x1, x, t), x0, steps=100,
                            generator=torch.Generator().manual_seed(1), trajectory=path)
    torch.testing.assert_close(end, x1)  # the last step lands on x1
    mid = path[49]  # t = 0.5
    torch.testing.assert_close(mid.mean(0), torch.tensor([0.5, -1.5]), atol=0.02, rtol=0)
    torch.testing.assert_close(mid.var(0), torch.full((2,), 0.8**2 * 0.25), atol=0.01, rtol=0.05)


def test_network_predicts_in_its_basis_and_checks_its_inputs():
    basis = torch.linalg.qr(torch.randn(6, 2))[0].T  # (2, 6), orthonormal rows
    net = EdgeBridgeNet(basis, hidden=8, depth=1)
    x0, xt, t = torch.randn(3, 6), torch.randn(3, 6), torch.rand(3)
    torch.testing.assert_close(net(t, xt, x0), torch.zeros(3, 6))  # starts at the training mean
    with pytest.raises(ValueError, match="conditioned on x0"):
        net(t, xt)
    free = EdgeBridgeNet(basis, hidden=8, depth=1, condition_on_x0=False).eval()
    torch.nn.init.normal_(free.out[1].weight)
    out = free(t, xt)
    torch.testing.assert_close(out @ basis.T @ basis, out, atol=1e-5, rtol=0)
    # only the basis coordinates of x_t matter
    orthogonal = torch.randn(3, 6)
    orthogonal -= orthogonal @ basis.T @ basis
    torch.testing.assert_close(free(t, xt + orthogonal), out, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def cohort():
    return synthesize(SyntheticSpec(subjects=600, regions=30, seed=1))


def test_training_beats_rest_fc_and_group_mean_on_cpu(cohort, tmp_path):
    rest, task = to_edges(cohort.rest), to_edges(cohort.task)
    train, test = slice(0, 480), slice(480, None)
    g = task[train].mean(0)
    subjects = cohort.subjects[480:]
    logged: list[dict] = []
    start = time.perf_counter()
    model = train_bridge(rest[train], task[train], BridgeSettings(), log=logged.append)
    pred = model.predict(rest[test])
    seconds = time.perf_counter() - start
    bridge = score("bridge", pred, task[test], g, subjects).summary()
    rest_s = score("rest", rest_fc(rest[test]), task[test], g, subjects).summary()
    mean_s = score("mean", group_mean(task[train], len(subjects)), task[test], g, subjects).summary()
    print(f"bridge {bridge}\nrest {rest_s}\n{seconds:.1f} s, best step {model.best_step}")
    assert bridge["r_subject"] > rest_s["r_subject"] + 0.02
    assert bridge["r_subject"] > mean_s["r_subject"] + 0.3
    assert bridge["mae"] < mean_s["mae"]
    assert logged and {"step", "loss", "val_loss"} <= set(logged[0])
    assert model.best_step is not None and model.best_step <= logged[-1]["step"]
    # saved and reloaded, it predicts the same (same seed)
    loaded = BridgeModel.load(model.save(tmp_path / "bridge"))
    np.testing.assert_allclose(loaded.predict(rest[test][:5]), model.predict(rest[test][:5]), atol=1e-6)


def test_unconditioned_bridge_trains_and_samples(cohort):
    rest, task = to_edges(cohort.rest), to_edges(cohort.task)
    settings = BridgeSettings(condition_on_x0=False, sigma=0.2, steps=60, eval_every=20, samples=2,
                              sample_steps=10)
    model = train_bridge(rest[:100], task[:100], settings)
    pred = model.predict(rest[100:110])
    assert pred.shape == (10, rest.shape[1]) and np.isfinite(pred).all()
    # different seeds give different SDE samples, the same seed the same ones
    np.testing.assert_array_equal(model.predict(rest[100:102], seed=3), model.predict(rest[100:102], seed=3))
    assert not np.allclose(model.predict(rest[100:102], seed=3), model.predict(rest[100:102], seed=4))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="steps"):
        BridgeSettings(steps=0)
    with pytest.raises(ValueError, match="t_max"):
        BridgeSettings(t_max=1.0)
