"""Brownian-bridge matching from rest FC (x0) to task FC (x1), written the torchcfm way.

`BrownianBridgeMatcher` owns the probability path and nothing else; the network is a plain
module; the training loop is three lines (`sample_location_and_drift`, the drift of the
network, a weighted MSE); the sampler integrates the learned SDE from x0 with Euler-Maruyama.

The equations (reference process dX_t = sqrt(beta_t) dW_t, here beta_t = sigma^2 constant;
the same bridge with a general beta_t is in Liu et al. 2023, "I2SB: Image-to-Image
Schroedinger Bridge", and De Bortoli et al. 2023, "Augmented Bridge Matching"):

  (B0)  sigma_t^2 = int_0^t beta_s ds = sigma^2 t,    sigma_bar_t^2 = int_t^1 beta_s ds = sigma^2 (1 - t)
  (B1)  x_t | x0, x1 ~ N(mu_t, var_t I),
        mu_t  = (sigma_bar_t^2 x0 + sigma_t^2 x1) / (sigma_t^2 + sigma_bar_t^2) = (1 - t) x0 + t x1
        var_t = sigma_t^2 sigma_bar_t^2 / (sigma_t^2 + sigma_bar_t^2)       = sigma^2 t (1 - t)
  (B2)  u_t(x_t | x1) = beta_t (x1 - x_t) / sigma_bar_t^2                   = (x1 - x_t) / (1 - t)
        the drift of the bridge pinned at x1: bridge matching regresses f_theta on it
  (B3)  f_theta(x_t, t[, x0]) = beta_t (x1_theta(x_t, t[, x0]) - x_t) / sigma_bar_t^2
        the network predicts the endpoint and (B2) turns it into a drift, so the stiff
        -x_t / (1 - t) part is exact instead of learnt (an MLP that must learn it amplifies
        its own errors near t = 1, measured: worse than copying the rest FC)
  (B4)  loss = E_t lambda_t |f_theta - u_t|^2 with lambda_t = (sigma_bar_t^2 / beta_t)^2 = (1 - t)^2,
        which keeps the target's variance, sigma^2 t / (1 - t), from swamping late times;
        it equals E |x1_theta - x1|^2
  (B5)  dX_t = f_theta(X_t, t[, x0]) dt + sqrt(beta_t) dW_t,  X_0 = x0      (generation)

All tensors are edge vectors in normalised units: x0, x1, x_t : Tensor, shape (bs, E) with
E = R (R - 1) / 2 upper-triangle edges; t : Tensor, shape (bs,).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nmm_connectome.settings import BridgeSettings
from nmm_core.errors import ConfigError, DataError
from nmm_core.runs import atomic_write_bytes, atomic_write_json
from nmm_core.seeds import part_seed

__all__ = ["BridgeModel", "BridgeSettings", "BrownianBridgeMatcher", "EdgeBridgeNet", "EdgeScaler",
           "train_bridge"]


class BrownianBridgeMatcher:
    """The Brownian bridge between paired samples (x0, x1) with constant beta_t = sigma^2.

    sigma : float, the diffusion coefficient of the reference process, in normalised units
    t_max : float, training times are drawn from U[0, t_max]; the target (B2) has variance
        sigma^2 t / (1 - t), which diverges at t = 1
    """

    def __init__(self, sigma: float = 0.2, t_max: float = 0.99) -> None:
        if sigma < 0 or not 0 < t_max < 1:
            raise ConfigError(f"bridge: need sigma >= 0 and 0 < t_max < 1 (got {sigma}, {t_max})")
        self.sigma = float(sigma)
        self.t_max = float(t_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta_t, shape like t."""
        return torch.full_like(t, self.sigma**2)

    def sigma_t2(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_t^2 = int_0^t beta_s ds (B0), shape like t."""
        return self.sigma**2 * t

    def sigma_bar_t2(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_bar_t^2 = int_t^1 beta_s ds (B0), shape like t."""
        return self.sigma**2 * (1 - t)

    def compute_mu_t(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of x_t given the endpoints (B1).

        x0, x1 : Tensor, shape (bs, *dim); t : Tensor, shape (bs,) -> Tensor, shape (bs, *dim)
        """
        t = _pad(t, x0)
        if self.sigma == 0:
            return (1 - t) * x0 + t * x1
        s, sb = self.sigma_t2(t), self.sigma_bar_t2(t)
        return (sb * x0 + s * x1) / (s + sb)

    def compute_var_t(self, t: torch.Tensor) -> torch.Tensor:
        """Variance of each coordinate of x_t given the endpoints (B1); shape like t."""
        if self.sigma == 0:
            return torch.zeros_like(t)
        s, sb = self.sigma_t2(t), self.sigma_bar_t2(t)
        return s * sb / (s + sb)

    def sample_xt(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
                  epsilon: torch.Tensor) -> torch.Tensor:
        """x_t = mu_t + sqrt(var_t) epsilon (B1); epsilon : Tensor, shape (bs, *dim)."""
        return self.compute_mu_t(x0, x1, t) + _pad(self.compute_var_t(t).sqrt(), x0) * epsilon

    def compute_drift(self, x1: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The bridge drift towards x1 (B2): beta_t (x1 - x_t) / sigma_bar_t^2, shape (bs, *dim).

        With a predicted endpoint in place of x1 it is the model's drift (B3). With sigma = 0
        it is the flow-matching velocity (x1 - x_t) / (1 - t).
        """
        if self.sigma == 0:
            return (x1 - xt) / _pad(1 - t, xt)
        return _pad(self.beta(t) / self.sigma_bar_t2(t), xt) * (x1 - xt)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """lambda_t = (sigma_bar_t^2 / beta_t)^2 (B4), shape like t."""
        return (1 - t) ** 2

    def sample_location_and_drift(
        self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, x_t, u_t): t ~ U[0, t_max] (bs,), x_t from (B1), its target drift from (B2)."""
        if t is None:
            t = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
            t = t * self.t_max
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        xt = self.sample_xt(x0, x1, t, eps)
        return t, xt, self.compute_drift(x1, xt, t)

    @torch.no_grad()
    def euler_maruyama(
        self, drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, *,
        steps: int = 50, generator: torch.Generator | None = None,
        trajectory: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Integrate (B5) from x0 at t = 0 to t = 1 in `steps` equal steps.

        drift(t (bs,), x (bs, *dim)) -> (bs, *dim). The last step adds no noise: with the exact
        drift (B2) it lands on x1, since (x1 - x) / (1 - t) * (1 - t) = x1 - x.
        """
        if steps < 1:
            raise ConfigError(f"sampling steps must be >= 1, got {steps}")
        x = x0
        dt = 1.0 / steps
        for k in range(steps):
            t = torch.full((x.shape[0],), k * dt, device=x.device, dtype=x.dtype)
            x = x + drift(t, x) * dt
            if k < steps - 1 and self.sigma > 0:
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + _pad(self.beta(t) * dt, x).sqrt() * noise
            if trajectory is not None:
                trajectory.append(x)
        return x


def _pad(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t : (bs,) -> (bs, 1, ..., 1) to broadcast against `like` (bs, *dim)."""
    return t.reshape(-1, *([1] * (like.dim() - 1)))


class EdgeBridgeNet(nn.Module):
    """x1_theta(x_t, t[, x0]) of (B3): an MLP with a sinusoidal time embedding that reads the
    coordinates of x_t (and x0) in a fixed basis and returns the endpoint in that basis.

    basis : Tensor, shape (k, E), orthonormal rows: the top principal directions of the
        training edges (rest and task together), a buffer saved with the weights.
    forward(t (bs,), xt (bs, E), x0 (bs, E) or None) -> (bs, E)

    Why a basis, and no skip from x0: a few hundred subjects cannot fit a free E -> E map (on
    the synthetic cohort a full-edge MLP overfits within ~100 steps and ends below the rest-FC
    baseline), and an endpoint of the form x0 + correction carries the rest scan's own
    sampling noise into the prediction (measured as a one-step regressor, 800 subjects, 40
    regions: subject-specific r 0.68 with the x0 skip, 0.72 without, ridge 0.72). The output
    layer starts at zero, i.e. at the training mean.
    """

    def __init__(self, basis: torch.Tensor, *, hidden: int = 128, depth: int = 2,
                 dropout: float = 0.1, condition_on_x0: bool = True, time_features: int = 32) -> None:
        super().__init__()
        self.condition_on_x0 = condition_on_x0
        self.time_features = time_features
        self.register_buffer("basis", basis)
        k = basis.shape[0]
        self.inp = nn.Linear(k * (2 if condition_on_x0 else 1), hidden)
        self.time = nn.Sequential(nn.Linear(2 * time_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Dropout(dropout),
                          nn.Linear(hidden, hidden))
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, k))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """(bs,) -> (bs, 2 * time_features): sin/cos at log-spaced frequencies 1..1000."""
        freqs = torch.exp(torch.linspace(0, math.log(1000.0), self.time_features, device=t.device))
        angles = t[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, t: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        inputs = xt @ self.basis.T
        if self.condition_on_x0:
            if x0 is None:
                raise ValueError("this network is conditioned on x0: pass it")
            inputs = torch.cat([inputs, x0 @ self.basis.T], dim=1)
        h = self.inp(inputs) + self.time(self.embed_time(t))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h) @ self.basis


@dataclass
class EdgeScaler:
    """One affine map for both endpoints: x' = (x - mean) / scale (mean (E,), scale scalar).

    The same map on x0 and x1 keeps the bridge a bridge between the pair.
    """

    mean: np.ndarray
    scale: float

    @classmethod
    def fit(cls, rest: np.ndarray, task: np.ndarray) -> EdgeScaler:
        both = np.concatenate([rest, task]).astype(np.float64)
        mean = both.mean(axis=0)
        return cls(mean.astype(np.float32), float((both - mean).std()) or 1.0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.scale).astype(np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) * self.scale + self.mean).astype(np.float32)


class BridgeModel:
    """A trained bridge: settings, edge scaler, matcher and network."""

    def __init__(self, settings: BridgeSettings, scaler: EdgeScaler, net: EdgeBridgeNet) -> None:
        self.settings = settings
        self.scaler = scaler
        self.net = net
        self.matcher = BrownianBridgeMatcher(settings.sigma, settings.t_max)
        self.best_step: int | None = None
        self.best_val_loss: float | None = None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def drift(self, t: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor | None) -> torch.Tensor:
        """f_theta(x_t, t[, x0]) (B3), shape (bs, E)."""
        x0 = x0 if self.net.condition_on_x0 else None
        return self.matcher.compute_drift(self.net(t, xt, x0), xt, t)

    @torch.no_grad()
    def predict(self, rest: np.ndarray, *, samples: int | None = None, steps: int | None = None,
                seed: int | None = None, batch_size: int = 256) -> np.ndarray:
        """(n, E) rest edges -> (n, E) task edges: the mean of `samples` SDE solutions (B5)."""
        s = self.settings
        samples, steps = samples or s.samples, steps or s.sample_steps
        gen = torch.Generator(device=self.device).manual_seed(part_seed(s.seed) if seed is None else seed)
        self.net.eval()
        x0_all = torch.from_numpy(self.scaler.forward(rest)).to(self.device)
        out = []
        for x0 in x0_all.split(batch_size):
            total = torch.zeros_like(x0)
            for _ in range(samples):
                total += self.matcher.euler_maruyama(lambda t, x, c=x0: self.drift(t, x, c), x0,
                                                     steps=steps, generator=gen)
            out.append((total / samples).cpu().numpy())
        return self.scaler.inverse(np.concatenate(out))

    def save(self, folder: str | Path) -> Path:
        """`bridge.pt` (state dict, safe to load with weights_only) + `bridge.json`."""
        import io

        folder = Path(folder)
        buf = io.BytesIO()
        torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, buf)
        atomic_write_bytes(folder / "bridge.pt", buf.getvalue())
        atomic_write_json(folder / "bridge.json", {
            "settings": asdict(self.settings), "n_edges": int(self.scaler.mean.shape[0]),
            "best_step": self.best_step, "best_val_loss": self.best_val_loss,
            "scaler": {"mean": self.scaler.mean.tolist(), "scale": self.scaler.scale},
        })
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "cpu") -> BridgeModel:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "bridge.json").read_text(encoding="utf-8"))
            state = torch.load(folder / "bridge.pt", map_location=device, weights_only=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise DataError(f"{folder}: not a saved bridge model ({e})") from None
        settings = BridgeSettings(**meta["settings"])
        net = _make_net(torch.zeros_like(state["basis"]), settings).to(device)
        net.load_state_dict(state)
        scaler = EdgeScaler(np.asarray(meta["scaler"]["mean"], np.float32), float(meta["scaler"]["scale"]))
        model = cls(settings, scaler, net)
        model.best_step, model.best_val_loss = meta.get("best_step"), meta.get("best_val_loss")
        return model


def _make_net(basis: torch.Tensor, s: BridgeSettings) -> EdgeBridgeNet:
    return EdgeBridgeNet(basis, hidden=s.hidden, depth=s.depth, dropout=s.dropout,
                         condition_on_x0=s.condition_on_x0)


def train_bridge(rest: np.ndarray, task: np.ndarray, settings: BridgeSettings, *,
                 log: Callable[[dict], None] | None = None) -> BridgeModel:
    """Fit x1_theta on paired edges rest (n, E) -> task (n, E), with early stopping.

    `val_fraction` of the pairs is held out; every `eval_every` steps the objective (B4) is
    measured on them at fixed (t, noise) draws, the best weights are kept, and training stops
    after `patience` checks without improvement. `log` gets {step, loss, val_loss, ...}.
    """
    from nmm_core.devices import pick_device

    if len(rest) != len(task) or len(rest) < 4:
        raise DataError(f"bridge: need >= 4 paired training subjects (got {len(rest)}, {len(task)})")
    seed = part_seed(settings.seed)
    torch.manual_seed(seed)
    device = pick_device(settings.device, flag="--bridge-device")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = torch.randperm(len(rest), generator=gen).numpy()
    n_val = max(1, round(settings.val_fraction * len(rest))) if settings.val_fraction > 0 else 0
    val_idx, fit_idx = order[:n_val], order[n_val:]
    scaler = EdgeScaler.fit(rest[fit_idx], task[fit_idx])
    x0_all = torch.from_numpy(scaler.forward(rest)).to(device)
    x1_all = torch.from_numpy(scaler.forward(task)).to(device)
    x0_fit, x1_fit = x0_all[fit_idx], x1_all[fit_idx]
    both = torch.cat([x0_fit, x1_fit])
    k = min(settings.components, len(both) - 1, both.shape[1])
    basis = torch.linalg.svd(both - both.mean(0), full_matrices=False)[2][:k].contiguous()
    net = _make_net(basis, settings).to(device)
    model = BridgeModel(settings, scaler, net)
    fm = model.matcher
    val = _validation_draws(fm, x0_all[val_idx], x1_all[val_idx], gen) if n_val else None
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = max(1, min(50, settings.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warmup))
    best = (math.inf, 0, copy.deepcopy(net.state_dict()))
    start, running, since_best = time.perf_counter(), [], 0
    from tqdm.auto import tqdm

    bar = tqdm(total=settings.steps, desc="bridge", unit="step", leave=False)  # minutes on CPU: show them
    for step in range(1, settings.steps + 1):
        bar.update()
        net.train()
        idx = torch.randint(len(x0_fit), (settings.batch_size,), generator=gen).to(device)
        x0, x1 = x0_fit[idx], x1_fit[idx]
        # the loop proper: a point of the path and its drift (B1, B2), the model's drift (B3), (B4)
        t, xt, ut = fm.sample_location_and_drift(x0, x1, generator=_device_gen(gen, device))
        vt = model.drift(t, xt, x0)
        loss = torch.mean(fm.loss_weight(t)[:, None] * (vt - ut) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % settings.eval_every == 0 or step == settings.steps:
            record = {"step": step, "loss": float(np.mean(running)),
                      "seconds": round(time.perf_counter() - start, 3)}
            running = []
            if val is not None:
                record["val_loss"] = _validation_loss(model, *val)
                if record["val_loss"] < best[0]:
                    best, since_best = (record["val_loss"], step, copy.deepcopy(net.state_dict())), 0
                else:
                    since_best += 1
            if log is not None:
                log(record)
            bar.set_postfix({k: round(v, 4) for k, v in record.items() if k in ("loss", "val_loss")})
            if val is not None and since_best >= settings.patience:
                break
    bar.close()
    if val is not None:
        net.load_state_dict(best[2])
        model.best_step, model.best_val_loss = best[1], best[0]
    else:
        model.best_step, model.best_val_loss = step, math.nan
    net.eval()
    return model


def _device_gen(gen: torch.Generator, device: torch.device) -> torch.Generator | None:
    """The CPU generator on CPU; elsewhere the device's default (a CPU one cannot draw there)."""
    return gen if device.type == "cpu" else None


def _validation_draws(fm: BrownianBridgeMatcher, x0: torch.Tensor, x1: torch.Tensor,
                      gen: torch.Generator, repeats: int = 8) -> tuple[torch.Tensor, ...]:
    """Fixed (t, x_t, u_t) for the held-out pairs: t on a grid over [0, t_max], fixed noise."""
    x0, x1 = x0.repeat(repeats, 1), x1.repeat(repeats, 1)
    t = ((torch.arange(len(x0)) % repeats).float() + 0.5) / repeats * fm.t_max
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    t = t.to(x0.device)
    xt = fm.sample_xt(x0, x1, t, eps)
    return t, xt, fm.compute_drift(x1, xt, t), x0


@torch.no_grad()
def _validation_loss(model: BridgeModel, t, xt, ut, x0) -> float:
    model.net.eval()
    vt = model.drift(t, xt, x0)
    return float(torch.mean(model.matcher.loss_weight(t)[:, None] * (vt - ut) ** 2))
