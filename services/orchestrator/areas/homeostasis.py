"""Seed 002's Homeostasis Module: the projection modulators, their online learning, the
saturation safeguard and sleep consolidation.

**Modulator** (§1) per edge x NT: ``s = s_max · σ(w · x + b)`` with the features
(:data:`FEATURES`, F = 8) ``x = [μ_src, μ_tgt, band_err_src, band_err_tgt, volatility_tgt,
ΔC, ΔH, 1 - safety]`` — the seed's list plus the small global context of §10 (coherence
gain, uncertainty drop, DMN safety).

**Online objective** (§4), descended on (w, b) every awake cycle (:mod:`optim`)::

    L = α2 Σ|band_err(μ̂*)| + α3 Σ|μ⁺ - μ| + β1 Σ(s - s_prev)² + β2 Σ s + β3 Σ sent / sent_rest
        - α1 ΔC   (credited through eligibility traces, see below)

* ⚑ The band penalty is taken on the projected resting level μ̂* = μ + (μ⁺ - μ)/δ, δ =
  1 - retain·(1 - Q) the fraction of the distance to its fixed point a level covers per
  cycle (Q its release fraction; δ held fixed). For the linear cycle μ̂* is exactly where
  the level settles if this cycle's flows persist. The seed's one-cycle band error moves
  by only δ per unit (0.0005 for testosterone), which regularisers of unit scale would
  drown; the projection puts every NT on the same footing and lets the module react to
  where an area is heading, not only where it is.
* The band is the target band shrunk by ``band_margin`` of its width at each end, so the
  sparsity and energy terms, which push s down inside the band, are stopped before the
  level leaves the real band.
* ``sent_rest`` (each edge's calibrated resting transfer) makes L_energy dimensionless.
* Base gains g follow the same loss on the slow timescale (``gain_lr``, §5).
* ΔC arrives from outside, later: each cycle e ← λ e + (s - s̄) ∂s/∂θ, and a DMN report
  adds -α1 (ΔC - C̄) e to the gradient (three-factor credit, as in :mod:`receptors`).

**Saturation** (§8): a level above ``upper + saturation_margin`` for more than
``saturation_cycles`` consecutive cycles multiplies the base gains of every edge feeding
it by ``saturation_reduce`` (and the count restarts).

**Consolidation** (§5 "Periodic (sleep)"), from dream-weave replay (seed 003 §8.1): each
dream batch replays remembered global states (with counterfactual noise at the dream
temperature) through the steady state of the current graph; over a nap the module
accumulates, per target, Σ μ*·c and Σ μ*² (c the band centre) and per edge its share of
its target's supply. When the nap ends:

1. prune every edge x NT whose mean s (awake) is below ``prune_s`` · s_max *and* whose mean
   share is below ``prune_share``;
2. refit base gains by the regression κ = Σ μ* c / Σ μ*² — the factor that would have put
   the replayed states at their band centres on average — applying κ^rate, and move the
   modulators' long-term adaptation into g: g ← g · (s̄ / s_mid) · κ^rate, b shifted so
   that s returns to s_mid = s_max/2 at the mean features (the fast modulators get their
   range back, the product is unchanged but for κ);
3. re-centre bands chronically saturated / underfilled (more than ``chronic_fraction`` of
   the recent awake time above / below): the centre moves ``band_rate`` of the way to the
   mean level, never more than ``band_drift_max`` from the configured rest.

Writers: the area model's :class:`~.learner.Learner` (the online step, the saturation
safeguard) and :class:`~.nap.NapConsolidation` (consolidation), on the control cycle's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.receptors import sigmoid
from engs.services.orchestrator.areas.transfer import Flows, Kinetics, backward
from engs.shared.config import ConsolidationConfig, HomeostasisConfig
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

FEATURES: tuple[str, ...] = (
    "mu_src", "mu_tgt", "band_err_src", "band_err_tgt", "volatility_tgt",
    "coherence_gain", "uncertainty_drop", "unsafety",
)  # fmt: skip
N_FEATURES = len(FEATURES)


def band_error(mu: F64Array, lo: F64Array, hi: F64Array) -> F64Array:
    """Signed distance to the band: > 0 above ``hi``, < 0 below ``lo``, 0 inside."""
    return np.maximum(mu - hi, 0.0) - np.maximum(lo - mu, 0.0)


class Modulators:
    """The modulators of every edge x NT: ``w`` (E, 7, F), ``b`` and base gains ``g``
    (E, 7) are views the caller owns (initialised here); the features and s of the
    cycle live here."""

    def __init__(
        self,
        kin: Kinetics,
        hc: HomeostasisConfig,
        rng: np.random.Generator,
        w: F64Array,
        b: F64Array,
        g: F64Array,
    ) -> None:
        e = kin.n_edges
        self.s_max = hc.s_max
        self.mask = kin.mask  # shared with the kinetics: pruning clears both
        w[...] = rng.normal(0.0, hc.weight_init_std, size=w.shape) * self.mask[..., None]
        b[...] = 0.0
        g[...] = self.mask
        self.w, self.b, self.g = w, b, g
        self.x = np.zeros((e, N_NT, N_FEATURES))
        self.s = np.zeros((e, N_NT))
        self.dsdz = np.zeros((e, N_NT))

    def features(
        self,
        kin: Kinetics,
        level: F64Array,
        err: F64Array,
        vol: F64Array,
        dmn: F64Array,
    ) -> None:
        """Fill x (E, 7, F) from the levels (K, 7; relative fill in the nuclei), the
        areas' band errors and volatility (K, 7; 0 in the nuclei) and the DMN metrics
        (inputs.DMN_FIELDS order)."""
        x, e = self.x, kin.n_edges
        x[:, :, 0] = level.reshape(-1)[kin.idx_src].reshape(e, N_NT)
        x[:, :, 1] = level.reshape(-1)[kin.idx_tgt].reshape(e, N_NT)
        x[:, :, 2] = err.reshape(-1)[kin.idx_src].reshape(e, N_NT)
        x[:, :, 3] = err.reshape(-1)[kin.idx_tgt].reshape(e, N_NT)
        x[:, :, 4] = vol.reshape(-1)[kin.idx_tgt].reshape(e, N_NT)
        x[:, :, 5] = dmn[0]
        x[:, :, 6] = dmn[2]
        x[:, :, 7] = 1.0 - dmn[3]

    def forward(self) -> None:
        """s = s_max σ(w·x + b) on the carried entries, and ∂s/∂z."""
        z = np.einsum("enf,enf->en", self.w, self.x)
        z += self.b
        sig = sigmoid(z)
        np.multiply(sig, self.s_max, out=self.s)
        self.s *= self.mask
        np.multiply(self.s, 1.0 - sig, out=self.dsdz)


@dataclass
class HmInputs:
    """What the online objective holds fixed in one cycle; area blocks are (A, 7), the
    rows from ``n0`` on."""

    n0: int
    lo: F64Array
    hi: F64Array
    """(A, 7) the inner target band of the levels."""
    delta: F64Array
    """(A, 7) δ: per-cycle fraction of the way to the fixed point (> 0)."""
    s_prev: F64Array
    sent_rest: F64Array
    """(E, 7) calibrated resting transfer (1 where not carried)."""


@dataclass
class HmObjective:
    value: float
    band: float
    stability: float
    smooth: float
    sparsity: float
    energy: float
    d_post: F64Array
    d_sent: F64Array
    d_s: F64Array
    """Direct dL/ds (smoothness, sparsity)."""


def hm_objective(
    kin: Kinetics,
    fl: Flows,
    s: F64Array,
    hi_: HmInputs,
    hc: HomeostasisConfig,
    *,
    values: bool = True,
) -> HmObjective:
    """The online loss of the Homeostasis Module for this cycle (see the module doc).
    Entries an edge does not carry have s = s_prev = sent = 0 and add nothing.
    ``values=False`` skips the scalar terms (the cycle needs only the adjoints)."""
    sl = slice(hi_.n0, None)
    mu, post = fl.mu[sl], fl.post[sl]
    move = post - mu
    proj = mu + move / hi_.delta
    be = band_error(proj, hi_.lo, hi_.hi)
    ds = s - hi_.s_prev
    band = stability = smooth = sparsity = energy = value = 0.0
    if values:
        band = float(np.abs(be).sum())
        stability = float(np.abs(move).sum())
        smooth = float((ds * ds).sum())
        sparsity = float(s.sum())
        energy = float((fl.sent / hi_.sent_rest).sum())
        value = (
            hc.alpha_band * band + hc.alpha_stability * stability + hc.beta_smooth * smooth
            + hc.beta_sparsity * sparsity + hc.beta_energy * energy
        )  # fmt: skip
    d_post = np.zeros(fl.post.shape)
    d_post[sl] = hc.alpha_band * np.sign(be) / hi_.delta + hc.alpha_stability * np.sign(move)
    d_sent = (hc.beta_energy / hi_.sent_rest) * kin.mask
    d_s = (2.0 * hc.beta_smooth * ds + hc.beta_sparsity) * kin.mask
    return HmObjective(value, band, stability, smooth, sparsity, energy, d_post, d_sent, d_s)


def hm_gradients(
    kin: Kinetics,
    fl: Flows,
    mods: Modulators,
    obj: HmObjective,
    out: tuple[F64Array, F64Array, F64Array] | None = None,
) -> tuple[F64Array, F64Array, F64Array]:
    """dL/d(w, b, g) of :func:`hm_objective` through this cycle's transfer (written into
    ``out`` when given). Entries an edge does not carry get exact zeros: their s, ∂s/∂z
    and share are 0."""
    g_s, g_g, _, _ = backward(kin, fl, mods.s, mods.g, d_post=obj.d_post, d_sent=obj.d_sent)
    g_s += obj.d_s
    dz = g_s * mods.dsdz
    if out is None:
        return dz[..., None] * mods.x, dz, g_g
    dw, db, dg = out
    np.multiply(dz[..., None], mods.x, out=dw)
    np.copyto(db, dz)
    np.copyto(dg, g_g)
    return out


def saturation_hits(
    post: F64Array,
    upper: F64Array,
    counts: np.ndarray[Any, np.dtype[np.int64]],
    hc: HomeostasisConfig,
) -> BoolArray:
    """Advance the consecutive-saturation counts (A, 7) of the area levels ``post``
    (A, 7); return where they passed T (and restart those counts)."""
    sat = post > upper + hc.saturation_margin
    counts += 1
    counts *= sat
    hit: BoolArray = counts > hc.saturation_cycles
    counts[hit] = 0
    return hit


def reduce_feeding_gains(kin: Kinetics, g: F64Array, hit: BoolArray, n0: int, factor: float) -> int:
    """g *= factor on every carried edge x NT whose target (area block ``hit``) is hit;
    returns how many were reduced."""
    full = np.zeros((kin.n_sites, N_NT), dtype=bool)
    full[n0:] = hit
    feeding = full.reshape(-1)[kin.idx_tgt].reshape(g.shape) & (kin.mask > 0)
    g[feeding] *= factor
    return int(feeding.sum())


@dataclass
class DreamStats:
    """Accumulated over one nap's dream batches (checkpointed)."""

    mu_c: F64Array
    """(A, 7) Σ μ* · c."""
    mu2: F64Array
    """(A, 7) Σ μ*²."""
    share: F64Array
    """(E, 7) Σ of each edge's share of its target's supply."""
    samples: np.ndarray[Any, np.dtype[np.int64]]
    """(1,) replayed states."""

    @classmethod
    def zeros(cls, n_areas: int, n_edges: int) -> DreamStats:
        return cls(
            np.zeros((n_areas, N_NT)),
            np.zeros((n_areas, N_NT)),
            np.zeros((n_edges, N_NT)),
            np.zeros(1, dtype=np.int64),
        )

    def reset(self) -> None:
        for a in (self.mu_c, self.mu2, self.share, self.samples):
            a[...] = 0

    def add(
        self, kin: Kinetics, mu: F64Array, sent: F64Array, influx: F64Array, centre: F64Array
    ) -> None:
        """Fold in a batch of steady states: levels (B, K, 7), transfers (B, E, 7),
        influx (B, K, 7); ``centre`` (A, 7) the band centres."""
        area_mu = mu[:, kin.n_nuclei :]
        self.mu_c += (area_mu * centre).sum(axis=0)
        self.mu2 += (area_mu * area_mu).sum(axis=0)
        b, e = sent.shape[0], kin.n_edges
        supply = influx.reshape(b, -1)[:, kin.idx_tgt].reshape(b, e, N_NT)
        ok = supply > 0.0
        self.share += np.where(ok, sent / np.where(ok, supply, 1.0), 0.0).sum(axis=0)
        self.samples[0] += b


