"""The area model's online learning: both modules' parameters and one awake step.

:class:`Learner` owns every learned array of the area model — the Homeostasis Module's
modulators (w, b) and base gains g (seed 002, :mod:`homeostasis`) and the receptor
networks' (W, b) (seed 000, :mod:`receptors`) — as views of one :class:`~.optim.ParamSet`,
and what learning keeps beside them: the running means the eligibility traces are taken
against (s̄, ȳ), the three-factor baselines of ΔC and Eff_cog, and the saturation
safeguard's per-level counts.

One awake step (:meth:`Learner.learn`): the gradients of both objectives on this cycle's
flows, the traces decayed and extended, a DMN report's three-factor credit (ΔC for the
modulators, β·Eff_cog for the networks) against their running baselines, one descent step
over the whole vector (rate 0 for a frozen module), then the saturation safeguard.

Determinism: the modulators' initial weights come from a PCG64 seeded by ``areas.seed``
(used once, here); nothing else is random. Sums over parameters use NumPy's own
reductions, never BLAS (``engs replay`` reproduces a run bit for bit).

Writer: :class:`~engs.services.orchestrator.areas.model.AreaNeurochemistry` (the control
cycle's thread); the kinetics, flows and context are the model's, shared by reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.counters import AreaCounters
from engs.services.orchestrator.areas.homeostasis import (
    N_FEATURES,
    HmInputs,
    Modulators,
    hm_gradients,
    hm_objective,
    reduce_feeding_gains,
    saturation_hits,
)
from engs.services.orchestrator.areas.optim import ParamSet
from engs.services.orchestrator.areas.projections import Graph
from engs.services.orchestrator.areas.receptors import (
    DENSITY,
    N_NETS,
    RELEASE,
    LocalObjective,
    Nets,
)
from engs.services.orchestrator.areas.transfer import Flows, Kinetics, backward
from engs.shared.config import AreasConfig
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]

#: Per-report rate of the running baselines of ΔC and Eff_cog.
BASELINE_RATE = 0.1


class Learner:
    """Both modules' parameters, traces and baselines, and their awake step (module
    docstring). ``kin``, ``flows`` and ``ctx`` (K, C) are the model's, read each cycle."""

    def __init__(
        self,
        ac: AreasConfig,
        dt: float,
        graph: Graph,
        kin: Kinetics,
        flows: Flows,
        ctx: F64Array,
        counters: AreaCounters,
    ) -> None:
        hc, rc = ac.homeostasis, ac.receptors
        self.hc, self.rc = hc, rc
        self.kin, self.flows, self.ctx = kin, flows, ctx
        self.counters = counters
        k, e, n_ctx = kin.n_sites, kin.n_edges, ctx.shape[1]
        self.params = ParamSet(
            [
                ("mods.w", (e, N_NT, N_FEATURES)),
                ("mods.b", (e, N_NT)),
                ("mods.g", (e, N_NT)),
                ("nets.w", (N_NETS, k, N_NT, n_ctx)),
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
        self.mods.g[...] = graph.weight * kin.mask
        self.nets = Nets(ps.view("nets.w"), ps.view("nets.b"), rc, kin)
        self.hm = slice(ps.slices["mods.w"].start, ps.slices["mods.g"].stop)
        """The Homeostasis Module's block of the parameter vector (w, b, g)."""
        self.net = slice(ps.slices["nets.w"].start, ps.slices["nets.b"].stop)
        """The receptor networks' block of the parameter vector (W, b)."""
        act = self.nets.active
        self._theta0_net = np.concatenate([self.nets.w0.reshape(-1), self.nets.b0.reshape(-1)])
        self._active_net = np.concatenate(
            [np.broadcast_to(act[..., None], self.nets.w.shape).reshape(-1), act.reshape(-1)]
        ).astype(np.float64)
        self.s_bar = np.zeros((e, N_NT))
        """(E, 7) running mean of s, the modulators' trace reference."""
        self.y_bar = np.ones(self.nets.y.shape)
        """(3, K, 7) running mean of the networks' outputs, their trace reference."""
        self.baselines = np.zeros(2)
        """Running means of ΔC and Eff_cog (three-factor credit)."""
        self.trace_decay = float(np.exp(-dt / hc.trace_tau_s))
        self.ntrace_decay = float(np.exp(-dt / rc.trace_tau_s))
        self.sat_count = np.zeros((kin.n_sites - kin.n_nuclei, N_NT), dtype=np.int64)
        """(A, 7) consecutive cycles each area level sat above its band + margin."""

    def hm_gradients(
        self,
        inputs: HmInputs,
        values: bool = True,
        out: tuple[F64Array, F64Array, F64Array] | None = None,
    ) -> tuple[float, F64Array, F64Array, F64Array]:
        """The Homeostasis Module's loss this cycle (0 unless ``values``) and
        dL/d(w, b, g) (into ``out`` when given), on the held ``inputs``."""
        obj = hm_objective(self.kin, self.flows, self.mods.s, inputs, self.hc, values=values)
        dw, db, dg = hm_gradients(self.kin, self.flows, self.mods, obj, out)
        return obj.value, dw, db, dg

    def receptor_drift(self, values: bool = True) -> tuple[float, F64Array]:
        """λ2's ‖θ - θ₀‖² over the networks' active parameters (0 unless ``values``) and
        its gradient on the flat (W, b) block of the parameter vector. (NumPy's own sums,
        never BLAS: a BLAS dot may sum in a thread-count-dependent order, and ``engs
        replay`` must reproduce the run bit for bit.)"""
        dev = self.params.theta[self.net] - self._theta0_net
        dev *= self._active_net
        value = float(np.square(dev).sum()) if values else 0.0
        dev *= 2.0
        return value, dev

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

    def learn(
        self,
        *,
        hm_learning: bool,
        receptor_learning: bool,
        hm_inputs: Callable[[], HmInputs],
        lobj: LocalObjective,
        dmn: F64Array,
        dmn_new: bool,
        eff_cog: float,
        beta: float,
        hi: F64Array,
    ) -> int:
        """One awake learning step of both modules (one descent step over every learned
        array, rate 0 for a frozen module); returns the base gains the saturation
        safeguard reduced.

        ``hm_inputs``: this cycle's held Homeostasis-Module inputs (asked for only when
        it learns); ``lobj``: this cycle's receptor objective; ``dmn``: the DMN metrics
        (inputs.DMN_FIELDS), ``dmn_new`` whether a report arrived this cycle;
        ``eff_cog``, ``beta``: this cycle's Eff_cog and its annealed weight; ``hi``: the
        areas' band tops (A, 7), for the saturation safeguard."""
        ps, kin, mods, nets, hc = self.params, self.kin, self.mods, self.nets, self.hc
        cut = 0
        if hm_learning:
            grads = (
                ps.view("mods.w", "grad"),
                ps.view("mods.b", "grad"),
                ps.view("mods.g", "grad"),
            )
            self.hm_gradients(hm_inputs(), values=False, out=grads)
            lam = self.trace_decay
            dev = (mods.s - self.s_bar) * mods.dsdz
            self.s_bar += (1.0 - lam) * (mods.s - self.s_bar)
            self._extend_traces("mods", lam, dev, mods.x)
            if dmn_new:  # three-factor credit of the coherence gain (g has no trace: 0)
                self._credit(0, self.hm, hc.alpha_coherence, float(dmn[0]))
        else:
            ps.grad[self.hm] = 0.0
        if receptor_learning:
            grads_n = (ps.view("nets.w", "grad"), ps.view("nets.b", "grad"))
            self.receptor_gradients(lobj, values=False, out=grads_n)
            lam = self.ntrace_decay
            dev = (nets.y - self.y_bar) * nets.dydz
            self.y_bar += (1.0 - lam) * (nets.y - self.y_bar)
            self._extend_traces("nets", lam, dev, self.ctx[None, :, None, :])
            if dmn_new:  # three-factor credit of Eff_cog, weighted by the annealed β
                self._credit(1, self.net, beta, eff_cog)
        else:
            ps.grad[self.net] = 0.0
        if hm_learning or receptor_learning:
            if (hm_learning, receptor_learning) != self._lr_for:
                np.copyto(ps.lr, self._lr)
                if not hm_learning:
                    ps.lr[self.hm] = 0.0
                if not receptor_learning:
                    ps.lr[self.net] = 0.0
                self._lr_for = (hm_learning, receptor_learning)
            ps.step()
        if hm_learning:
            n0 = kin.n_nuclei
            hit = saturation_hits(self.flows.post[n0:], hi, self.sat_count, hc)
            if hit.any():
                cut = reduce_feeding_gains(kin, mods.g, hit, n0, hc.saturation_reduce)
                self.counters.gains_cut += cut
        return cut

    def _extend_traces(self, group: str, lam: float, dev: F64Array, x: F64Array) -> None:
        """Decay the eligibility traces of ``group``'s weights and biases by ``lam`` and
        add this cycle's (y - ȳ) ∂y/∂θ: ``dev`` ((y - ȳ) ∂y/∂z, the biases' shape) to the
        biases', ``dev ⊗ x`` (``x`` the inputs, broadcast to the weights' shape) to the
        weights', formed in the parameter set's scratch (free until ``ps.step()``)."""
        ps = self.params
        tw, tb = ps.view(f"{group}.w", "trace"), ps.view(f"{group}.b", "trace")
        tb *= lam
        tb += dev
        tw *= lam
        inc = ps._scratch[ps.slices[f"{group}.w"]].reshape(tw.shape)
        np.multiply(dev[..., None], x, out=inc)
        tw += inc

    def _credit(self, baseline: int, part: slice, gain: float, reported: float) -> None:
        """Three-factor credit of a DMN report: the gradient of ``part`` of the vector
        less ``gain`` x (``reported`` - its running baseline) x its trace; the baseline
        (``baselines[baseline]``) then moves towards ``reported``."""
        ps = self.params
        adv = gain * (reported - self.baselines[baseline])
        ps.grad[part] -= adv * ps.trace[part]
        self.baselines[baseline] += BASELINE_RATE * (reported - self.baselines[baseline])
