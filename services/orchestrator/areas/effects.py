"""What drives each nucleus, and what each neuromodulator does to its area's physics.

**Drivers** (ENGS → nuclei). Each NT's nuclei fire at a level in [0, 1] set by the
global ENGS state, linearly around rest::

    driver_n = clip(rest_n + Σ_k A[n, k] · (signal_k - rest_signal_k), 0, 1)

signals (order :data:`SIGNALS`): D, S, N, ATP ratio, cortisol, boredom, napping (0/1),
DMN safety (1 - safety_penalty). Rest: D_eq, S_eq, N_eq, ATP 1, cortisol 0, boredom at
its reset value, awake, safe. The global D, S and N drive the dopamine, serotonin and
norepinephrine nuclei one to one; the rows of the other four follow the physiology cited
in docs/areas.md (:data:`DEFAULT_DRIVERS`; overridable per NT in config).

**Effects** (area effective level x → per-area multipliers of the physics). No
passenger chemicals: every NT changes exactly one published coefficient, except NE, which
also sets the gain of the area's response to its input (issue 13, the arousal inverted U).

=====  ================  =================================================  ==============
NT     coefficient       multiplier                                         source
=====  ================  =================================================  ==============
DA     area_plasticity   1 + tanh(κ_D (x - D_eq))  (gates.plasticity_gate)  seed 003 §3.3
5HT    area_elasticity   0.5 + 0.5 tanh(κ_S (x - S_eq))  (elasticity_gate)  seed 003 §4.1
NE     area_speed        1 + x²  (gates.speed_gain: 1/s_eff)                GAP-005
NE     response gain     e^{k (x - rest)} on the drive's receptors          adaptive gain
HA     area_drive        drive x (1 + a tanh(κ (x - rest)))                 wake drive
ORX    area_damping      1 - a tanh(κ (x - rest))                           arousal stability
OXT    area_noise        noise x (1 - a tanh(κ (x - rest)))                 signal-to-noise
TST    area_stimulus     stimulus x (1 + a tanh(κ (x - rest)))              cue salience
=====  ================  =================================================  ==============

The first three are the gates of :mod:`engs.services.orchestrator.gates`, vectorised (the
test suite checks them against the scalar functions); a = ``effect_gain`` (0.5), κ =
``effect_slope`` (5), so the other four stay in (0.5, 1.5) and are exactly 1 at rest.

Writer: none (pure functions); caller: :class:`.model.AreaNeurochemistry`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engs.services.orchestrator.areas.projections import NT_INDEX
from engs.shared.config import OrchestratorConfig
from engs.shared.layout import N_NT, NEUROMODULATORS

F64Array = np.ndarray[Any, np.dtype[np.float64]]

SIGNALS: tuple[str, ...] = (
    "dopamine", "serotonin", "norepinephrine", "atp", "cortisol", "boredom", "nap", "safety",
)  # fmt: skip
N_SIGNALS = len(SIGNALS)

#: Rows of the driver matrix (coefficient per unit of signal above its rest value).
DEFAULT_DRIVERS: dict[str, dict[str, float]] = {
    "DA": {"dopamine": 1.0},
    "5HT": {"serotonin": 1.0},
    "NE": {"norepinephrine": 1.0},
    # safe, affiliative context raises oxytocin; chronic stress lowers it
    "OXT": {"safety": 0.5, "cortisol": -0.3},
    # reward ("winner effect") raises testosterone; the HPA axis suppresses the HPG axis
    "TST": {"dopamine": 0.3, "cortisol": -0.5},
    # tuberomammillary neurons fire in waking, fall silent in sleep, follow arousal
    "HA": {"nap": -0.4, "norepinephrine": 0.3},
    # orexin neurons: silent in sleep, excited by energy deficit, drive foraging
    "ORX": {"nap": -0.4, "atp": -0.5, "boredom": 0.2},
}

DA, SHT, NE, OXT, TST, HA, ORX = (NT_INDEX[n] for n in NEUROMODULATORS)


def rest_levels(oc: OrchestratorConfig) -> F64Array:
    """Each NT's resting level (7,): config, else D_eq, S_eq, N_eq and 0.5."""
    if oc.areas.rest_levels is not None:
        return np.array(oc.areas.rest_levels, dtype=np.float64)
    c = oc.coupling
    return np.array([c.d_eq, c.s_eq, c.n_eq, 0.5, 0.5, 0.5, 0.5])