@dataclass(frozen=True)
class ConsolidationResult:
    pruned: int
    refit: int
    bands_moved: int
    samples: int


def consolidate(
    kin: Kinetics,
    mods: Modulators,
    stats: DreamStats,
    s_mean: F64Array,
    bands: tuple[F64Array, F64Array],
    rest_centre: F64Array,
    level_mean: F64Array,
    frac_above: F64Array,
    frac_below: F64Array,
    hc: HomeostasisConfig,
    cc: ConsolidationConfig,
) -> ConsolidationResult:
    """Apply one nap's consolidation in place (prune, refit, re-centre; module doc).
    Area blocks (A, 7): bands, rest_centre, level_mean, frac_above, frac_below."""
    n = int(stats.samples[0])
    n0, k = kin.n_nuclei, kin.n_sites
    carried = kin.mask > 0
    pruned = np.zeros_like(carried)
    refit = np.zeros_like(carried)
    if n > 0:
        share = stats.share / n
        pruned = carried & (s_mean < cc.prune_s * hc.s_max) & (share < cc.prune_share)
        # never cut the last supply of an (area, NT): it would decay to zero
        left = (
            np.bincount(kin.idx_tgt, weights=(carried & ~pruned).reshape(-1), minlength=k * N_NT)
            .reshape(-1)[kin.idx_tgt]
            .reshape(carried.shape)
        )
        pruned &= left > 0
        kin.mask[pruned] = 0.0
        kin.share[pruned] = 0.0
        mods.w[pruned] = 0.0
        mods.b[pruned] = 0.0
        mods.g[pruned] = 0.0
        ok = stats.mu2 > 0.0
        kappa = np.ones((k, N_NT))
        kappa[n0:] = np.where(ok, stats.mu_c / np.where(ok, stats.mu2, 1.0), 1.0)
        factor = kappa.reshape(-1)[kin.idx_tgt].reshape(mods.g.shape) ** cc.refit_rate
        refit = (kin.mask > 0) & (s_mean > 0.0) & (mods.g > 0.0)
        s_mid = 0.5 * hc.s_max
        g_old = np.where(refit, mods.g, 1.0)
        g_new = np.clip(g_old * (s_mean / s_mid) * factor, hc.gain_min, hc.gain_max)
        ratio = g_new / g_old
        ok_s = refit & (ratio > 0.0)
        lim = 1e-6 * hc.s_max
        target = np.clip(s_mean * factor / np.where(ok_s, ratio, 1.0), lim, hc.s_max - lim)
        mean = np.clip(s_mean, lim, hc.s_max - lim)
        shift = _logit(target / hc.s_max) - _logit(mean / hc.s_max)
        mods.b += np.where(ok_s, shift, 0.0)
        np.clip(mods.b, -hc.weight_max, hc.weight_max, out=mods.b)
        mods.g[refit] = g_new[refit]
    lo, hi = bands
    half = 0.5 * (hi - lo)
    centre = 0.5 * (hi + lo)
    chronic = (frac_above > cc.chronic_fraction) | (frac_below > cc.chronic_fraction)
    moved = centre + cc.band_rate * (level_mean - centre)
    moved = np.clip(moved, rest_centre - cc.band_drift_max, rest_centre + cc.band_drift_max)
    moved = np.clip(moved, half, kin.ceiling[n0:] - half)
    lo[chronic] = moved[chronic] - half[chronic]  # (only these: no rounding elsewhere)
    hi[chronic] = moved[chronic] + half[chronic]
    return ConsolidationResult(
        pruned=int(pruned.sum()),
        refit=int(refit.sum()),
        bands_moved=int(chronic.sum()),
        samples=n,
    )


def _logit(p: F64Array) -> F64Array:
    return np.log(p) - np.log1p(-p)
