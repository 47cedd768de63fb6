"""One cycle's inputs to the ENGS step, and the accumulator that collects them.

The signal socket accepts messages at any time; the control cycle consumes them once
per cycle. :class:`InputAccumulator` sits between the two: the signals of one cycle
(``SignalInbox.drain()``, or direct calls such as ``add_reward``) are added into it
(``add_signal``), and the cycle takes a :class:`CycleInputs` out of it (``take``),
which also resets it. The combination rules live here, once; within one cycle:

* reward: **summed** (seed 003 §3.4's lock-free CAS accumulation of concurrent
  rewards becomes a per-cycle sum; δ then sees their total, once);
* stress: **latest wins** — a stress report is a level, not an increment, so a client
  that reports often must not count more; the ENGS holds the latest level and lets it
  decay (``norepinephrine.stress_tau_s``) until the next report, and cortisol
  integrates the held level (docs/orchestrator.md §4);
* novelty: every entropy in arrival order (a full reset dominates partial boosts);
* stimulus: amplitudes summed per area (one-shot, published for one cycle);
* goal_complete, security_alert: counted (each one applies its serotonin step);
* dmn: latest report wins; the ENGS differences successive reports (seed 000);
* oracle requests: each id once (the step applies an id at most once, ever).

Values are checked here (finite, in range) so bad input never reaches the dynamics,
against the same bounds the socket's decoder enforces: each is written once, on the
message's field in :mod:`engs.shared.messages`, and read from there
(:func:`engs.shared.messages.check_field`). A program driving the dynamics directly can
send no value the socket would refuse (issue #12: 1e6 rewards once passed here). The accumulator
lives on the event loop's thread and is not thread-safe (asyncio handlers do not
interleave inside a method). :class:`CycleInputs` is a msgspec Struct so that a replay
tool can record and re-feed a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import msgspec

from engs.shared import messages

#: DMN outcome metrics (seed 000 "DMN metrics"), in the order the replay buffer stores.
DMN_FIELDS = ("coherence_gain", "utility_gain", "uncertainty_drop", "safety", "calibration_gain")
N_DMN = len(DMN_FIELDS)


class DmnReport(msgspec.Struct, frozen=True):
    """One raw DMN report (the socket's ``dmn`` message): the ENGS turns successive
    reports into seed 000's outcome metrics ΔC, ΔU, ΔH, S, ΔCal (:func:`dmn_metrics`)."""

    coherence: float
    utility: float
    uncertainty: float
    safety_penalty: float
    calibration_gap: float
    node: str | None = None
    """The CFG node the metrics were computed at (the area model's context, seed 000)."""


def dmn_metrics(prev: DmnReport | None, cur: DmnReport) -> tuple[float, ...]:
    """Seed 000: ΔC = C(t) - C(t-1), ΔU = U(t) - U(t-1), ΔH = H(t-1) - H(t),
    S = 1 - safety_penalty(t), ΔCal = CalGap(t-1) - CalGap(t); differences are 0 for
    the first report. Order: :data:`DMN_FIELDS`."""
    safety = 1.0 - cur.safety_penalty
    if prev is None:
        return (0.0, 0.0, 0.0, safety, 0.0)
    return (
        cur.coherence - prev.coherence,
        cur.utility - prev.utility,
        prev.uncertainty - cur.uncertainty,
        safety,
        prev.calibration_gap - cur.calibration_gap,
    )


class Stimulus(msgspec.Struct, frozen=True):
    area: int
    """Area index (order of ``physics.areas``)."""
    amplitude: float
    """Field units, published once in ``area_stimulus``."""


class OracleRequest(msgspec.Struct, frozen=True):
    """A watchdog intervention (seed 003 §9): applied once per id."""

    kind: Literal["anhedonia", "mania"]
    """anhedonia: emergency dopamine stimulus (§9.1); mania: serotonin 'sedative' (§9.2)."""
    id: int
    """Strictly increasing per kind; an id at or below the last applied one is ignored."""


class CycleInputs(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one step consumes besides telemetry. Defaults: an idle cycle."""

    reward: float = 0.0
    """Sum of the rewards received during the cycle."""
    stress: float | None = None
    """Latest stress level in [0, 1] reported during the cycle; None: no report."""
    novelty: tuple[float, ...] = ()
    """Novelty entropies in [0, 1], in arrival order."""
    stimuli: tuple[Stimulus, ...] = ()
    goal_complete: int = 0
    security_alert: int = 0
    dmn: DmnReport | None = None
    """Latest DMN report of the cycle."""
    oracle: tuple[OracleRequest, ...] = ()
    temperature_c: float | None = None
    """Latest host/GPU temperature reading, if the caller's housekeeping read one."""
    external_causes: int = 0
    """The effective interrupt cause set other lanes hold (oracle, physics, operator),
    as the loop read it: a rising edge revokes open metabolic locks too."""


def _finite(name: str, value: float, lo: float = -math.inf, hi: float = math.inf) -> float:
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"`{name}` must be finite and in [{lo}, {hi}], got {value!r}")
    return v


class AreaNames:
    """The physics' areas by name: the one check of the area a stimulus names, for the
    socket (:class:`~engs.services.orchestrator.server.SignalServer`, before it
    acknowledges) and for direct calls (:meth:`InputAccumulator.add_stimulus`). Past it,
    a :class:`Stimulus` carries a valid index and the dynamics trust it."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._expected = ", ".join(sorted(self.names))

    def index(self, area: str | int, at: str = "stimulus.area") -> int:
        """The index of ``area`` (a name, or an index checked against the count);
        ValueError naming the field ``at`` otherwise."""
        if isinstance(area, str):
            idx = self._index.get(area)
            if idx is None:
                raise ValueError(
                    f"unknown area {area!r}, expected one of: {self._expected} - at `{at}`"
                )
            return idx
        idx = int(area)
        if not 0 <= idx < len(self.names):
            raise ValueError(f"`{at}` must be in 0..{len(self.names) - 1}, got {area}")
        return idx


class InputAccumulator:
    """Collects one cycle's signals; ``take()`` hands them over and starts afresh."""

    def __init__(self, areas: Iterable[str]) -> None:
        self._areas = AreaNames(areas)
        self._reset()

    def _reset(self) -> None:
        self._reward = 0.0
        self._stress: float | None = None
        self._novelty: list[float] = []
        self._stimulus: dict[int, float] = {}
        self._goals = 0
        self._alerts = 0
        self._dmn: DmnReport | None = None
        self._oracle: list[OracleRequest] = []
        self._temperature: float | None = None
        self._causes = 0

    def add_reward(self, value: float) -> None:
        self._reward += messages.check_field(messages.Reward, "value", value)

    def set_stress(self, value: float) -> None:
        self._stress = messages.check_field(messages.Stress, "value", value)

    def add_novelty(self, entropy: float) -> None:
        self._novelty.append(messages.check_field(messages.Novelty, "entropy", entropy))

    def add_stimulus(self, area: str | int, amplitude: float) -> None:
        idx = self._areas.index(area)
        amp = messages.check_field(messages.Stimulus, "amplitude", amplitude)
        self._stimulus[idx] = self._stimulus.get(idx, 0.0) + amp

    def add_goal_complete(self) -> None:
        self._goals += 1

    def add_security_alert(self) -> None:
        self._alerts += 1

    def set_dmn(self, report: DmnReport) -> None:
        for f in report.__struct_fields__:
            if f != "node":  # a label, not a metric
                messages.check_field(messages.Dmn, f, getattr(report, f))
        self._dmn = report

    def request_oracle(self, kind: Literal["anhedonia", "mania"], request_id: int) -> None:
        self._oracle.append(OracleRequest(kind=kind, id=int(request_id)))

    def set_temperature(self, temp_c: float | None) -> None:
        self._temperature = None if temp_c is None else _finite("temperature_c", temp_c)

    def set_external_causes(self, causes: int) -> None:
        self._causes = int(causes)

    def add_signal(self, signal: messages.Signal) -> None:
        """Fold in one signal the socket accepted (``SignalInbox.drain`` items). Raises
        ValueError for an area not in ``physics.areas`` (the server checks the area with
        the same :class:`AreaNames` before acknowledging a stimulus)."""
        match signal:
            case messages.Reward(value=v):
                self.add_reward(v)
            case messages.Stress(value=v):
                self.set_stress(v)
            case messages.Novelty(entropy=e):
                self.add_novelty(e)
            case messages.Stimulus(area=area, amplitude=amp):
                self.add_stimulus(area, amp)
            case messages.Dmn():
                self.set_dmn(
                    DmnReport(
                        coherence=signal.coherence,
                        utility=signal.utility,
                        uncertainty=signal.uncertainty,
                        safety_penalty=signal.safety_penalty,
                        calibration_gap=signal.calibration_gap,
                        node=signal.node,
                    )
                )
            case messages.GoalComplete():
                self.add_goal_complete()
            case messages.SecurityAlert():
                self.add_security_alert()

    def take(self) -> CycleInputs:
        """This cycle's inputs; the accumulator is empty afterwards."""
        out = CycleInputs(
            reward=self._reward,
            stress=self._stress,
            novelty=tuple(self._novelty),
            stimuli=tuple(Stimulus(a, v) for a, v in sorted(self._stimulus.items())),
            goal_complete=self._goals,
            security_alert=self._alerts,
            dmn=self._dmn,
            oracle=tuple(self._oracle),
            temperature_c=self._temperature,
            external_causes=self._causes,
        )
        self._reset()
        return out
