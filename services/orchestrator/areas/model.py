"""The area neurochemistry the ENGS owns: one object, one :meth:`step` per control cycle.

:class:`AreaNeurochemistry` ties the concepts of this package together::

    ENGS globals ──drivers──▶ nuclei ──projections (seed 002 transfer)──▶ areas
                                          ▲ s: modulators (Homeostasis Module)
                                          ▲ r̂, ρ̂, ŝ: receptor networks (seed 000)
    areas ──x = ŝ·μ──▶ effects ──▶ per-area physics coefficients (:meth:`fill`)
    input ──receptor density ρ (activity scaling)──▶ area drive (:meth:`fill`) ──▶ activity ─┐
          ▲──────────────────────── homeostasis: ρ holds activity at its set point ◀────────┘

One :meth:`step`, in order: drivers from the global levels → context and the three
receptor networks → modulator features and s → transfer (levels μ⁺) → effective levels
and their effects → R_t and the other metrics → (awake) Homeostasis Module and receptor
learning (one descent step over all learned arrays), saturation safeguard, running
statistics → activity regression and (awake) activity scaling → (napping) dream batches,
consolidation when the nap ends → audit sample → remember this cycle.

Calibration (construction): the nuclei's store sizes and the base gains are solved so
that, at the ENGS's resting state, every area rests at its configured level (the NT's
rest x the innervation weights reaching it: the centre of its target band); receptor
capacity is then set so the resting influx binds ``rest_occupancy`` of it and each edge
cap to ``edge_cap_factor`` x its resting transfer. Base gains start at the innervation
weights (the seed's "≈ 1") up to the per-target correction.

Determinism: a pure function of its inputs and state; the only randomness is the
initial modulator weights (a PCG64 seeded by ``areas.seed``, used once) and the dream
noise (the ENGS's own checkpointed generator, passed in). Everything that evolves is in
:meth:`state_dict` (named arrays, bytes-exact); the audit log is a record, not state.

Thread: the control cycle's. Not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from engs.services.orchestrator.areas import effects as fx
from engs.services.orchestrator.areas.audit import AuditLog
from engs.services.orchestrator.areas.homeostasis import (
    N_FEATURES,
    ConsolidationResult,
    DreamStats,
    HmInputs,
    Modulators,
    band_error,
    consolidate,
    hm_gradients,
    hm_objective,
    reduce_feeding_gains,
    saturation_hits,
)
from engs.services.orchestrator.areas.optim import ParamSet
from engs.services.orchestrator.areas.projections import Graph, build_graph
from engs.services.orchestrator.areas.receptors import (
    DENSITY,
    N_NETS,
    RELEASE,
    SENSITIVITY,
    ActivityRegression,
    ActivityScaling,
    LocalInputs,
    LocalObjective,
    Nets,
    annealed_beta,
    build_context,
    cognitive_efficiency,
    context_size,
    local_objective,
    node_bucket,
)
from engs.services.orchestrator.areas.transfer import (
    Flows,
    backward,
    forward,
    make_kinetics,
    steady_state,
)
from engs.services.orchestrator.dream import DreamBatch
from engs.shared.config import OrchestratorConfig
from engs.shared.errors import ConfigError
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]

AREAS_FORMAT = "engs-areas"
AREAS_VERSION = 2  # 2: activity scaling (issue 13)
CALIBRATION_ITERATIONS = 200
CALIBRATION_TOL = 1e-9
#: Rest of the DMN metrics (inputs.DMN_FIELDS): no change, fully safe.
DMN_REST = np.array([0.0, 0.0, 0.0, 1.0, 0.0])
#: Per-report rate of the running baselines of ΔC and Eff_cog.
BASELINE_RATE = 0.1
#: The activity regression is refitted every this many observations (its statistics
#: are updated every cycle; a refit is a small batched solve).
REFIT_EVERY = 10
HM_PARAMS = ("mods.w", "mods.b", "mods.g")
NET_PARAMS = ("nets.w", "nets.b")


class ArrayBlob(msgspec.Struct, frozen=True, array_like=True):
    """One array, bytes-exact (base64 in JSON, raw in msgpack)."""

    dtype: str
    shape: list[int]
    data: bytes

    @classmethod
    def of(cls, a: np.ndarray[Any, Any]) -> ArrayBlob:
        return cls(a.dtype.str, list(a.shape), np.ascontiguousarray(a).tobytes())


class AreasSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the area model learned or integrates, for checkpoints and replay."""

    format: str = AREAS_FORMAT
    version: int = AREAS_VERSION
    graph_signature: int
    sites: list[str]
    arrays: dict[str, ArrayBlob]


class AreasStateError(ValueError):
    """An :class:`AreasSnapshot` that does not fit this model (other graph or version)."""


@dataclass(frozen=True)
class AreaStepReport:
    """What one step did that the ENGS reports as events."""

    gains_reduced: int = 0
    """Edge x NT base gains the saturation safeguard reduced this cycle."""
    consolidation: ConsolidationResult | None = None
    """Set on the cycle a nap ended and consolidation ran."""


