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

The parts, one module each: :mod:`.calibration` (the resting state, solved once at
construction), :mod:`.learner` (both modules' parameters and their awake step),
:mod:`.nap` (awake statistics, dream batches and consolidation) and :mod:`.counters`
(the counters they keep, by name). This module composes them and owns the cycle, the
shared buffers (levels, flows, context) and the checkpoint.

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
from engs.services.orchestrator.areas.calibration import calibrate, rest_bands
from engs.services.orchestrator.areas.counters import AreaCounters
from engs.services.orchestrator.areas.homeostasis import (
    ConsolidationResult,
    HmInputs,
    band_error,
    hm_objective,
)
from engs.services.orchestrator.areas.learner import Learner
from engs.services.orchestrator.areas.nap import NapConsolidation
from engs.services.orchestrator.areas.projections import Graph, build_graph
from engs.services.orchestrator.areas.receptors import (
    DENSITY,
    RELEASE,
    SENSITIVITY,
    ActivityRegression,
    ActivityScaling,
    LocalInputs,
    LocalObjective,
    annealed_beta,
    build_context,
    cognitive_efficiency,
    context_size,
    local_objective,
    node_bucket,
)
from engs.services.orchestrator.areas.transfer import Flows, forward, make_kinetics
from engs.services.orchestrator.dream import DreamBatch
from engs.shared.config import OrchestratorConfig
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]

AREAS_FORMAT = "engs-areas"
AREAS_VERSION = 2  # 2: activity scaling (issue 13)
#: The activity regression is refitted every this many observations (its statistics
#: are updated every cycle; a refit is a small batched solve).
REFIT_EVERY = 10


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
        self.ctx = np.zeros((k, self.n_ctx))
        self.flows = Flows(k, e)
        self.counters = AreaCounters()
        self.learner = Learner(ac, self.dt, g, kin, self.flows, self.ctx, self.counters)
        lr = self.learner  # its arrays, by the names the tools and tests reach them by
        self.params, self.mods, self.nets = lr.params, lr.mods, lr.nets
        self._effects = fx.Effects(oc, na)
        self._effects_stale = True
        self.drv_matrix = fx.driver_matrix(oc)
        self.rest = fx.rest_levels(oc)
        self.rest_sig = fx.rest_signals(oc)
        self.driver = self.rest.copy()

        # Per-area resting levels and target bands (area blocks, (A, 7)).
        bands = rest_bands(g, kin, self.rest, ac.band_half_width)
        self.rest_centre, self.lo, self.hi = bands.centre, bands.lo, bands.hi
        self._band_in = self._inner_band()

        # Levels and what the cycle remembers.
        self.mu = np.zeros((k, N_NT))
        self.mu_prev = np.zeros((k, N_NT))
        self.s_prev = np.zeros((e, N_NT))
        self.occupancy = np.full((na, N_NT), ac.rest_occupancy)
        self.signal = np.zeros((na, N_NT))
        self.x = np.zeros((na, N_NT))
        self.y_prev = np.ones(self.nets.y.shape)
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
        self.nap = NapConsolidation(
            ac,
            self.dt,
            kin,
            self.mods,
            self.nets,
            self.ctx,
            (self.lo, self.hi, self.rest_centre),
            self.drivers,
            self.counters,
        )
        self.audit = AuditLog(ac.audit, e, N_NT)
        self.metrics = AreaMetrics()
        self._bucket_node: str | None = None
        self._bucket = -1

        # Calibration: the resting state is the first state.
        rest = calibrate(kin, self.mods, self.rest, self.rest_centre, ac)
        self.sent_rest = rest.sent_rest
        self.mu[...] = rest.mu
        self.mu_prev[...] = self.mu
        for arr in (self.s_prev, self.learner.s_bar, self.nap.s_mean):
            np.copyto(arr, rest.s)
        self.nap.level_mean[...] = self.mu[self.n0 :]
        self.x[...] = np.clip(self.mu[self.n0 :], 0.0, 1.0)
        self.signal[...] = self.occupancy / self.nets.ymax[SENSITIVITY]

    # ------------------------------------------------------------------ the cycle

    def drivers(self, signals: F64Array) -> F64Array:
        """The nuclei's drivers for global signals (8,) or a batch (B, 8) (effects.py)."""
        return fx.drivers(self.drv_matrix, self.rest, signals, self.rest_sig)

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
            m = self.metrics
            gains_reduced = self.learner.learn(
                hm_learning=self.hm_learning,
                receptor_learning=self.receptor_learning,
                hm_inputs=self.hm_inputs,
                lobj=lobj,
                dmn=dmn_a,
                dmn_new=dmn_new,
                eff_cog=m.eff_cog,
                beta=m.beta,
                hi=self.hi,
            )
            self.counters.learn_cycles += 1
            self.nap.observe_awake(mods.s, fl.post[self.n0 :])
        if activity is not None:
            self._observe_activity(activity)
            if not napping:
                self.scaling.observe(activity, self.receptor_learning)
        consolidation = self.nap.step(napping, dream, rng, cortisol, boredom)
        if consolidation is not None:
            self._band_in = self._inner_band()
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
        m.beta = annealed_beta(self.rc, float(self.counters.learn_cycles) * self.dt)

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

    def losses(self) -> dict[str, float]:
        """The two modules' loss values on this cycle's flows (what the online steps
        descend; for telemetry and tests, not computed every cycle)."""
        hm = hm_objective(self.kin, self.flows, self.mods.s, self.hm_inputs(), self.hc)
        rec = self._receptor_objective(values=True)
        drift, _ = self.learner.receptor_drift()
        return {
            "hm": hm.value,
            "hm_band": hm.band,
            "receptor": rec.value + self.rc.drift * drift,
            "eff_local": rec.eff_local,
            "eff_cog": self.metrics.eff_cog,
        }

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

    # ------------------------------------------------------------------ naps

    def consolidate(self) -> ConsolidationResult:
        """Apply the nap's consolidation now (prune, refit, re-centre) and start afresh
        (:meth:`NapConsolidation.consolidate`)."""
        res = self.nap.consolidate()
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
        """Every evolving array by its snapshot name, by reference (in place on load),
        in the snapshot's order; ``counters`` is a copy in their checkpoint layout."""
        kin, nets, lr, nap, dr = self.kin, self.nets, self.learner, self.nap, self.nap.dream
        arrays: dict[str, np.ndarray[Any, Any]] = {
            "mu": self.mu, "mu_prev": self.mu_prev, "s_prev": self.s_prev,
            "occupancy": self.occupancy, "signal": self.signal, "x": self.x,
            "sent_rest": self.sent_rest, "lo": self.lo, "hi": self.hi,
            "kin.mask": kin.mask, "kin.share": kin.share, "kin.scale": kin.scale,
            "kin.synth": kin.synth, "kin.ceiling": kin.ceiling, "kin.cap_recv": kin.cap_recv,
            "kin.cap_edge": kin.cap_edge, "nets.w0": nets.w0, "nets.b0": nets.b0,
            "s_bar": lr.s_bar, "y_bar": lr.y_bar, "y_prev": self.y_prev,
            "baselines": lr.baselines, "counters": self.counters.to_array(), "ru": self.ru,
            "act_scale": self.act_scale, "act_seen": self.act_seen, "activity": self.activity,
            "sat_count": lr.sat_count, "s_mean": nap.s_mean, "level_mean": nap.level_mean,
            "frac_above": nap.frac_above, "frac_below": nap.frac_below,
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
        self.counters.load_array(arrays["counters"])
        self._band_in = self._inner_band()
        self._effects_stale = True