def rest_signals(oc: OrchestratorConfig) -> F64Array:
    """The signals at the ENGS's resting state (order :data:`SIGNALS`)."""
    c = oc.coupling
    return np.array([c.d_eq, c.s_eq, c.n_eq, 1.0, 0.0, oc.boredom.start, 0.0, 1.0])


def driver_matrix(oc: OrchestratorConfig) -> F64Array:
    """A (7, 8): the built-in rows, with the NTs listed in ``areas.drivers`` replaced."""
    rows = dict(DEFAULT_DRIVERS) | {nt: dict(row) for nt, row in oc.areas.drivers.items()}
    a = np.zeros((N_NT, N_SIGNALS))
    for nt, row in rows.items():
        for sig, coef in row.items():
            a[NT_INDEX[nt], SIGNALS.index(sig)] = coef
    return a


def drivers(matrix: F64Array, rest: F64Array, signals: F64Array, rest_sig: F64Array) -> F64Array:
    """driver (..., 7) in [0, 1] for signals (..., 8) (any leading batch shape)."""
    dev = signals - rest_sig
    out = rest + np.einsum("ns,...s->...n", matrix, dev)
    np.maximum(out, 0.0, out=out)
    return np.minimum(out, 1.0, out=out)


def modulation(x: F64Array, rest: float, gain: float, slope: float, sign: float) -> F64Array:
    """1 + sign · a · tanh(κ (x - rest)): the OXT, TST, HA, ORX multipliers."""
    out = np.tanh(slope * (x - rest))
    out *= sign * gain
    out += 1.0
    return out


def plasticity_gates(x: F64Array, centre: float, gain: float) -> F64Array:
    """:func:`engs.services.orchestrator.gates.plasticity_gate`, vectorised."""
    return 1.0 + np.tanh(gain * (x - centre))


def elasticity_gates(x: F64Array, centre: float, gain: float) -> F64Array:
    """:func:`engs.services.orchestrator.gates.elasticity_gate`, vectorised."""
    return 0.5 + 0.5 * np.tanh(gain * (x - centre))


def speed_gains(x: F64Array) -> F64Array:
    """:func:`engs.services.orchestrator.gates.speed_gain`, vectorised."""
    return 1.0 + x * x


class Effects:
    """The per-area multipliers of one cycle, shape (A,) each, from the effective
    levels x (A, 7)."""

    def __init__(self, oc: OrchestratorConfig, n_areas: int) -> None:
        self._c = oc.coupling
        self._kd = oc.dopamine.gate_gain
        self._ks = oc.serotonin.gate_gain
        self._rest = rest_levels(oc)
        self._a = oc.areas.effect_gain
        self._k = oc.areas.effect_slope
        one = np.ones(n_areas)
        self.plasticity = one.copy()
        self.elasticity = one * 0.5
        self.speed = one.copy()
        self.drive_gain = one.copy()
        self.damping = one.copy()
        self.noise_gain = one.copy()
        self.stimulus_gain = one.copy()
        self._k_ne = oc.areas.scaling.arousal_gain
        self.response_gain = one.copy()
        """G_NE = e^{k (x_NE - rest_NE)}: norepinephrine's gain on the response to input
        (receptors.ActivityScaling; Servan-Schreiber, Printz & Cohen 1990)."""

    def update(self, x: F64Array) -> None:
        r, a, k = self._rest, self._a, self._k
        self.plasticity = plasticity_gates(x[:, DA], self._c.d_eq, self._kd)
        self.elasticity = elasticity_gates(x[:, SHT], self._c.s_eq, self._ks)
        self.speed = speed_gains(x[:, NE])
        self.drive_gain = modulation(x[:, HA], r[HA], a, k, +1.0)
        self.damping = modulation(x[:, ORX], r[ORX], a, k, -1.0)
        self.noise_gain = modulation(x[:, OXT], r[OXT], a, k, -1.0)
        self.stimulus_gain = modulation(x[:, TST], r[TST], a, k, +1.0)
        self.response_gain = np.exp(self._k_ne * (x[:, NE] - r[NE]))