@dataclass
class AreaMetrics:
    """The latest cycle's seed-002 reward and seed-000 efficiency signals (the loss
    values themselves are computed on demand: :meth:`AreaNeurochemistry.losses`)."""

    reward: float = 0.0
    """R_t = α1 ΔC - α2 band_penalty - α3 stability_penalty - α4 safety_events."""
    band_penalty: float = 0.0
    stability_penalty: float = 0.0
    safety_events: int = 0
    eff_cog: float = 0.0
    beta: float = 0.0
    """The annealed weight β_t of Eff_cog."""
    noise_leak: float = 0.0
    """Mean NoiseLeak over the areas (at the last refit)."""


class AreaNeurochemistry:
    """Nuclei, projections and receptors of the physics areas (module docstring)."""

    def __init__(
        self,
        oc: OrchestratorConfig,
        areas: tuple[str, ...] | list[str],
        *,
        graph: Graph | None = None,
    ) -> None:
        ac = oc.areas
        hc, rc, cc = ac.homeostasis, ac.receptors, ac.consolidation
        self.cfg = ac
        self.hc, self.rc, self.cc = hc, rc, cc
        self.hm_learning = hc.learning
        """Homeostasis Module on (settable: False freezes it)."""
        self.receptor_learning = rc.learning
        """Receptor networks learning (settable)."""
        self.dt = oc.dt
        self.graph = graph if graph is not None else build_graph(tuple(areas), ac)
        g = self.graph
        self.n_sites, self.n_edges, self.n_areas = g.n_sites, g.n_edges, g.n_areas
        self.n0 = g.n_nuclei
        k, e, na = self.n_sites, self.n_edges, self.n_areas
        self.kin = make_kinetics(
            g,
            self.dt,
            clearance_per_s=ac.clearance_per_s,
            turnover_per_s=ac.turnover_per_s,
            release_per_s=ac.release_per_s,
            max_rate_per_s=ac.max_rate_per_s,
            ceiling=ac.ceiling,
            bind_fraction=ac.bind_fraction,
            gamma=hc.gain_max * hc.s_max * rc.release_max,
        )
        kin = self.kin
        self.n_ctx = context_size(rc.node_buckets)
        self.params = ParamSet(
            [
                ("mods.w", (e, N_NT, N_FEATURES)),
                ("mods.b", (e, N_NT)),
                ("mods.g", (e, N_NT)),
                ("nets.w", (N_NETS, k, N_NT, self.n_ctx)),
                ("nets.b", (N_NETS, k, N_NT)),
            ]
        )
        ps = self.params
        wmax = hc.weight_max
        ps.configure("mods.w", hc.lr, -wmax, wmax)
        ps.configure("mods.b", hc.lr, -wmax, wmax)
        ps.configure("mods.g", hc.gain_lr, hc.gain_min, hc.gain_max)
        ps.configure("nets.w", rc.lr, -wmax, wmax)
        ps.configure("nets.b", rc.lr, -wmax, wmax)
        self._lr = ps.lr.copy()
        self._lr_for = (True, True)  # the learning flags ps.lr was set for
        init_rng = np.random.Generator(np.random.PCG64(ac.seed))
        self.mods = Modulators(
            kin, hc, init_rng, ps.view("mods.w"), ps.view("mods.b"), ps.view("mods.g")
        )
        self.mods.g[...] = g.weight * kin.mask
        self.nets = Nets(ps.view("nets.w"), ps.view("nets.b"), rc, kin)
        self._hm = slice(ps.slices["mods.w"].start, ps.slices["mods.g"].stop)
        self._net = slice(ps.slices["nets.w"].start, ps.slices["nets.b"].stop)
        act = self.nets.active
        self._theta0_net = np.concatenate([self.nets.w0.reshape(-1), self.nets.b0.reshape(-1)])
        self._active_net = np.concatenate(
            [np.broadcast_to(act[..., None], self.nets.w.shape).reshape(-1), act.reshape(-1)]
        ).astype(np.float64)
        self.ctx = np.zeros((k, self.n_ctx))
        self.flows = Flows(k, e)
        self._effects = fx.Effects(oc, na)
        self._effects_stale = True
        self.drv_matrix = fx.driver_matrix(oc)
        self.rest = fx.rest_levels(oc)
        self.rest_sig = fx.rest_signals(oc)
        self.driver = self.rest.copy()

        # Per-area resting levels and target bands (area blocks, (A, 7)).
        hw = ac.band_half_width
        inflow = np.zeros((k, N_NT))
        np.add.at(inflow, g.tgt, g.weight * kin.mask)
        ceil = kin.ceiling[self.n0 :]
        self.rest_centre = np.clip(self.rest * inflow[self.n0 :], hw, ceil - hw)
        self.lo = self.rest_centre - hw
        self.hi = self.rest_centre + hw
        self._band_in = self._inner_band()

        # Levels and what the cycle remembers.
        self.mu = np.zeros((k, N_NT))
        self.mu_prev = np.zeros((k, N_NT))
        self.s_prev = np.zeros((e, N_NT))
        self.occupancy = np.full((na, N_NT), ac.rest_occupancy)
        self.signal = np.zeros((na, N_NT))
        self.x = np.zeros((na, N_NT))
        self.sent_rest = np.ones((e, N_NT))

        # Learning state besides the parameter set.
        self.s_bar = np.zeros((e, N_NT))
        self.y_bar = np.ones(self.nets.y.shape)
        self.y_prev = np.ones(self.nets.y.shape)
        self.baselines = np.zeros(2)  # running ΔC and Eff_cog
        self.counters = np.zeros(4, dtype=np.int64)  # learn cycles, nap cycles, napping, cuts
        self.trace_decay = float(np.exp(-self.dt / hc.trace_tau_s))
        self.ntrace_decay = float(np.exp(-self.dt / rc.trace_tau_s))
        self.ru = np.zeros((na, N_NT))
        self.ru_alpha = float(1.0 - np.exp(-self.dt / rc.range_tau_s))
        self.regression = ActivityRegression(
            na, float(1.0 - np.exp(-self.dt / rc.regression_tau_s))
        )
        self.act_scale = np.zeros(na)
        self.act_seen = np.zeros(na, dtype=bool)
        self.act_alpha = float(1.0 - np.exp(-self.dt / rc.activity_tau_s))
        self.activity = np.zeros(na)
        self.scaling = ActivityScaling(ac.scaling, na, oc.nap.awake_drive, self.dt)
        """Each area's drive sensitivity and its activity homeostasis (receptors.py)."""
        self.input_gain = np.ones(na)
        self.input_extra = np.zeros(na)
        """The environment's input to each area: u = drive x HA gain x input_gain +
        input_extra (field units) is what the receptors transduce. The live service has no
        sensory input of its own (1 and 0: the published drive is the input); a client
        that models one (the validation harness) sets these before a cycle."""
        self._u = np.zeros(na)
        self.sat_count = np.zeros((na, N_NT), dtype=np.int64)
        # Awake statistics consolidation reads.
        self.stats_alpha = float(1.0 - np.exp(-self.dt / cc.stats_tau_s))
        self.s_mean = np.zeros((e, N_NT))
        self.level_mean = np.zeros((na, N_NT))
        self.frac_above = np.zeros((na, N_NT))
        self.frac_below = np.zeros((na, N_NT))
        self.dream = DreamStats.zeros(na, e)
        self.audit = AuditLog(ac.audit, e, N_NT)
        self.metrics = AreaMetrics()
        self._bucket_node: str | None = None
        self._bucket = -1
        self._calibrate()

    # ------------------------------------------------------------------ calibration

    def _calibrate(self) -> None:
        """Solve store sizes and base gains for the resting state (module docstring)."""
        kin, mods = self.kin, self.mods
        k, n0 = self.n_sites, self.n0
        drv = self.rest[None, :]
        zeros = np.zeros((k, N_NT))
        nuclei = kin.turnover > 0
        scale = np.ones((k, N_NT))
        target = np.zeros((k, N_NT))
        target[n0:] = self.rest_centre
        level = np.where(nuclei, self.rest, target)
        # Gains that calibration adjusts: edges from a store, or, where a target gets an
        # NT from no store, the area edges that bring it (raising the gain of an area
        # edge only drains its source).
        carried = kin.mask > 0
        from_store = nuclei.reshape(-1)[kin.idx_src].reshape(carried.shape) & carried
        fed = np.bincount(kin.idx_tgt, weights=from_store.reshape(-1), minlength=k * N_NT) > 0
        adjust = from_store | (carried & ~fed[kin.idx_tgt].reshape(carried.shape))
        ss = None
        worst = np.inf
        for _ in range(CALIBRATION_ITERATIONS):
            mods.features(kin, level, zeros, zeros, DMN_REST)
            mods.forward()
            ss = steady_state(kin, mods.g * mods.s, drv)
            mu = ss.mu[0]
            kappa = np.ones((k, N_NT))
            kappa[n0:] = target[n0:] / np.maximum(mu[n0:], 1e-300)
            worst = float(np.max(np.abs(kappa - 1.0)))
            level = np.where(nuclei, mu / scale, mu)
            if worst < CALIBRATION_TOL:
                break
            k_tgt = kappa.reshape(-1)[kin.idx_tgt].reshape(mods.g.shape)
            sent = ss.sent[0].reshape(-1)
            num = np.bincount(kin.idx_src, weights=sent * k_tgt.reshape(-1), minlength=k * N_NT)
            den = np.bincount(kin.idx_src, weights=sent, minlength=k * N_NT)
            k_src = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0).reshape(k, N_NT)
            k_src = np.where(nuclei, k_src, 1.0)  # an area source is no store to resize
            scale = np.where(nuclei, scale * k_src, 1.0)
            kin.set_pool_scale(scale)
            k_src_e = k_src.reshape(-1)[kin.idx_src].reshape(mods.g.shape)
            mods.g *= np.where(adjust, k_tgt / k_src_e, 1.0)
        else:
            raise ConfigError(
                "`$.orchestrator.areas`: calibration did not converge (the areas cannot be "
                f"brought to their resting levels; worst ratio error {worst:.3g})"
            )
        hc = self.hc
        g_min, g_max = float(mods.g[carried].min()), float(mods.g[carried].max())
        if g_max > hc.gain_max or g_min < hc.gain_min:
            raise ConfigError(
                f"`$.orchestrator.areas.homeostasis`: the calibrated base gains [{g_min:.3g}, "
                f"{g_max:.3g}] leave [gain_min, gain_max] = [{hc.gain_min}, {hc.gain_max}]"
            )
        assert ss is not None  # the loop ran at least once
        self.sent_rest[...] = np.where(carried, ss.sent[0], 1.0)
        kin.cap_recv[...] = np.where(kin.receives, ss.influx[0] / self.cfg.rest_occupancy, 0.0)
        kin.cap_edge[...] = np.where(carried, ss.sent[0] * self.cfg.edge_cap_factor, np.inf)
        self.mu[...] = ss.mu[0]
        self.mu_prev[...] = self.mu
        for arr in (self.s_prev, self.s_bar, self.s_mean):
            np.copyto(arr, mods.s)
        self.level_mean[...] = self.mu[n0:]
        self.x[...] = np.clip(self.mu[n0:], 0.0, 1.0)
        self.signal[...] = self.occupancy / self.nets.ymax[SENSITIVITY]

    # ------------------------------------------------------------------ the cycle

    def forward_cycle(
        self,
        *,
        levels: tuple[float, float, float, float],
        cortisol: float,
        boredom: float,
        napping: bool,
        dmn: tuple[float, ...],
        node: str | None,
    ) -> F64Array:
        """The forward half of a step, changing no state but this cycle's buffers
        (drivers, context, network outputs, s, flows, x, effects); returns the DMN
        metrics as an array. :meth:`step` continues from here."""
        kin, mods, nets, fl, n0 = self.kin, self.mods, self.nets, self.flows, self.n0
        dmn_a = np.asarray(dmn, dtype=np.float64)
        d, s, n, a = levels
        signals = np.array([d, s, n, a, cortisol, boredom, 1.0 if napping else 0.0, dmn_a[3]])
        self.driver = fx.drivers(self.drv_matrix, self.rest, signals, self.rest_sig)
        level = self.mu / kin.scale
        err = np.zeros((self.n_sites, N_NT))
        err[n0:] = band_error(self.mu[n0:], self.lo, self.hi)
        vol = np.zeros((self.n_sites, N_NT))
        vol[n0:] = np.abs(self.mu[n0:] - self.mu_prev[n0:])
        if node != self._bucket_node:
            self._bucket_node, self._bucket = node, node_bucket(node, self.rc.node_buckets)
        build_context(
            level, self.occupancy, err[n0:], np.array(levels), dmn_a, self._bucket, n0, self.ctx
        )
        nets.forward(self.ctx)
        y = nets.y
        mods.features(kin, level, err, vol, dmn_a)
        mods.forward()
        forward(kin, self.mu, mods.s, mods.g, y[RELEASE], y[DENSITY], self.driver, fl)
        np.multiply(y[SENSITIVITY, n0:], fl.post[n0:], out=self.x)
        np.maximum(self.x, 0.0, out=self.x)
        np.minimum(self.x, 1.0, out=self.x)
        self._effects_stale = True
        return dmn_a

    def hold_levels(self, levels: dict[int, float]) -> None:
        """Hold effective levels (columns of x, by NEUROMODULATORS index) at fixed values
        until the next cycle recomputes them; the effects (gates, norepinephrine's response
        gain) are then derived from the held levels. The virtual lesions' clamp
        (:class:`engs.services.validate.sim.Clamp`): a drug or lesion that holds a
        modulator holds it at every receptor, so everything derived from it follows."""
        for column, value in levels.items():
            self.x[:, column] = value
        self._effects_stale = True

    @property
    def effects(self) -> fx.Effects:
        """The per-area multipliers of the current effective levels (computed when first
        asked for after a cycle)."""
        if self._effects_stale:
            self._effects.update(self.x)
            self._effects_stale = False
        return self._effects

    def step(
        self,
        *,
        cycle: int,
        levels: tuple[float, float, float, float],
        cortisol: float,
        boredom: float,
        napping: bool,
        dmn: tuple[float, ...],
        dmn_new: bool,
        node: str | None,
        activity: np.ndarray[Any, Any] | None,
        dream: Callable[[int], DreamBatch] | None,
        rng: np.random.Generator,
    ) -> AreaStepReport:
        """Advance one cycle.

        ``levels``: the ENGS's D, S, N and ATP ratio after this cycle; ``dmn``: the
        latest DMN outcome metrics (inputs.DMN_FIELDS), ``dmn_new`` whether a report
        arrived this cycle, ``node`` its CFG node label; ``activity``: the physics'
        per-area activity (A,) from this cycle's telemetry, or None; ``dream``: draws
        dream-weave replay samples (None when there is nothing to replay); ``rng``: the
        ENGS's generator (dream noise).
        """
        dmn_a = self.forward_cycle(
            levels=levels,
            cortisol=cortisol,
            boredom=boredom,
            napping=napping,
            dmn=dmn,
            node=node,
        )
        kin, mods, fl = self.kin, self.mods, self.flows
        y = self.nets.y
        self._metrics(dmn_a)
        lobj = self._receptor_objective()

        gains_reduced = 0
        if not napping:
            gains_reduced = self._learn(lobj, dmn_a, dmn_new)
            self.counters[0] += 1
            self._awake_stats()
        if activity is not None:
            self._observe_activity(activity)
            if not napping:
                self.scaling.observe(activity, self.receptor_learning)
        consolidation = self._nap(napping, dream, rng, cortisol, boredom)
        tgt_after = fl.post.reshape(-1)[kin.idx_tgt].reshape(fl.sent.shape)
        self.audit.observe(cycle, kin.mask > 0, ~fl.edge_ok, mods.s, fl.sent, fl.mu_src, tgt_after)

        # remember this cycle
        np.copyto(self.mu_prev, self.mu)
        np.copyto(self.mu, fl.post)
        np.copyto(self.s_prev, mods.s)
        np.copyto(self.y_prev, y)
        np.copyto(self.occupancy, lobj.occupancy)
        np.copyto(self.signal, lobj.signal)
        np.copyto(self.ru, lobj.range_util)
        return AreaStepReport(gains_reduced, consolidation)

    def _metrics(self, dmn: F64Array) -> None:
        fl, hc, m, n0 = self.flows, self.hc, self.metrics, self.n0
        m.band_penalty = float(np.abs(band_error(fl.post[n0:], self.lo, self.hi)).sum())
        m.stability_penalty = float(np.abs(fl.post[n0:] - fl.mu[n0:]).sum())
        m.safety_events = int(fl.post.size - np.count_nonzero(fl.ok))
        m.reward = (
            hc.alpha_coherence * float(dmn[0]) - hc.alpha_band * m.band_penalty
            - hc.alpha_stability * m.stability_penalty - hc.alpha_safety * m.safety_events
        )  # fmt: skip
        m.eff_cog = cognitive_efficiency(self.rc, dmn)
        m.beta = annealed_beta(self.rc, float(self.counters[0]) * self.dt)

    def _inner_band(self) -> tuple[F64Array, F64Array]:
        """The band the losses pull towards (cached; bands move only in consolidation)."""
        margin = self.hc.band_margin * (self.hi - self.lo)
        return self.lo + margin, self.hi - margin

    def hm_inputs(self) -> HmInputs:
        """The held inputs of the Homeostasis Module's objective for this cycle: δ from
        this cycle's release fraction of each area (0 unless areas project)."""
        kin, fl, n0 = self.kin, self.flows, self.n0
        mu = fl.mu[n0:]
        q = fl.out[n0:] / np.where(mu > 0.0, mu, 1.0)
        delta = 1.0 - kin.retain[n0:] * (1.0 - q)
        lo, hi = self._band_in
        return HmInputs(
            n0=n0,
            lo=lo,
            hi=hi,
            delta=np.maximum(delta, 1e-12),
            s_prev=self.s_prev,
            sent_rest=self.sent_rest,
        )

    def local_inputs(self) -> LocalInputs:
        """The held inputs of the receptor objective for this cycle."""
        lo, hi = self._band_in
        return LocalInputs(
            n0=self.n0,
            emit=self.kin.emits,
            lo=lo,
            hi=hi,
            y_prev=self.y_prev,
            beta=self.regression.beta,
            noise_leak=self.regression.noise_leak,
            ru_prev=self.ru,
            ru_alpha=self.ru_alpha,
        )

    def _receptor_objective(self, values: bool = False) -> LocalObjective:
        return local_objective(
            self.kin,
            self.flows,
            self.nets.y,
            self.nets.ymax,
            self.local_inputs(),
            self.rc,
            values=values,
        )

    def hm_gradients(
        self, values: bool = True, out: tuple[F64Array, F64Array, F64Array] | None = None
    ) -> tuple[float, F64Array, F64Array, F64Array]:
        """The Homeostasis Module's loss this cycle (0 unless ``values``) and
        dL/d(w, b, g) (into ``out`` when given)."""
        obj = hm_objective(
            self.kin, self.flows, self.mods.s, self.hm_inputs(), self.hc, values=values
        )
        dw, db, dg = hm_gradients(self.kin, self.flows, self.mods, obj, out)
        return obj.value, dw, db, dg

    def receptor_drift(self, values: bool = True) -> tuple[float, F64Array]:
        """λ2's ‖θ - θ₀‖² over the networks' active parameters (0 unless ``values``) and
        its gradient on the flat (W, b) block of the parameter vector. (NumPy's own sums,
        never BLAS: a BLAS dot may sum in a thread-count-dependent order, and ``engs
        replay`` must reproduce the run bit for bit.)"""
        dev = self.params.theta[self._net] - self._theta0_net
        dev *= self._active_net
        value = float(np.square(dev).sum()) if values else 0.0
        dev *= 2.0
        return value, dev

    def losses(self) -> dict[str, float]:
        """The two modules' loss values on this cycle's flows (what the online steps
        descend; for telemetry and tests, not computed every cycle)."""
        hm = hm_objective(self.kin, self.flows, self.mods.s, self.hm_inputs(), self.hc)
        rec = self._receptor_objective(values=True)
        drift, _ = self.receptor_drift()
        return {
            "hm": hm.value,
            "hm_band": hm.band,
            "receptor": rec.value + self.rc.drift * drift,
            "eff_local": rec.eff_local,
            "eff_cog": self.metrics.eff_cog,
        }

    def receptor_gradients(
        self,
        obj: LocalObjective,
        values: bool = True,
        out: tuple[F64Array, F64Array] | None = None,
    ) -> tuple[float, F64Array, F64Array]:
        """The receptor networks' loss this cycle (local terms + λ2 drift; Eff_cog is
        credited separately; 0 unless ``values`` and ``obj`` has values) and dL/d(W, b)
        (into ``out`` when given)."""
        kin, fl, nets, rc = self.kin, self.flows, self.nets, self.rc
        _, _, g_rhat, g_rho = backward(
            kin,
            fl,
            self.mods.s,
            self.mods.g,
            d_post=obj.d_post,
            d_bound=obj.d_bound,
            d_spilled=obj.d_spilled,
            d_influx=obj.d_influx,
            d_cap=obj.d_cap,
        )
        d_y = obj.d_y
        d_y[DENSITY] += g_rho
        d_y[RELEASE] += g_rhat
        dw, dz = out if out is not None else (np.empty(nets.w.shape), np.empty(nets.b.shape))
        np.multiply(d_y, nets.dydz, out=dz)
        np.multiply(dz[..., None], self.ctx[None, :, None, :], out=dw)
        value, ddrift = self.receptor_drift(values=values)
        ddrift *= rc.drift
        nw = dw.size
        dw += ddrift[:nw].reshape(dw.shape)
        dz += ddrift[nw:].reshape(dz.shape)
        return obj.value + rc.drift * value, dw, dz

    def _learn(self, lobj: LocalObjective, dmn: F64Array, dmn_new: bool) -> int:
        """One awake learning step of both modules (one descent step over every learned
        array, rate 0 for a frozen module); returns the base gains the saturation
        safeguard reduced."""
        ps, kin, mods, nets, hc = self.params, self.kin, self.mods, self.nets, self.hc
        scratch = ps._scratch  # free until ps.step() uses it
        cut = 0
        if self.hm_learning:
            grads = (
                ps.view("mods.w", "grad"),
                ps.view("mods.b", "grad"),
                ps.view("mods.g", "grad"),
            )
            self.hm_gradients(values=False, out=grads)
            lam = self.trace_decay
            dev = (mods.s - self.s_bar) * mods.dsdz
            self.s_bar += (1.0 - lam) * (mods.s - self.s_bar)
            tw, tb = ps.view("mods.w", "trace"), ps.view("mods.b", "trace")
            tb *= lam
            tb += dev
            tw *= lam
            inc = scratch[ps.slices["mods.w"]].reshape(tw.shape)
            np.multiply(dev[..., None], mods.x, out=inc)
            tw += inc
            if dmn_new:  # three-factor credit of the coherence gain
                adv = hc.alpha_coherence * (float(dmn[0]) - self.baselines[0])
                ps.grad[self._hm] -= adv * ps.trace[self._hm]  # (g has no trace: 0)
                self.baselines[0] += BASELINE_RATE * (float(dmn[0]) - self.baselines[0])
        else:
            ps.grad[self._hm] = 0.0
        if self.receptor_learning:
            grads_n = (ps.view("nets.w", "grad"), ps.view("nets.b", "grad"))
            self.receptor_gradients(lobj, values=False, out=grads_n)
            lam = self.ntrace_decay
            dev = (nets.y - self.y_bar) * nets.dydz
            self.y_bar += (1.0 - lam) * (nets.y - self.y_bar)
            tw, tb = ps.view("nets.w", "trace"), ps.view("nets.b", "trace")
            tb *= lam
            tb += dev
            tw *= lam
            inc = scratch[ps.slices["nets.w"]].reshape(tw.shape)
            np.multiply(dev[..., None], self.ctx[None, :, None, :], out=inc)
            tw += inc
            if dmn_new:  # three-factor credit of Eff_cog, weighted by the annealed β
                eff = self.metrics.eff_cog
                adv = self.metrics.beta * (eff - self.baselines[1])
                ps.grad[self._net] -= adv * ps.trace[self._net]
                self.baselines[1] += BASELINE_RATE * (eff - self.baselines[1])
        else:
            ps.grad[self._net] = 0.0
        if self.hm_learning or self.receptor_learning:
            if (self.hm_learning, self.receptor_learning) != self._lr_for:
                np.copyto(ps.lr, self._lr)
                if not self.hm_learning:
                    ps.lr[self._hm] = 0.0
                if not self.receptor_learning:
                    ps.lr[self._net] = 0.0
                self._lr_for = (self.hm_learning, self.receptor_learning)
            ps.step()
        if self.hm_learning:
            hit = saturation_hits(self.flows.post[self.n0 :], self.hi, self.sat_count, hc)
            if hit.any():
                cut = reduce_feeding_gains(kin, mods.g, hit, self.n0, hc.saturation_reduce)
                self.counters[3] += cut
        return cut

    def _observe_activity(self, activity: np.ndarray[Any, Any]) -> None:
        """S̄ = act / (act + Ā) per area, and the NoiseLeak regression on the receptor
        signals the physics saw (last cycle's)."""
        act = np.asarray(activity, dtype=np.float64)
        if act.shape != (self.n_areas,) or not np.all(np.isfinite(act)) or np.any(act < 0.0):
            return  # a SCRAMmed or foreign record: keep the last statistics
        first = ~self.act_seen
        if first.any():
            self.act_scale[first] = act[first]
            self.act_seen[:] = True
        self.act_scale += self.act_alpha * (act - self.act_scale)
        total = act + self.act_scale
        self.activity[...] = np.where(total > 0.0, act / np.where(total > 0.0, total, 1.0), 0.0)
        reg = self.regression
        reg.update(self.signal, self.activity)
        if int(reg.n[0]) % REFIT_EVERY == 0:
            reg.refit()
            self.metrics.noise_leak = float(reg.noise_leak.mean())

    def _awake_stats(self) -> None:
        a, post = self.stats_alpha, self.flows.post[self.n0 :]
        self.s_mean += a * (self.mods.s - self.s_mean)
        self.level_mean += a * (post - self.level_mean)
        self.frac_above += a * ((post > self.hi) - self.frac_above)
        self.frac_below += a * ((post < self.lo) - self.frac_below)

    # ------------------------------------------------------------------ naps

    def _nap(
        self,
        napping: bool,
        dream: Callable[[int], DreamBatch] | None,
        rng: np.random.Generator,
        cortisol: float,
        boredom: float,
    ) -> ConsolidationResult | None:
        """Dream batches while napping; consolidation on the cycle the nap ends."""
        was = bool(self.counters[2])
        self.counters[2] = int(napping)
        cc = self.cc
        if napping:
            self.counters[1] += 1
            if cc.enabled and dream is not None and self.counters[1] % cc.every_cycles == 0:
                self.dream_batch(dream(cc.batch), rng, cortisol, boredom)
            return None
        if was:
            self.counters[1] = 0
            if cc.enabled:
                return self.consolidate()
        return None

    def dream_batch(
        self, batch: DreamBatch, rng: np.random.Generator, cortisol: float, boredom: float
    ) -> None:
        """Replay remembered global states (plus counterfactual noise at the dream
        temperature, seed 003 §8.1) through the steady state of the current graph and
        accumulate consolidation's regression statistics."""
        kin, nets = self.kin, self.nets
        b = len(batch.cycle)
        lv = np.array(batch.levels, dtype=np.float64)
        noise = rng.standard_normal((b, 3)) * (self.cc.dream_noise * batch.noise_temperature)
        dsn = np.clip(lv[:, :3] + noise, 0.0, 1.0)
        sig = np.column_stack(
            [dsn, lv[:, 3], np.full(b, cortisol), np.full(b, boredom), np.zeros(b),
             batch.dmn[:, 3]]
        )  # fmt: skip
        drv = fx.drivers(self.drv_matrix, self.rest, sig, self.rest_sig)
        ctx = np.broadcast_to(self.ctx, (b, *self.ctx.shape)).copy()
        g0 = 3 * N_NT
        ctx[:, :, g0 : g0 + 3] = dsn[:, None, :]
        ctx[:, :, g0 + 3] = lv[:, 3:4]
        ctx[:, :, g0 + 4 : g0 + 9] = batch.dmn[:, None, :]
        rhat = nets.outputs(RELEASE, ctx)
        rhat_src = rhat.reshape(b, -1)[:, kin.idx_src].reshape(b, self.n_edges, N_NT)
        ss = steady_state(kin, self.mods.g * self.s_mean * rhat_src, drv)
        self.dream.add(kin, ss.mu, ss.sent, ss.influx, 0.5 * (self.lo + self.hi))

    def consolidate(self) -> ConsolidationResult:
        """Apply the nap's consolidation now (prune, refit, re-centre) and start afresh."""
        res = consolidate(
            self.kin,
            self.mods,
            self.dream,
            self.s_mean,
            (self.lo, self.hi),
            self.rest_centre,
            self.level_mean,
            self.frac_above,
            self.frac_below,
            self.hc,
            self.cc,
        )
        self.dream.reset()
        self._band_in = self._inner_band()
        return res

    # ------------------------------------------------------------------ outputs

    def fill(
        self,
        out: np.ndarray[Any, Any],
        drive: float,
        noise: float,
        stimulus: np.ndarray[Any, Any],
    ) -> None:
        """Write the per-area rows (the first ``n_areas``) of a NeurochemicalState: the
        gates of the area-local levels and the other modulators' multipliers; rows
        beyond are left to the caller."""
        n, ef = self.n_areas, self.effects
        out["area_plasticity"][:n] = ef.plasticity
        out["area_elasticity"][:n] = ef.elasticity
        out["area_speed"][:n] = ef.speed
        out["area_damping"][:n] = ef.damping
        u = self._u
        np.multiply(ef.drive_gain, drive, out=u)
        u *= self.input_gain
        u += self.input_extra
        self.scaling.respond(u, out["area_drive"][:n], ef.response_gain)
        out["area_noise"][:n] = noise * ef.noise_gain
        out["area_stimulus"][:n] = stimulus * ef.stimulus_gain
        out["area_nt"][:n] = self.x

    # ------------------------------------------------------------------ checkpoints

    def _arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        kin, nets, dr = self.kin, self.nets, self.dream
        arrays: dict[str, np.ndarray[Any, Any]] = {
            "mu": self.mu, "mu_prev": self.mu_prev, "s_prev": self.s_prev,
            "occupancy": self.occupancy, "signal": self.signal, "x": self.x,
            "sent_rest": self.sent_rest, "lo": self.lo, "hi": self.hi,
            "kin.mask": kin.mask, "kin.share": kin.share, "kin.scale": kin.scale,
            "kin.synth": kin.synth, "kin.ceiling": kin.ceiling, "kin.cap_recv": kin.cap_recv,
            "kin.cap_edge": kin.cap_edge, "nets.w0": nets.w0, "nets.b0": nets.b0,
            "s_bar": self.s_bar, "y_bar": self.y_bar, "y_prev": self.y_prev,
            "baselines": self.baselines, "counters": self.counters, "ru": self.ru,
            "act_scale": self.act_scale, "act_seen": self.act_seen, "activity": self.activity,
            "sat_count": self.sat_count, "s_mean": self.s_mean, "level_mean": self.level_mean,
            "frac_above": self.frac_above, "frac_below": self.frac_below,
            "dream.mu_c": dr.mu_c, "dream.mu2": dr.mu2, "dream.share": dr.share,
            "dream.samples": dr.samples,
        }  # fmt: skip
        return arrays | self.params.arrays() | self.regression.arrays() | self.scaling.arrays()

    def state_dict(self) -> AreasSnapshot:
        """Every evolving array, bytes-exact."""
        return AreasSnapshot(
            graph_signature=self.graph.signature(),
            sites=list(self.graph.sites),
            arrays={k: ArrayBlob.of(v) for k, v in self._arrays().items()},
        )

    def load_state_dict(self, st: AreasSnapshot) -> None:
        """Restore a snapshot of a model with the same graph; raises AreasStateError
        (naming what differs) and leaves the model untouched if it does not fit."""
        if st.format != AREAS_FORMAT or st.version != AREAS_VERSION:
            raise AreasStateError(
                f"expected an {AREAS_FORMAT} v{AREAS_VERSION} area state, got "
                f"{st.format} v{st.version}"
            )
        if st.graph_signature != self.graph.signature() or st.sites != list(self.graph.sites):
            raise AreasStateError(
                "the area state was taken with another projection graph (sites "
                f"{st.sites}); this model has {list(self.graph.sites)}: the projections "
                "or the areas changed"
            )
        arrays = self._arrays()
        if set(st.arrays) != set(arrays):
            raise AreasStateError(
                f"area state arrays differ: missing {sorted(set(arrays) - set(st.arrays))}, "
                f"unexpected {sorted(set(st.arrays) - set(arrays))}"
            )
        decoded = {}
        for name, blob in st.arrays.items():
            dst = arrays[name]
            if blob.dtype != dst.dtype.str or tuple(blob.shape) != dst.shape:
                raise AreasStateError(
                    f"area state array {name!r}: expected {dst.dtype.str} {dst.shape}, "
                    f"got {blob.dtype} {tuple(blob.shape)}"
                )
            decoded[name] = np.frombuffer(blob.data, dtype=dst.dtype).reshape(dst.shape)
        for name, src in decoded.items():
            np.copyto(arrays[name], src)
        self._band_in = self._inner_band()
        self._effects_stale = True
