"""Sleep consolidation of the area model (seed 002 §5 "Periodic (sleep)").

:class:`NapConsolidation` keeps what consolidation reads and runs it:

* awake, the running statistics of each cycle (:meth:`~NapConsolidation.observe_awake`):
  the mean modulators s̄ (E, 7), each area's mean level and the fractions of time above
  and below its band (A, 7), exponential means over ``stats_tau_s``;
* napping, every ``every_cycles`` one dream batch (:meth:`~NapConsolidation.dream_batch`):
  remembered global states from the ENGS's dream-weave buffer, with counterfactual noise
  at the dream temperature (seed 003 §8.1), through the steady state of the current graph,
  accumulated into :class:`~.homeostasis.DreamStats`;
* on the cycle a nap ends, :meth:`~NapConsolidation.consolidate`: prune, refit, re-centre
  (:func:`~.homeostasis.consolidate`), then the dream statistics start afresh.

The nap itself (when it starts and ends) is the ENGS's
(:class:`engs.services.orchestrator.nap.NapController`); this module only sees whether a
cycle naps.

Determinism: the dream noise is drawn from the generator passed in (the ENGS's own,
checkpointed). Writer: :class:`~engs.services.orchestrator.areas.model.AreaNeurochemistry`
(the control cycle's thread); the kinetics, modulators, networks, context and bands are
the model's, shared by reference (consolidation writes the gains, mask and bands in place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.counters import AreaCounters
from engs.services.orchestrator.areas.homeostasis import (
    ConsolidationResult,
    DreamStats,
    Modulators,
    consolidate,
)
from engs.services.orchestrator.areas.receptors import RELEASE, Nets
from engs.services.orchestrator.areas.transfer import Kinetics, steady_state
from engs.services.orchestrator.dream import DreamBatch
from engs.shared.config import AreasConfig
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]


class NapConsolidation:
    """Awake statistics, dream batches and consolidation (module docstring).

    ``bands``: the areas' (lo, hi, rest centre), (A, 7) each; ``drivers``: the nuclei's
    drivers (B, K, 7) for a batch of global signals (B, 8) (the model's)."""

    def __init__(
        self,
        ac: AreasConfig,
        dt: float,
        kin: Kinetics,
        mods: Modulators,
        nets: Nets,
        ctx: F64Array,
        bands: tuple[F64Array, F64Array, F64Array],
        drivers: Callable[[F64Array], F64Array],
        counters: AreaCounters,
    ) -> None:
        self.hc, self.cc = ac.homeostasis, ac.consolidation
        self.kin, self.mods, self.nets, self.ctx = kin, mods, nets, ctx
        self.lo, self.hi, self.rest_centre = bands
        self.drivers = drivers
        self.counters = counters
        na, e = kin.n_sites - kin.n_nuclei, kin.n_edges
        self.stats_alpha = float(1.0 - np.exp(-dt / self.cc.stats_tau_s))
        self.s_mean = np.zeros((e, N_NT))
        self.level_mean = np.zeros((na, N_NT))
        self.frac_above = np.zeros((na, N_NT))
        self.frac_below = np.zeros((na, N_NT))
        self.dream = DreamStats.zeros(na, e)

    def observe_awake(self, s: F64Array, post: F64Array) -> None:
        """Fold one awake cycle's modulators ``s`` (E, 7) and area levels ``post``
        (A, 7) into the running statistics."""
        a = self.stats_alpha
        self.s_mean += a * (s - self.s_mean)
        self.level_mean += a * (post - self.level_mean)
        self.frac_above += a * ((post > self.hi) - self.frac_above)
        self.frac_below += a * ((post < self.lo) - self.frac_below)

    def step(
        self,
        napping: bool,
        dream: Callable[[int], DreamBatch] | None,
        rng: np.random.Generator,
        cortisol: float,
        boredom: float,
    ) -> ConsolidationResult | None:
        """Dream batches while napping; consolidation on the cycle the nap ends (its
        result, else None)."""
        c = self.counters
        was = c.napping
        c.napping = napping
        cc = self.cc
        if napping:
            c.nap_cycles += 1
            if cc.enabled and dream is not None and c.nap_cycles % cc.every_cycles == 0:
                self.dream_batch(dream(cc.batch), rng, cortisol, boredom)
            return None
        if was:
            c.nap_cycles = 0
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
        drv = self.drivers(sig)
        ctx = np.broadcast_to(self.ctx, (b, *self.ctx.shape)).copy()
        g0 = 3 * N_NT
        ctx[:, :, g0 : g0 + 3] = dsn[:, None, :]
        ctx[:, :, g0 + 3] = lv[:, 3:4]
        ctx[:, :, g0 + 4 : g0 + 9] = batch.dmn[:, None, :]
        rhat = nets.outputs(RELEASE, ctx)
        rhat_src = rhat.reshape(b, -1)[:, kin.idx_src].reshape(b, kin.n_edges, N_NT)
        ss = steady_state(kin, self.mods.g * self.s_mean * rhat_src, drv)
        self.dream.add(kin, ss.mu, ss.sent, ss.influx, 0.5 * (self.lo + self.hi))

    def consolidate(self) -> ConsolidationResult:
        """Apply the nap's consolidation now (prune, refit, re-centre: the bands move in
        place) and start the dream statistics afresh."""
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
        return res
