"""The ENGS dynamics as a library: a deterministic, headless step function.

:class:`Engs` owns the global neurochemical state of seed 003 — x = [D, S, N, A]
(GAP-005) plus cortisol and boredom — and everything that evolves it. One call of
:meth:`Engs.step` is one control cycle of ``dt = 1 / orchestrator.cycle_hz`` ENGS
seconds; it takes that cycle's :class:`~engs.services.orchestrator.inputs.CycleInputs` and
the latest PhysicsTelemetry record and returns a
:class:`~engs.services.orchestrator.events.StepResult`. Nothing in it reads a clock, sleeps,
does I/O or takes a lock other than the ATP ledger's: the 100 Hz loop, a validation
suite or a replay tool drive it at any speed, and two runs with the same config,
calibration and inputs produce bit-identical float64 trajectories (on one host and
build; libm and BLAS may round differently elsewhere).

One step, in order (docs/orchestrator.md §1)::

    observe telemetry      ticks elapsed (subjective time), energy, entropy, n_nodes
    cost scale             host x thermal x n_nodes/reference → M's ATP row, UNSTABLE
    boredom relief         novelty resets the idle clock → relief (intrinsic reward)
    stimuli                one-shot per-area amplitudes; a stimulus into area c is cue c
    value / TD             V_E = E/(E+Ē); critic TD(λ) learns; δ = R + γV' - V (bounded);
                           phasic δ_DA = δ, negative errors x negative_gain
    average reward         R̄ (tonic dopamine); local intake ρ for boredom
    boredom                clock advances (awake); B = max(idle, opportunity cost) →
                           curiosity goal
    stress, cortisol       latest stress held and decaying; cortisol its integral
    coupled levels         x⁺ = x_eq + e^{M dt}(x - x_eq) + dt·F_nl(x) + dt·I_rate + impulses
                           I_rate: stress → N, λ_D·ΔD_eq(R̄) → D;
                           impulses: β·δ_DA → D; serotonin events; oracle requests
    metabolism             ATP: linear row - equilibrium costs (awake) | nap recharge;
                           expired locks refunded; queued denials → METABOLIC_WARNING
    nap                    enter < 15 % / leave ≥ 90 % after ≥ 30 s (+0.2 S on leaving)
    clamp                  D, S, N to [0, 1] (ATP is kept in [0, capacity] by the ledger)
    causes                 ATP_EXHAUSTED / PANIC / UNSTABLE with hysteresis; a rising
                           cause (own or another lane's) revokes all metabolic locks
    areas                  nuclei → projections → areas (seed 002), receptors (seed 000),
                           learning awake, dream batches napping, consolidation on waking
                           (:mod:`engs.services.orchestrator.areas`, docs/areas.md)
    replay                 record the experience (awake; stride or salient)
    outputs                gates, drive, noise, flags for fill_state

Threads: the step, ``fill_state`` and ``state_dict`` run on the loop's thread;
``try_reserve`` / ``commit`` / ``abort`` may be called from any thread (the ledger's
lock guards them), and their effect is seen by the next step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engs.services.orchestrator import checkpoint, publish, snapshot
from engs.services.orchestrator.areas.model import (
    AreaNeurochemistry,
)
from engs.services.orchestrator.boredom import Boredom
from engs.services.orchestrator.coupling import LinearStep, StabilityReport, analyse, restoring
from engs.services.orchestrator.critic import Features, LinearTdCritic, summary_size
from engs.services.orchestrator.dopamine import EnergyValue, per_cycle, phasic, td_error
from engs.services.orchestrator.dream import DreamBatch, DreamBuffer
from engs.services.orchestrator.events import (
    AreaConsolidated,
    AreaGainsReduced,
    CausesChanged,
    CuriosityGoal,
    Event,
    LockExpired,
    LocksRevoked,
    NapEnded,
    NapStarted,
    OracleApplied,
    StepResult,
)
from engs.services.orchestrator.gates import (
    dream_temperature,
    elasticity_gate,
    plasticity_gate,
    relevance_gate,
    speed_gain,
)
from engs.services.orchestrator.inputs import CycleInputs, DmnReport, dmn_metrics
from engs.services.orchestrator.ledger import AtpLedger, Lock
from engs.services.orchestrator.metabolism import Calibration, MetabolicCosts, Operation, calibrate
from engs.services.orchestrator.nap import NapController
from engs.services.orchestrator.priorities import CauseMonitor, OracleLedger
from engs.services.orchestrator.snapshot import EngsSnapshot, Levels, StateField, TelemetryMemory
from engs.shared.config import Config
from engs.shared.layout import Cause, Mode

#: A telemetry tick jump larger than this many nominal cycles' worth is clamped (the
#: orchestrator was paused or the record is garbage; boredom must not leap).
MAX_TICK_JUMP_CYCLES = 10


class Engs:
    """The ENGS dynamics; see the module docstring for one step's anatomy."""

    # The public names of the evolving state, which lives in ``levels`` and ``memory``
    # (their meanings: snapshot.Levels, snapshot.TelemetryMemory).
    dopamine = StateField[float]("levels")
    serotonin = StateField[float]("levels")
    norepinephrine = StateField[float]("levels")
    cortisol = StateField[float]("levels")
    stress = StateField[float]("levels")
    td_error = StateField[float]("levels")
    td_error_energy = StateField[float]("levels")
    td_error_critic = StateField[float]("levels")
    phasic_dopamine = StateField[float]("levels")
    reward_rate = StateField[float]("levels")
    temperature_c = StateField["float | None"]("memory")

    def __init__(self, config: Config, *, calibration: Calibration | None = None) -> None:
        """Build from a validated Config (the coupling matrix is already known stable).

        ``calibration``: the metabolic host calibration to use; when None, the start-up
        benchmark runs if ``orchestrator.metabolism.calibrate`` (not reproducible:
        pass :attr:`calibration` back for a replay), else the reference host is used.
        """
        oc = config.orchestrator
        self.config = config
        self._cfg = oc
        self.areas = tuple(config.physics.areas)
        self.n_areas = len(self.areas)
        self.dt = oc.dt
        self._tick_hz = config.physics.tick_hz
        self._max_ticks = math.ceil(MAX_TICK_JUMP_CYCLES * self._tick_hz * self.dt)
        mb = oc.metabolism
        if calibration is None:
            calibration = (
                calibrate(mb, use_gpu=config.physics.backend != "numpy")
                if mb.calibrate
                else Calibration.reference(mb.reference_score)
            )
        self.calibration = calibration
        self.costs = MetabolicCosts(mb, calibration)
        self.ledger = AtpLedger(mb.capacity_nmu, mb.capacity_nmu, mb.lock_ttl_s)
        self.linear = LinearStep(oc.coupling, mb.capacity_nmu, self.dt)
        self._gamma = per_cycle(oc.dopamine.gamma, self.dt)
        self.energy_value = EnergyValue(oc.dopamine.energy_tau_s, self.dt)
        self.features = Features(oc.critic, self.n_areas, self.dt)
        self.critic = LinearTdCritic(
            self.features.n, oc.critic, self._gamma, per_cycle(oc.critic.trace_lambda, self.dt)
        )
        self._phi = np.zeros(self.features.n)
        self._phi_next = np.zeros(self.features.n)
        self._phi.fill(0.0)  # φ(s) before the first cycle: no cue, no field
        self._cues: list[int] = []
        dp = oc.dopamine
        self._reward_rate_alpha = 1.0 - math.exp(-self.dt / dp.reward_rate_tau_s)
        self._rr_min_weight = 1.0 - math.exp(-dp.reward_rate_min_s / dp.reward_rate_tau_s)
        self._d_clearance = oc.coupling.lambda_d
        self.boredom = Boredom(oc.boredom, self.dt)
        self.nap = NapController(oc.nap)
        #: The replay buffer keeps a compact summary of φ (critic.Features.summarise).
        self._summary = np.zeros(summary_size(self.n_areas))
        self.replay = DreamBuffer(
            oc.replay.capacity, self._summary.size, self.n_areas, oc.replay.priority_floor
        )
        self.monitor = CauseMonitor(oc.priorities)
        self.oracle = OracleLedger()
        self.rng = np.random.Generator(np.random.PCG64(oc.seed))
        #: Per-area neurochemistry (seeds 002, 000); None when ``areas.enabled`` is false.
        self.area_chem: AreaNeurochemistry | None = (
            AreaNeurochemistry(oc, self.areas) if oc.areas.enabled else None
        )
        self._stress_decay = math.exp(-self.dt / oc.norepinephrine.stress_tau_s)
        self._cortisol_alpha = 1.0 - math.exp(-self.dt / oc.norepinephrine.cortisol_tau_s)

        c = oc.coupling
        self.cycle = 0
        #: The evolving levels and what the step remembers of telemetry: the snapshot's
        #: own Structs (snapshot.py), which state_dict copies whole.
        self.levels = Levels.at_rest(c.d_eq, c.s_eq, c.n_eq)
        self.memory = TelemetryMemory.empty(calibration.temperature_c)
        self._external = 0
        self._dmn_report: DmnReport | None = None
        #: Seed 000 outcome metrics of the latest DMN report (inputs.DMN_FIELDS order).
        self.dmn_metrics: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0)
        #: This cycle's one-shot stimulus amplitude per area (published once).
        self.stimulus = np.zeros(self.n_areas)
        self._tel: np.ndarray[Any, Any] | None = None  # this step's record, during the step
        self._tel_areas = 0
        self._stability: StabilityReport | None = None
        self._atp_linear = 1.0  # A after this cycle's linear step (set by _levels)
        self._update_outputs()

    # ------------------------------------------------------------------ the cycle

    def step(
        self, inputs: CycleInputs, telemetry: np.ndarray[Any, Any] | None = None
    ) -> StepResult:
        """Advance one cycle. ``telemetry``: the newest PhysicsTelemetry record (0-d array
        of ``telemetry_dtype``), or None when there is none (no physics yet)."""
        self.cycle += 1
        now = self.cycle * self.dt
        self.ledger.set_time(now)
        events: list[Event] = []
        subjective_s = self._observe(telemetry)
        scale = self._rescale(inputs.temperature_c)
        relief = self.boredom.novelty(inputs.novelty)  # paid as intrinsic reward (§6.3)
        cue = self._stimuli(inputs)
        reward = inputs.reward + self._cfg.boredom.relief_reward * relief
        phi = self._value(reward, inputs.reward != 0.0)
        self._average_reward(reward)
        self._boredom_advance(subjective_s, now, events)
        self._stress(inputs.stress)
        d, s, n = self._levels(inputs, now, events)
        self._metabolism(scale, now, events)
        s += self._nap(now, events)
        lv = self.levels
        lv.dopamine, lv.serotonin, lv.norepinephrine = _clamp01(d), _clamp01(s), _clamp01(n)
        active = self._causes(inputs.external_causes, now, events)
        if inputs.dmn is not None:
            self.dmn_metrics = dmn_metrics(self._dmn_report, inputs.dmn)
            self._dmn_report = inputs.dmn
        if self.area_chem is not None:
            self._areas(self.area_chem, inputs.dmn is not None, now, events)
        every = self._cfg.replay.every_cycles
        if not self.nap.napping and (
            self.cycle % every == 0 or reward != 0.0 or cue or inputs.novelty
        ):
            self._record(phi, reward)
        self._tel = None
        self._update_outputs()
        return StepResult(cycle=self.cycle, t_s=now, causes=int(active), events=tuple(events))

    def _areas(
        self, chem: AreaNeurochemistry, dmn_new: bool, now: float, events: list[Event]
    ) -> None:
        """Step the area neurochemistry on this cycle's levels; while napping it dreams
        from the replay buffer with the ENGS's generator (deterministic)."""
        activity, lv = None, self.levels
        if self._tel is not None and self._tel_areas == self.n_areas:
            activity = self._tel["area_activity"][: self.n_areas]
        report = chem.step(
            cycle=self.cycle,
            levels=(lv.dopamine, lv.serotonin, lv.norepinephrine, self.atp_ratio),
            cortisol=self.levels.cortisol,
            boredom=self.boredom.level,
            napping=self.nap.napping,
            dmn=self.dmn_metrics,
            dmn_new=dmn_new,
            node=None if self._dmn_report is None else self._dmn_report.node,
            activity=activity,
            dream=self.dream_batch if len(self.replay) else None,
            rng=self.rng,
        )
        if report.gains_reduced:
            events.append(AreaGainsReduced(t_s=now, edges=report.gains_reduced))
        if report.consolidation is not None:
            c = report.consolidation
            events.append(
                AreaConsolidated(
                    t_s=now,
                    samples=c.samples,
                    pruned=c.pruned,
                    refit=c.refit,
                    bands_moved=c.bands_moved,
                )
            )

    def _rescale(self, temperature_c: float | None) -> float:
        """The metabolic cost scale (host x thermal x lattice size). The coupling
        matrix's ATP drains are consumption, so they scale with it, and a change
        re-checks the matrix's stability (UNSTABLE, priorities.py)."""
        if temperature_c is not None:
            self.memory.temperature_c = temperature_c
        scale = self.costs.activity_scale(self.memory.n_nodes, self.memory.temperature_c)
        if scale != self.linear.cost_scale:
            self.linear.set_cost_scale(scale)
            self._stability = None
        return scale

    def _average_reward(self, reward: float) -> None:
        """R̄ ← R̄ + (1 - e^{-dt/τ_R})(R/dt - R̄): the exponential mean of the reward
        rate over every cycle, idle and travelling ones included (the MVT's environment
        average, Charnov 1976; tonic dopamine, Niv et al. 2007). R: this cycle's total
        reward, the critic's (extrinsic + relief). Until τ_R has passed since the start
        the mean is divided by the weight it has gathered, 1 - e^{-t/τ_R} (the bias
        correction of Kingma & Ba 2015), but by no less than the weight of
        ``reward_rate_min_s`` (5 s): R̄ is then the mean over the time elapsed, never over
        less than 5 s — not diluted by zeros from before the start, not a rate read off a
        single reward in the first cycle (which made the opportunity cost fire on the
        first reward of a session) — and a forager reaches the MVT's
        leaving times from its first patch on instead of after ~3 τ_R (measured: first
        patches 11.2, 8.5, 7.1 s → 3.6, 2.7, 2.9 s at T = 1 s, t* = 2.86 s)."""
        a = self._reward_rate_alpha
        lv = self.levels
        lv.reward_rate_mean += a * (reward / self.dt - lv.reward_rate_mean)
        lv.reward_rate_weight += a * (1.0 - lv.reward_rate_weight)
        lv.reward_rate = lv.reward_rate_mean / max(lv.reward_rate_weight, self._rr_min_weight)
        self.boredom.observe_intake(reward, lv.reward_rate)

    def _boredom_advance(self, subjective_s: float, now: float, events: list[Event]) -> None:
        """The boredom clock advances by this cycle's subjective time, except in naps; a
        curiosity goal is due when B (idle clock or opportunity cost) reaches θ."""
        if not self.nap.napping:
            if self._tel is not None:
                self.boredom.observe_entropy(
                    self.memory.entropy_bits, self.memory.entropy_err_bits, self.memory.n_nodes
                )
            if self.boredom.advance(subjective_s):
                events.append(self._curiosity_goal(now))

    def _stimuli(self, inputs: CycleInputs) -> bool:
        """This cycle's one-shot stimuli per area; returns whether there was a cue. A
        stimulus of positive amplitude into area c is an onset of the critic's cue
        channel c."""
        self.stimulus.fill(0.0)
        self._cues.clear()
        for st in inputs.stimuli:  # areas checked at the edge (inputs.AreaNames)
            self.stimulus[st.area] += st.amplitude
            if st.amplitude > 0.0 and st.area not in self._cues:
                self._cues.append(st.area)
        return bool(self._cues)

    def _value(self, reward: float, outcome: bool) -> np.ndarray[Any, Any]:
        """Both values and their TD errors (§3.1); the config picks which drives D
        (ARCHITECTURE §6.10). The critic learns on s → s'; an extrinsic reward
        (``outcome``) ends the running cues' episodes (critic.py). Returns φ(s)."""
        mem = self.memory
        v_next = self.energy_value.update(mem.energy)
        h_frac = mem.entropy_bits / max(1.0, math.log2(max(mem.n_nodes, 2)))
        h_frac = min(1.0, max(0.0, h_frac))
        self.features.build(self._phi_next, v_next, h_frac, self._cues, outcome)
        cells = self.features.cells
        lv = self.levels
        lv.td_error_critic = self.critic.update(
            self._phi, reward, self._phi_next, cells.ended if cells.any_ended else None
        )
        bound = self.critic.delta_bound
        raw = td_error(reward, v_next, lv.energy_value_prev, self._gamma)
        lv.td_error_energy = max(-bound, min(bound, raw))
        lv.energy_value_prev = v_next
        phi = self._phi
        self._phi, self._phi_next = self._phi_next, self._phi
        critic = self._cfg.dopamine.value_model == "critic"
        lv.td_error = lv.td_error_critic if critic else lv.td_error_energy
        lv.phasic_dopamine = phasic(lv.td_error, self._cfg.dopamine.negative_gain)
        return phi

    def _stress(self, report: float | None) -> None:
        """Stress is a level: the latest report holds and decays; cortisol integrates it."""
        lv = self.levels
        lv.stress = report if report is not None else lv.stress * self._stress_decay
        lv.cortisol += self._cortisol_alpha * (lv.stress - lv.cortisol)

    def _levels(
        self, inputs: CycleInputs, now: float, events: list[Event]
    ) -> tuple[float, float, float]:
        """D, S, N after one cycle (GAP-005 in deviation form): the exact linear step,
        F_nl, the stress drive and the tonic reward-rate drive as Euler terms, then this
        cycle's impulses (β·phasic dopamine, serotonin events, oracle requests). Not yet
        clamped.

        The tonic drive λ_D·ΔD_eq with ΔD_eq = tonic_gain·tanh(R̄/scale) moves D's
        resting level with the average reward rate (Niv et al. 2007): the equilibrium
        of the D row shifts by ΔD_eq (exactly, with the cross-couplings at rest). The
        phasic impulses β·δ_DA ride on top and decay at λ_D (seed §3.2)."""
        oc = self._cfg
        c = oc.coupling
        a = self.ledger.available_nmu / self.ledger.capacity_nmu
        lv = self.levels
        d, s, n = lv.dopamine, lv.serotonin, lv.norepinephrine
        ld, ls, ln, self._atp_linear = self.linear.advance(d, s, n, a)
        rho, dt = c.restoring_gain, self.dt
        dp = oc.dopamine
        tonic = dp.tonic_gain * math.tanh(lv.reward_rate / dp.reward_rate_scale)
        d_new = (
            ld
            + dt * (restoring(d, c.d_eq, rho) + self._d_clearance * tonic)
            + dp.beta * lv.phasic_dopamine
        )
        s_new = (
            ls
            + dt * restoring(s, c.s_eq, rho)
            + oc.serotonin.goal_boost * inputs.goal_complete
            - oc.serotonin.security_drop * inputs.security_alert
        )
        n_new = ln + dt * (restoring(n, c.n_eq, rho) + oc.norepinephrine.stress_gain * lv.stress)
        for req in inputs.oracle:
            if self.oracle.accept(req.kind, req.id):
                if req.kind == "anhedonia":
                    d_new += oc.dopamine.emergency_impulse
                else:
                    s_new += oc.serotonin.mania_boost
                events.append(OracleApplied(t_s=now, kind=req.kind, request_id=req.id))
        return d_new, s_new, n_new

    def _metabolism(self, scale: float, now: float, events: list[Event]) -> None:
        """ATP: awake, the coupling matrix's ATP row (resynthesis and the D/N-dependent
        drains) minus the equilibrium consumption; napping, the net recharge rate.
        Then expired locks are refunded and queued denials become events."""
        cap = self.ledger.capacity_nmu
        if self.nap.napping:
            self.ledger.apply(self._cfg.nap.recharge_per_s * cap * self.dt)
        else:
            a = self.ledger.available_nmu / cap
            consumption = self.costs.equilibrium_nmu_s(scale) * self.dt
            self.ledger.apply((self._atp_linear - a) * cap - consumption)
        for lk in self.ledger.expire():
            events.append(LockExpired(t_s=now, lock=lk.id, task=lk.task, refund_nmu=lk.cost_nmu))
        events.extend(self.ledger.drain_warnings())

    def _nap(self, now: float, events: list[Event]) -> float:
        """Nap transitions on this cycle's ATP; returns the serotonin to add (+0.2 on
        waking, seed §4.3)."""
        a = self.atp_ratio
        transition = self.nap.update(a, now)
        if transition == "start":
            self.ledger.set_napping(True)
            events.append(NapStarted(t_s=now, atp_ratio=a))
        elif transition == "end":
            self.ledger.set_napping(False)
            events.append(NapEnded(t_s=now, atp_ratio=a, duration_s=now - self.nap.started_s))
            return self._cfg.serotonin.nap_boost
        return 0.0

    def _causes(self, external: int, now: float, events: list[Event]) -> Cause:
        """The CRITICAL causes with hysteresis. A rising cause — ours, or one another
        lane raised (SCRAM, staleness, operator) — revokes every open lock (refunded,
        ledger.py)."""
        prev = self.monitor.active
        active = self.monitor.update(self.atp_ratio, self.levels.norepinephrine, self.linear.stable)
        raised, cleared = active & ~prev, prev & ~active
        ext_new = external & ~self._external
        self._external = external
        if raised or ext_new:
            count, refund = self.ledger.revoke_all()
            if count:
                why = int(raised) | ext_new
                events.append(LocksRevoked(t_s=now, count=count, refund_nmu=refund, causes=why))
        if raised or cleared:
            events.append(
                CausesChanged(t_s=now, active=int(active), raised=int(raised), cleared=int(cleared))
            )
        return active

    def _observe(self, tel: np.ndarray[Any, Any] | None) -> float:
        """Take what the step needs from a telemetry record; returns the subjective
        seconds (physics ticks / tick_hz) elapsed since the previous record."""
        self._tel = tel
        if tel is None:
            return 0.0
        tick = int(tel["tick"])
        mem = self.memory
        last, mem.last_tick = mem.last_tick, tick
        if last is None:
            ticks = 0  # no reference yet
        elif tick >= last:
            ticks = tick - last
        else:
            ticks = tick  # the physics restarted and counts from 0 again
        energy = float(tel["energy"])
        if math.isfinite(energy) and energy >= 0.0:  # a SCRAMmed field holds the last value
            mem.energy = energy
        entropy = float(tel["entropy_bits"])
        if math.isfinite(entropy) and entropy >= 0.0:
            mem.entropy_bits = entropy
            err = float(tel["entropy_err_bits"])
            mem.entropy_err_bits = err if math.isfinite(err) and err >= 0.0 else 0.0
        mem.n_nodes = int(tel["n_nodes"])
        self._tel_areas = min(self.n_areas, int(tel["n_areas"]))
        return min(ticks, self._max_ticks) / self._tick_hz

    def _curiosity_goal(self, now: float) -> CuriosityGoal:
        """The frontier: the area with the largest metric-gradient magnitude (§6.3)."""
        area, grad = 0, 0.0
        if self._tel is not None and self._tel_areas > 0:
            grads = self._tel["area_metric_grad"][: self._tel_areas]
            area = int(np.argmax(grads))  # first on ties: deterministic
            grad = float(grads[area])
        return CuriosityGoal(
            t_s=now,
            area=area,
            area_name=self.areas[area],
            boredom=self.boredom.level,
            metric_grad=grad,
        )

    def _record(self, phi: np.ndarray[Any, Any], reward: float) -> None:
        """Keep this experience for dream-weave replay (replay.py), with φ(s) as its
        compact summary."""
        activity, lv = None, self.levels
        if self._tel is not None and self._tel_areas == self.n_areas:
            activity = self._tel["area_activity"][: self.n_areas]
        self.features.summarise(phi, self._summary)
        self.replay.add(
            self.cycle,
            self._summary,
            reward,
            self.levels.td_error,
            (lv.dopamine, lv.serotonin, lv.norepinephrine, self.atp_ratio),
            activity,
            self.dmn_metrics,
        )

    def _update_outputs(self) -> None:
        oc = self._cfg
        c = oc.coupling
        ne = oc.norepinephrine
        lv = self.levels
        self.plasticity_gate = plasticity_gate(lv.dopamine, c.d_eq, oc.dopamine.gate_gain)
        self.elasticity_gate = elasticity_gate(lv.serotonin, c.s_eq, oc.serotonin.gate_gain)
        self.speed_gain = speed_gain(lv.norepinephrine)
        self.relevance_gate = relevance_gate(
            self.levels.norepinephrine,
            ne.relevance_base,
            ne.relevance_slope,
            ne.relevance_floor,
            ne.relevance_ceiling,
        )
        napping = self.nap.napping
        self.drive = oc.nap.nap_drive if napping else oc.nap.awake_drive
        self.noise = (
            dream_temperature(self.levels.dopamine, oc.nap.dream_noise_min, oc.nap.dream_noise_max)
            if napping
            else 1.0
        )
        flags = Mode(0)
        if napping:
            flags |= Mode.NAP
        elif self.boredom.level >= oc.boredom.threshold:
            flags |= Mode.CURIOSITY
        self.flags = flags

    # ------------------------------------------------------------------ outputs

    @property
    def atp_ratio(self) -> float:
        return self.ledger.available_nmu / self.ledger.capacity_nmu

    @property
    def causes(self) -> Cause:
        return self.monitor.active

    def fill_state(self, out: np.ndarray[Any, Any]) -> None:
        """Write what the dynamics decide into a NeurochemicalState record in place
        (:func:`engs.services.orchestrator.publish.fill`)."""
        publish.fill(self, out)

    def stability_report(self) -> StabilityReport:
        """Eigenvalues, Gershgorin margins and transient peak of the coupling matrix at
        the current cost scale (cached until the scale changes; not for every cycle)."""
        if self._stability is None:
            self._stability = analyse(self.linear.matrix)
        return self._stability

    def dream_batch(self, n: int) -> DreamBatch:
        """Dream-weave replay samples (§8.1) for the learning code: β = N, noise
        temperature from D, drawn with the ENGS's seeded generator."""
        nap = self._cfg.nap
        temp = dream_temperature(self.levels.dopamine, nap.dream_noise_min, nap.dream_noise_max)
        return self.replay.sample(n, self.levels.norepinephrine, temp, self.rng)

    # ------------------------------------------------------------------ metabolism

    def try_reserve(self, cost_nmu: float, task: str, ttl_s: float | None = None) -> Lock | None:
        """Transactional Metabolic Lock: escrow ``cost_nmu`` or None (any thread)."""
        return self.ledger.try_reserve(cost_nmu, task, ttl_s)

    def commit(self, lock_id: int) -> bool:
        return self.ledger.commit(lock_id)

    def abort(self, lock_id: int) -> bool:
        return self.ledger.abort(lock_id)

    def operation_cost(self, op: Operation) -> float:
        """The calibrated price of one discrete operation at the current temperature."""
        return self.costs.operation_nmu(op, self.memory.temperature_c)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> EngsSnapshot:
        """Learned parameters and slow state as plain msgspec data (:func:`snapshot.take`)."""
        return snapshot.take(self)

    def load_state_dict(self, st: EngsSnapshot) -> None:
        """Restore a snapshot taken by :meth:`state_dict` of an ENGS with the same area
        count and critic features, calibration included (:func:`snapshot.restore`)."""
        snapshot.restore(self, st)

    def save_checkpoint(self, path: str) -> None:
        """Atomically write :meth:`state_dict` to ``path`` (temp, fsync, rename, fsync dir)."""
        checkpoint.save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str) -> None:
        """Restore from ``path``; FileNotFoundError if absent, CheckpointError if unusable."""
        self.load_state_dict(checkpoint.load_checkpoint(path, EngsSnapshot))


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
