"""The seeded synthetic cohort: subject-specific FC with network blocks and a motor-task
effect that depends on the subject, so that methods can be compared against a known truth."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from nmm_connectome.data import Cohort

# Yeo-style network names; "somatomotor" carries the motor task effect.
NETWORK_NAMES = ("visual", "somatomotor", "dorsal_attention", "ventral_attention", "limbic",
                 "frontoparietal", "default")


@dataclass(frozen=True)
class SyntheticSpec:
    """Size, noise and seed of the synthetic cohort (see `synthesize` for the model)."""

    subjects: int = 1000  # HCP-YA: about 1,000 subjects have rest and motor runs
    regions: int = 40
    networks: int = 6
    latent_dim: int = 4
    rest_frames: int = 1200  # HCP: 1,200 frames per rest run
    task_frames: int = 568  # HCP motor: 2 runs x 284 frames
    autocorrelation: float = 0.6  # AR(1) coefficient of the BOLD frames (fewer effective ones)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.networks <= len(NETWORK_NAMES):
            raise ValueError(f"networks must be 2..{len(NETWORK_NAMES)}, got {self.networks}")
        if self.regions < 4 * self.networks:
            raise ValueError(f"regions must be at least 4 per network ({4 * self.networks})")
        if self.subjects < 2 or self.latent_dim < 1:
            raise ValueError("subjects must be >= 2 and latent_dim >= 1")
        if not 0 <= self.autocorrelation < 1:
            raise ValueError("autocorrelation must be in [0, 1)")
        if min(self.effective_frames(self.rest_frames), self.effective_frames(self.task_frames)) \
                <= self.regions + 1:
            raise ValueError("too few (effective) frames for this many regions: FC would be singular")

    def effective_frames(self, frames: int) -> float:
        """Frames of AR(1) noise worth as much as this many independent ones, for a correlation:
        T (1 - phi^2) / (1 + phi^2) (Bartlett's variance of the sample correlation)."""
        phi2 = self.autocorrelation**2
        return frames * (1 - phi2) / (1 + phi2)


def synthesize(spec: SyntheticSpec = SyntheticSpec()) -> Cohort:
    """The seeded synthetic cohort: FC with network blocks and a subject-dependent task effect.

    Each subject s has latent factors z_s ~ N(0, I_q). Its region loadings on K network
    factors plus a global one are L_s = G + sum_j z_sj A_j + E_s (G: group blocks, A_j: fixed
    patterns, E_s: a small subject fingerprint); rest covariance is L_s L_s^T + Psi. In the
    task the same subject gains a motor factor u_s on half of the somatomotor network with
    amplitude 0.7 + 0.4 tanh(w_a . z_s), coupled to half of the dorsal-attention network with
    weight 0.6 tanh(w_c . z_s), and its motor regions' somatomotor loading is scaled by
    1 + 0.5 tanh(w_m . z_s). Because z_s drives both, a subject's rest FC tells about its task
    FC beyond the group mean, through a non-linear (tanh) map.

    FC is the correlation of a Wishart draw with the effective number of frames of AR(1)
    BOLD noise (`SyntheticSpec.effective_frames`): exactly what correlating that many
    independent Gaussian frames gives, so each matrix is symmetric, unit-diagonal and PSD with
    realistic sampling noise. Population parts are drawn before subjects, so cohorts with the
    same seed and shape share them whatever their size.
    """
    rng = np.random.default_rng(spec.seed)
    R, K, q = spec.regions, spec.networks, spec.latent_dim
    net_of = np.concatenate([np.full(len(chunk), k) for k, chunk in
                             enumerate(np.array_split(np.arange(R), K))])
    names = list(NETWORK_NAMES[:K])
    counters: Counter[int] = Counter()
    regions = []
    for k in net_of:
        counters[k] += 1
        regions.append(f"{names[k]}_{counters[k]:02d}")
    G = np.zeros((R, K + 1))
    G[np.arange(R), net_of] = rng.uniform(0.6, 0.85, R)
    G[:, K] = rng.uniform(0.15, 0.35, R)  # global signal
    A = rng.normal(0.0, 0.04, (q, R, K + 1))
    psi = rng.uniform(0.35, 0.55, R)
    w_amp, w_couple, w_mod = rng.normal(0.0, 1.0 / np.sqrt(q), (3, q))
    sm = np.flatnonzero(net_of == 1)
    motor = sm[: max(2, len(sm) // 2)]
    partner_net = np.flatnonzero(net_of == 2)
    partner = partner_net[: max(2, len(partner_net) // 2)]
    df_rest, df_task = spec.effective_frames(spec.rest_frames), spec.effective_frames(spec.task_frames)

    width = len(str(spec.subjects - 1))
    subjects, rest, task, latents = [], [], [], []
    for s in range(spec.subjects):
        z = rng.normal(size=q)
        L = G + np.tensordot(z, A, axes=1) + rng.normal(0.0, 0.02, (R, K + 1))
        L_task = L.copy()
        L_task[motor, 1] *= 1 + 0.5 * np.tanh(w_mod @ z)
        u = np.zeros(R)
        u[motor] = 0.7 + 0.4 * np.tanh(w_amp @ z)
        u[partner] = 0.6 * np.tanh(w_couple @ z)
        rest.append(_sample_fc(L @ L.T + np.diag(psi), df_rest, rng))
        task.append(_sample_fc(L_task @ L_task.T + np.outer(u, u) + np.diag(psi), df_task, rng))
        subjects.append(f"sub-{s:0{width}d}")
        latents.append(z)
    meta = {"source": "synthetic", "spec": dict(spec.__dict__),
            "motor_regions": [regions[i] for i in motor],
            "partner_regions": [regions[i] for i in partner],
            "latents": np.round(np.array(latents), 6).tolist()}
    return Cohort(subjects, np.stack(rest), np.stack(task), regions, [names[k] for k in net_of],
                  "correlation", meta)


def _sample_fc(cov: np.ndarray, df: float, rng: np.random.Generator) -> np.ndarray:
    """Correlation of a Wishart(cov, df) draw (Bartlett decomposition), i.e. of the sample
    covariance of `df` independent N(0, cov) frames; PSD for df > regions."""
    r = len(cov)
    a = np.tril(rng.standard_normal((r, r)), -1)
    a[np.diag_indices(r)] = np.sqrt(rng.chisquare(df - np.arange(r)))
    m = np.linalg.cholesky(cov) @ a
    w = m @ m.T
    d = np.sqrt(np.diag(w))
    fc = w / np.outer(d, d)
    np.fill_diagonal(fc, 1.0)
    return fc
