"""Seed 000's receptor homeostasis: density, sensitivity and release networks, the
signalling-efficiency objective, eligibility traces for delayed DMN outcomes.

Three tiny networks, one per (site, receptor type); receptor type r is the NT n itself
(one receptor population per neuromodulator and area)::

    ρ̂ = ρ_max · σ(W_ρ · c + b_ρ)    density     → receptor capacity cap = ρ̂ · cap_recv
    ŝ = s_max · σ(W_σ · c + b_σ)    sensitivity → effective level x = ŝ · μ (published)
    r̂ = r_max · σ(W_r · c + b_r)    release     → multiplies every release of an emitter

stacked as ``W (3, K, 7, C)``, ``b (3, K, 7)``; start at W = 0, b = logit(1/max), so
every output starts at exactly 1, the calibrated prior (seed 000: "constrain with
softplus or sigmoid ranges"). The context ``c`` of a site (C = 29 + node buckets) is
its own levels μ, receptor occupancy B̄ of the last cycle and band errors (7 each), the
global D, S, N, ATP, the five DMN outcome metrics and the current cognitive (CFG) node
hashed one-hot (seed 000: "use the CFG node and μ snapshot as conditioning inputs").

Local efficiency per (area, receptor), every term in [0, 1] (seed 000 "Practical tips")::

    B̄       = bound / cap                     binding fraction (unused capacity is waste)
    SatNT   = spilled / influx                spillover beyond binding capacity
    u       = B̄ · ŝ / s_max                   receptor signal
    RangeUtil = EMA_τ[ψ(u)]                   ψ a soft indicator of [θ_low, θ_high]   ⚑ 1
    S̄       = act / (act + Ā)                 physics per-area activity, normalised
    Ŝ       = β · [u, 1]                      running regression of S̄ on the signals
    NoiseLeak = residual var / var of S̄       of that regression
    Energy  = ρ̂ / ρ_max  (receivers),  r̂ / r_max  (emitters)

    Eff_local = mean_pairs(w_b B̄ + w2 RangeUtil - w3 SatNT) - w5 Energy
                + mean_areas(w1 (1 - NoiseLeak) Ŝ - w4 NoiseLeak)                 ⚑ 2
    Eff_cog   = v1 ΔC + v2 ΔU + v3 ΔH + v4 S + v5 ΔCal     (the DMN signal's metrics)

    L = -(α Eff_local + β_t Eff_cog) + λ1 Smooth(ρ̂, ŝ, r̂) + λ2 ‖θ - θ₀‖² + λ3 HomeostasisDev

with HomeostasisDev = mean_pairs(band_err(x)²) over the inner band plus the squared
excess of each NT's area-mean ρ̂ and ŝ outside [0.5, 1.5] ("population averages in
realistic ranges"), and β_t annealed from ``beta_start`` to ``beta_end`` (seed 000:
"start with β small, then anneal upward").

Gradients: every term but Eff_cog is differentiated analytically through the nets and
this cycle's transfer (:func:`transfer.backward`), μ and the context held (tested
against finite differences). Eff_cog cannot be differentiated — the DMN reports come
from outside, later — so it is credited with eligibility traces (seed 000 "attribution
across time"): e ← λ e + (y - ȳ) ∂y/∂θ each cycle, and a report adds
-β_t (Eff_cog - Ē_cog) e to that cycle's gradient (a three-factor rule: outputs that
were above their running mean before a better-than-usual outcome are pushed up).

⚑ 1 RangeUtil is a time fraction — not differentiable. The soft indicator ψ (slope 50)
makes it so, and its exponential window (τ = ``range_tau_s``) means only the present
term depends on the present parameters: ∂RangeUtil/∂u = α ψ'(u).
⚑ 2 S̄ is measured by the physics, so its dependence on the networks is taken from the
regression (Ŝ); NoiseLeak, a statistic of a window, is not differentiated but weights
that credit: activity the signals do not explain earns them nothing.

Writers: :class:`~engs.services.orchestrator.areas.model.AreaNeurochemistry` (forward pass,
activity statistics) and its :class:`~.learner.Learner` (the networks' parameters), on the
control cycle's thread.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.transfer import Flows, Kinetics
from engs.shared.config import ReceptorConfig, ScalingConfig
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

DENSITY, SENSITIVITY, RELEASE = 0, 1, 2
N_NETS = 3
N_GLOBALS = 4  # D, S, N, ATP
N_DMN = 5
RANGE_SLOPE = 50.0
POP_RANGE = (0.5, 1.5)
RIDGE = 1e-4


def context_size(node_buckets: int) -> int:
    return 3 * N_NT + N_GLOBALS + N_DMN + node_buckets


def node_bucket(node: str | None, buckets: int) -> int:
    """The one-hot slot of a CFG node label (CRC-32: stable across runs and hosts;
    Python's ``hash`` is salted per process). -1: no node."""
    if node is None:
        return -1
    return zlib.crc32(node.encode()) % buckets


def sigmoid(z: F64Array) -> F64Array:
    """σ(z) = (1 + tanh(z/2)) / 2: no overflow for any finite z."""
    out = np.tanh(0.5 * z)
    out += 1.0
    out *= 0.5
    return out


def build_context(
    level: F64Array,
    occupancy: F64Array,
    band_err: F64Array,
    globals4: F64Array,
    dmn: F64Array,
    bucket: int,
    n0: int,
    out: F64Array,
) -> None:
    """Fill ``out`` (K, C) with each site's context (module docstring): ``level`` (K, 7)
    the sites' levels (relative fill in the nuclei); ``occupancy`` and ``band_err``
    (A, 7) of the areas (rows from ``n0``; 0 for the nuclei)."""
    n = N_NT
    out[:, :n] = level
    out[:n0, n : 3 * n] = 0.0
    out[n0:, n : 2 * n] = occupancy
    out[n0:, 2 * n : 3 * n] = band_err
    g0 = 3 * n
    out[:, g0 : g0 + N_GLOBALS] = globals4
    out[:, g0 + N_GLOBALS : g0 + N_GLOBALS + N_DMN] = dmn
    out[:, g0 + N_GLOBALS + N_DMN :] = 0.0
    if bucket >= 0:
        out[:, g0 + N_GLOBALS + N_DMN + bucket] = 1.0


class Nets:
    """The three networks' outputs for one graph; ``w`` (3, K, 7, C) and ``b`` (3, K, 7)
    are views the caller owns (initialised here to the prior)."""

    def __init__(self, w: F64Array, b: F64Array, cfg: ReceptorConfig, kin: Kinetics) -> None:
        self.ymax = np.array([cfg.density_max, cfg.sensitivity_max, cfg.release_max])
        self.w = w
        self.b = b
        w[...] = 0.0
        b[...] = np.log(1.0 / (self.ymax - 1.0))[:, None, None]  # every output starts at 1
        self.w0 = w.copy()
        self.b0 = b.copy()
        self.active = np.stack([kin.receives, kin.receives, kin.emits])
        self.y = np.ones(b.shape)
        self.dydz = np.zeros(b.shape)

    def forward(self, c: F64Array) -> None:
        """y and ∂y/∂z for context ``c`` (K, C); inactive outputs are held at 1 with
        ∂y/∂z = 0 (so no gradient reaches their parameters)."""
        z = np.einsum("jknc,kc->jkn", self.w, c)
        z += self.b
        sig = sigmoid(z)
        np.multiply(self.ymax[:, None, None], sig, out=self.y)
        np.multiply(self.y, 1.0 - sig, out=self.dydz)
        self.y[~self.active] = 1.0
        self.dydz[~self.active] = 0.0

    def outputs(self, net: int, c: F64Array) -> F64Array:
        """One network's outputs (..., K, 7) for a batch of contexts (..., K, C)."""
        z = np.einsum("knc,...kc->...kn", self.w[net], c) + self.b[net]
        return np.where(self.active[net], self.ymax[net] * sigmoid(z), 1.0)


def window(u: F64Array, lo: float, hi: float) -> tuple[F64Array, F64Array]:
    """ψ(u) = σ(k(u - lo)) σ(k(hi - u)) and ψ'(u) = k ψ (σ(k(hi - u)) - σ(k(u - lo)))."""
    a = sigmoid(RANGE_SLOPE * (u - lo))
    b = sigmoid(RANGE_SLOPE * (hi - u))
    psi = a * b
    return psi, RANGE_SLOPE * psi * (b - a)


@dataclass
class LocalInputs:
    """What the local objective holds fixed in one cycle (detached). Area-block arrays
    are (A, 7): the rows from ``n0`` on (every area receives every NT)."""

    n0: int
    emit: BoolArray
    """(K, 7) emitting (site, NT) pairs."""
    lo: F64Array
    hi: F64Array
    """(A, 7) the inner band of the effective level."""
    y_prev: F64Array
    """(3, K, 7) last cycle's outputs (smoothness)."""
    beta: F64Array
    """(A, 8) activity regression per area (bias last)."""
    noise_leak: F64Array
    """(A,)."""
    ru_prev: F64Array
    """(A, 7) RangeUtil before this cycle."""
    ru_alpha: float


@dataclass
class LocalObjective:
    """Value, terms and adjoints of the local part of L (everything but Eff_cog and the
    parameter drift, which the caller adds). Area-block terms are (A, 7)."""

    value: float
    eff_local: float
    smooth: float
    homeostasis: float
    energy: float
    occupancy: F64Array
    saturation: F64Array
    signal: F64Array
    range_util: F64Array
    activity_hat: F64Array
    d_y: F64Array
    """(3, K, 7) direct dL/d(ρ̂, ŝ, r̂)."""
    d_post: F64Array
    d_bound: F64Array
    d_cap: F64Array
    d_spilled: F64Array
    d_influx: F64Array
    """(K, 7) adjoints for :func:`transfer.backward`."""


def local_objective(
    kin: Kinetics,
    fl: Flows,
    y: F64Array,
    ymax: F64Array,
    li: LocalInputs,
    rc: ReceptorConfig,
    *,
    values: bool = True,
) -> LocalObjective:
    """The local part of seed 000's loss for this cycle's flows and network outputs
    (sums over (area, receptor) pairs, as the seed's Σ_a Σ_r). ``values=False`` skips
    the scalar terms (the cycle needs only the adjoints and the per-pair arrays)."""
    sl = slice(li.n0, None)
    cap, bound, spilled = fl.cap[sl], fl.bound[sl], fl.spilled[sl]
    influx, post = fl.influx[sl], fl.post[sl]
    n_areas = post.shape[0]
    emit = li.emit
    rho, shat, rhat = y[DENSITY, sl], y[SENSITIVITY, sl], y[RELEASE]
    has_cap = cap > 0.0  # a density output can underflow to 0 under extreme contexts
    cap_s = np.where(has_cap, cap, 1.0)
    occ = bound / cap_s  # bound = min(influx, 0) = 0 where there is no capacity
    has_in = influx > 0.0
    influx_s = np.where(has_in, influx, 1.0)
    sat = spilled / influx_s
    smax = ymax[SENSITIVITY]
    u = occ * shat / smax
    psi, dpsi = window(occ, rc.range_low, rc.range_high)
    a = li.ru_alpha
    ru = (1.0 - a) * li.ru_prev + a * psi
    beta_u = li.beta[:, :N_NT]
    gain = 1.0 - li.noise_leak
    dy_prev = y - li.y_prev  # inactive outputs are 1 in both: no mask needed
    x = shat * post
    be = np.maximum(x - li.hi, 0.0) - np.maximum(li.lo - x, 0.0)
    d_pop = np.zeros((2, n_areas, N_NT))
    hinge = 0.0
    for out, net in enumerate((rho, shat)):  # the two receiver nets (not NTs or edges)
        m = net.mean(axis=0)
        h = np.maximum(m - POP_RANGE[1], 0.0) - np.maximum(POP_RANGE[0] - m, 0.0)
        hinge += n_areas * float((h * h).sum())
        d_pop[out] = 2.0 * h
    alpha, l1, l3 = rc.alpha, rc.smooth, rc.homeostasis
    act_hat = np.zeros(n_areas)
    eff = energy = smooth = homeo = value = 0.0
    if values:
        act_hat = (beta_u * u).sum(axis=1) + li.beta[:, N_NT]
        energy = float(rho.sum()) / ymax[DENSITY] + float((rhat * emit).sum()) / ymax[RELEASE]
        eff = (
            rc.w_binding * float(occ.sum()) + rc.w_range * float(psi.sum())
            - rc.w_saturation * float(sat.sum()) - rc.w_energy * energy
            + rc.w_activity * float((gain * act_hat).sum())
            - rc.w_noise * float(li.noise_leak.sum())
        )  # fmt: skip
        smooth = float((dy_prev * dy_prev).sum())
        homeo = float((be * be).sum()) + hinge
        value = -alpha * eff + l1 * smooth + l3 * homeo

    # ---- adjoints
    d_u = -alpha * rc.w_activity * (gain[:, None] * beta_u)
    d_occ = -alpha * (rc.w_binding + rc.w_range * dpsi) + d_u * shat / smax
    d_y = (2.0 * l1) * dy_prev
    d_y[DENSITY, sl] += l3 * d_pop[0] + alpha * rc.w_energy / ymax[DENSITY]
    d_y[SENSITIVITY, sl] += l3 * d_pop[1] + d_u * occ / smax + 2.0 * l3 * be * post
    d_y[RELEASE] += alpha * rc.w_energy / ymax[RELEASE]
    d_sat = np.where(has_in, alpha * rc.w_saturation, 0.0)
    shape = fl.post.shape
    d_post, d_bound, d_cap = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    d_spilled, d_influx = np.zeros(shape), np.zeros(shape)
    d_post[sl] = 2.0 * l3 * be * shat
    d_bound[sl] = d_occ / cap_s
    d_cap[sl] = np.where(has_cap, -d_occ * occ / cap_s, 0.0)
    d_spilled[sl] = d_sat / influx_s
    d_influx[sl] = -d_sat * sat / influx_s
    return LocalObjective(
        value=value,
        eff_local=float(eff),
        smooth=smooth,
        homeostasis=homeo,
        energy=energy,
        occupancy=occ,
        saturation=sat,
        signal=u,
        range_util=ru,
        activity_hat=act_hat,
        d_y=d_y,
        d_post=d_post,
        d_bound=d_bound,
        d_cap=d_cap,
        d_spilled=d_spilled,
        d_influx=d_influx,
    )


def annealed_beta(rc: ReceptorConfig, learn_s: float) -> float:
    """β_t = β_end - (β_end - β_start) e^{-t/τ}: small at first, then the full weight."""
    return rc.beta_end - (rc.beta_end - rc.beta_start) * math.exp(-learn_s / rc.beta_tau_s)


def cognitive_efficiency(rc: ReceptorConfig, dmn: F64Array) -> float:
    """Eff_cog = v1 ΔC + v2 ΔU + v3 ΔH + v4 S + v5 ΔCal (inputs.DMN_FIELDS order)."""
    v = (rc.v_coherence, rc.v_utility, rc.v_uncertainty, rc.v_safety, rc.v_calibration)
    return float(sum(vi * float(di) for vi, di in zip(v, dmn, strict=True)))


class ActivityRegression:
    """Running ridge regression of S̄_a on [u_a, 1] per area (exponential window), for Ŝ
    and NoiseLeak = residual variance / variance of S̄."""

    def __init__(self, n_areas: int, alpha: float) -> None:
        d = N_NT + 1
        self.alpha = alpha
        self.suu = np.zeros((n_areas, d, d))
        self.suy = np.zeros((n_areas, d))
        self.sy = np.zeros(n_areas)
        self.syy = np.zeros(n_areas)
        self.n = np.zeros(1, dtype=np.int64)
        self.beta: F64Array = np.zeros((n_areas, d))
        self.noise_leak: F64Array = np.zeros(n_areas)

    def update(self, u: F64Array, y: F64Array) -> None:
        """Fold in regressors ``u`` (A, 7) (the signals the physics saw) and targets
        ``y`` (A,)."""
        a = self.alpha
        x = np.concatenate([u, np.ones((u.shape[0], 1))], axis=1)
        self.suu *= 1.0 - a
        self.suu += a * x[:, :, None] * x[:, None, :]
        self.suy *= 1.0 - a
        self.suy += a * x * y[:, None]
        self.sy *= 1.0 - a
        self.sy += a * y
        self.syy *= 1.0 - a
        self.syy += a * y * y
        self.n[0] += 1

    def refit(self) -> None:
        """β and NoiseLeak from the current statistics (a small batched solve)."""
        eye = RIDGE * np.eye(self.suu.shape[1])
        self.beta = np.asarray(
            np.linalg.solve(self.suu + eye, self.suy[:, :, None])[:, :, 0], dtype=np.float64
        )
        resid = (
            self.syy
            - 2.0 * (self.beta * self.suy).sum(axis=1)
            + np.einsum("ai,aij,aj->a", self.beta, self.suu, self.beta)
        )
        var = self.syy - self.sy * self.sy
        ok = var > 1e-12
        self.noise_leak = np.where(ok, np.clip(resid / np.where(ok, var, 1.0), 0.0, 1.0), 0.0)

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        return {
            "reg.suu": self.suu, "reg.suy": self.suy, "reg.sy": self.sy, "reg.syy": self.syy,
            "reg.n": self.n, "reg.beta": self.beta, "reg.noise_leak": self.noise_leak,
        }  # fmt: skip


#: Floor of the response's log-sensitivity G in the homeostatic step (x ≈ 2.7 at 0.1 x
#: the linear G): deeper in saturation the density would have to move without bound.
G_FLOOR = 0.1


class ActivityScaling:
    """Activity-dependent receptor scaling: what each area's drive passes through.

    Seed 000's networks regulate receptor density against *neuromodulator* signalling; they
    have no handle on the area's activity (issue 13: after a drive step-down activity never
    returned). This is the receptor population that does: each area's postsynaptic receptor
    density ρ_a sets how strongly its input drives it, and homeostasis moves ρ_a to hold
    the area's activity at a set point — synaptic scaling (Turrigiano et al. 1998, Nature
    391:892; Turrigiano 2008, Cell 135:422), written as the integral controller of O'Leary
    & Wyllie 2011 (J Physiol 589:2347) on ln ρ.

    Response (per area, field units): the drive amplitude the physics receives for input u
    (the published drive, times the environment's input where one is given)::

        A = A_max · tanh(ρ · u / A_max),    A_max = headroom · u_0

    linear (A ≈ ρu) for small inputs and saturating at A_max: receptor binding and the
    downstream response saturate. Norepinephrine multiplies the slope: ρ → G_NE·ρ with
    G_NE = e^{k (x_NE − rest_NE)} from the area's effective NE level (1 at rest), the
    catecholamine gain of Servan-Schreiber, Printz & Cohen 1990 (Science 249:892) that
    Aston-Jones & Cohen 2005 (Annu Rev Neurosci 28:403) build adaptive gain on: at low
    arousal the response to every input is weak and graded (the taught input barely
    stands out), at high arousal every input — relevant or not — drives its area towards
    saturation, so the taught input no longer stands out either.
    ρ_0 = (A_max/u_0)·artanh(u_0/A_max) is the calibrated density at which the awake
    drive u_0 passes unchanged (A(u_0) = u_0), so with the density at its calibration the
    published drive equals the unscaled one. ``density`` reports ρ/ρ_0.

    Homeostasis (awake only; paused while napping, when low drive is the point)::

        d ln ρ / dt = clip(ln(a* / a), -1, 1) / (τ · G),   G = ∂ln a / ∂ln ρ = 4x / sinh 2x

    with a the area's activity (telemetry ``area_activity``, mean |Ψ|² ≈ A²), x = ρu/A_max
    the operating point of the response (G = 2 in the linear range, smaller in saturation,
    floored at ``G_FLOOR``) and a* the set point: the mean awake activity over the first
    ``setpoint_s`` (a fixed target, as a neuron's target rate is). Dividing by the
    response's own log-sensitivity makes ln a relax towards ln a* at the one rate 1/τ
    wherever the response operates (a plain integrator slows down by 1/G in saturation:
    tried, the return after a deprivation took > 10 minutes). Because |Ψ|² can never
    exceed A_max², the activity after any deprivation and return stays below
    headroom² · a* (the overshoot bound, up to the field's own transient at the area's
    borders), and a deprived area recovers as far as A_max allows. ``learning`` False
    freezes ρ (the flip test: no recovery).

    Writer: :class:`.model.AreaNeurochemistry` (one thread); arrays are float64 (A,).
    """

    def __init__(self, cfg: ScalingConfig, n_areas: int, awake_drive: float, dt: float) -> None:
        self.cfg = cfg
        self.dt = dt
        self.a_max = cfg.headroom * max(awake_drive, 1e-12)
        x = min(awake_drive / self.a_max, 1.0 - 1e-12)
        self.rho0 = cfg.headroom * math.atanh(x)
        self.log_density = np.zeros(n_areas)
        """ln(ρ/ρ_0) per area."""
        self.set_point = np.zeros(n_areas)
        self.seen_s = np.zeros(1)
        """Awake seconds observed (the set point is averaged over the first setpoint_s)."""
        self._rho = np.full(n_areas, self.rho0)
        self._x = np.full(n_areas, self.rho0 * awake_drive / self.a_max)
        """The response's operating point x = ρu/A_max of the last :meth:`respond`."""
        self._lo = math.log(cfg.density_min)
        self._hi = math.log(cfg.density_max)

    @property
    def density(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """ρ/ρ_0 per area (1 at calibration)."""
        out: np.ndarray[Any, np.dtype[np.float64]] = np.exp(self.log_density)
        return out

    def respond(
        self,
        u: np.ndarray[Any, Any],
        out: np.ndarray[Any, Any],
        gain: np.ndarray[Any, Any] | None = None,
    ) -> None:
        """The drive amplitude for input ``u`` (A,), written into ``out`` (A,); ``gain``
        (A,): the arousal gain G_NE multiplying ρ (None: 1)."""
        if not self.cfg.enabled:
            out[...] = u
            return
        np.multiply(np.exp(self.log_density), self.rho0 / self.a_max, out=self._rho)
        if gain is not None:
            self._rho *= gain
        np.multiply(self._rho, np.asarray(u, dtype=np.float64), out=self._x)
        out[...] = self.a_max * np.tanh(self._x)

    def observe(self, activity: np.ndarray[Any, Any], learning: bool) -> None:
        """One awake cycle's per-area activity: the set point while it is being
        measured, then (``learning``) one homeostatic step of ln ρ."""
        if not self.cfg.enabled:
            return
        act = np.asarray(activity, dtype=np.float64)
        if act.shape != self.set_point.shape or not np.all(np.isfinite(act)):
            return  # a SCRAMmed or foreign record
        if self.seen_s[0] < self.cfg.setpoint_s:
            n = self.seen_s[0] / self.dt
            self.set_point += (act - self.set_point) / (n + 1.0)
            self.seen_s[0] += self.dt
            return
        if not learning:
            return
        ok = (act > 0.0) & (self.set_point > 0.0)
        err = np.log(np.where(ok, self.set_point, 1.0) / np.where(ok, act, 1.0))
        np.clip(err, -1.0, 1.0, out=err)
        x = np.clip(np.abs(self._x), 1e-6, 20.0)
        gain = np.maximum(4.0 * x / np.sinh(2.0 * x), G_FLOOR)
        self.log_density += err * (self.dt / self.cfg.tau_s) / gain
        np.clip(self.log_density, self._lo, self._hi, out=self.log_density)

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        return {
            "scaling.log_density": self.log_density,
            "scaling.set_point": self.set_point,
            "scaling.seen_s": self.seen_s,
            "scaling.x": self._x,
        }
