"""The learned critic: linear TD(λ) over state features (ARCHITECTURE §6.10).

A value defined only as the field energy (seed 003 §3.1) cannot learn predictions,
so it cannot reproduce the recorded dopamine signatures GAP-029 asks for (burst to an
unexpected reward, transfer of the burst to a predictive cue, dip at an omitted
reward). This critic can; the seed's energy value stays in as a feature, and the
dopamine config picks which value drives D (``dopamine.value_model``).

Features φ(s), float64, shape (2 + C·K,), each in [-1, 1]:

* ``ENERGY``: V_E - V̄_E, the seed's normalised field energy V_E = E/(E + Ē)
  (:mod:`dopamine`) minus its running mean (time constant ``critic.baseline_tau_s``);
* ``ENTROPY``: h - h̄, the field's normalised Shannon entropy h = H/log2(n) minus its
  running mean (the same time constant). Both are zero for a steady field, so neither
  can act as a bias, whatever the field's level (no physics at all included);
* C·K *time cells* (:class:`TimeCells`): for each cue channel c (one per area: a
  ``stimulus`` into area c is cue c, so distinct cues predict distinct outcomes as in
  Fiorillo et al. 2003) K one-hot bins of the time since that cue's onset, one cycle
  wide near the onset and widening in proportion to their delay further on (relative
  width ``critic.time_resolution``): a complete serial compound on a log-compressed
  time axis, the scale-invariant timing of the dopamine models (Ludvig, Sutton &
  Kehoe 2008, Neural Comput. 20:3034, whose microstimuli widen with delay; Shankar &
  Howard 2012's log-compressed time cells; Gibbon's scalar timing). A 0.5 s and a 3 s
  CS–US interval are learned alike, where microstimuli of fixed width in trace height
  under one trace time constant lose the long delays (issue #12: a third of the TD
  value at 1.5–2 s).

Why the earlier features were replaced (issue #12, docs/seed-notes.md SN-52..54):

* No bias feature and no raw energy/entropy level. A constant feature under an
  accumulating trace had an eligibility of 1/(1-γλ) ≈ 135 at 100 Hz, so one δ moved its
  weight by ~0.6δ and the standing δ = -(1-γ)V dragged D to 0. The two field features
  are centred (they average ≈ 0), and every trace is bounded to [-1, 1] (below).
* No reward microstimuli. A reward's own trace learned a negative value and cancelled
  the next *uncued* reward (it kept 17–43 % of its naive burst). Instead a reward is an
  outcome that **ends the prediction episode**: the time cells of every running cue
  stop (the transition into the inter-trial state of Daw, Courville & Touretzky 2006,
  Neural Comput. 18:1637). A predicted reward is then cancelled by the value the cue
  built up to it (δ = R + γ·0 - V(T⁻) → 0), an uncued reward meets V ≈ 0 and keeps its
  burst, nothing needs to unlearn a value after the reward (no sag before it), and an
  omitted reward leaves the cells running into states that learned V ≈ 0: the dip
  comes at the time the reward was due, as wide as the timing uncertainty there.

Learning, once per cycle (Sutton & Barto 2018 §12.2 with a bounded trace)::

    δ  = clip(R + γ w·φ(s') - w·φ(s), -δ_max, δ_max)
    e  ← clip(γλ e + φ(s), -1, 1)       (time cells; the field features: e = φ(s))
    w  ← w + α δ e                        (α = ``alpha``; ``field_alpha`` for the field)

γ and λ per cycle (per-second figures raised to dt). The clip of δ is the documented
bound of the learning signal: ``critic.delta_bound`` (default 2, the largest error a
reward at the socket's bound can make against a value of the opposite sign). The trace
bound makes a feature's eligibility at most 1 whatever it was before, so no feature —
constant or not — can be updated by more than α·δ_max per cycle; for the one-hot time
cells it is exactly the replacing trace (Singh & Sutton 1996), so a wide bin that is
occupied for many cycles is not credited as many times over (an accumulating trace
made the long-delay bins overshoot). When a cue's episode ends its cells' eligibility is
cleared (:meth:`LinearTdCritic.update`). The two field features are dense (never 0 for
long) and noisy: under a trace they summed ~1/(1-γλ) ≈ 1000 cycles of noise and one
burst of rewards drove their weights to ~60 (V ≈ ±10 from noise alone, in the test
of a 200-reward burst); they learn by TD(0) at the small ``field_alpha`` instead, so
they can pick up a lasting correlation of the field with reward, never swamp V.

Writer and reader: the control cycle (single thread); arrays are preallocated and
updated in place (nothing allocates per cycle).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from engs.shared.config import CriticConfig

F64Array = np.ndarray[Any, np.dtype[np.float64]]

#: Fixed feature columns before the time cells.
ENERGY, ENTROPY = 0, 1
N_FIXED = 2
#: A cue channel whose cells have all fallen below e^{-HORIZON_SIGMAS²/2} stops.


class CriticState(msgspec.Struct, frozen=True):
    weights: list[float]
    traces: list[float]
    features: list[float]  # φ(s) of the last cycle, the next update's "s"
    cue_elapsed_s: list[float]  # per cue channel: s since its onset, < 0 when stopped
    baselines: list[float | None]  # running means of the energy and entropy features


class TimeCells:
    """The memory of when each cue began: per cue channel, one-hot time bins whose
    widths grow in proportion to their delay (scalar timing).

    Bin edges: one cycle wide up to ``1/resolution`` cycles after the onset, then
    growing geometrically by the factor e^{resolution} to ``time_max_s``: a complete
    serial compound (Sutton & Barto 1990; Schultz, Dayan & Montague 1997) on a
    log-compressed time axis (Shankar & Howard 2012; Ludvig, Sutton & Kehoe 2008's
    microstimuli also widen with delay). Timing is exact to one cycle near the cue and
    to a relative error of ``resolution`` later (5 %: 0.15 s at 3 s), so a 0.5 s and a
    3 s CS–US interval are learned alike. One-hot bins, not overlapping bumps: a smooth
    basis cannot drop the value to 0 at the reward (where the episode ends) and the
    compromise showed up as a sag of V before every predicted reward (δ summed over the
    last 300 ms ≈ -0.1 in the prototype with Gaussian cells of 5 % width).
    """

    def __init__(self, cfg: CriticConfig, channels: int, dt: float) -> None:
        self.channels = channels
        self.dt = dt
        #: Bin edges in cycles since the onset: edges[i] ≤ cycles < edges[i+1] is bin i.
        edges = [0]
        grow = math.exp(cfg.time_resolution)
        horizon = round(cfg.time_max_s / dt)
        while edges[-1] < horizon:
            edges.append(min(horizon, max(edges[-1] + 1, math.ceil(edges[-1] * grow))))
        self.edges = np.array(edges, dtype=np.int64)
        self.k = len(edges) - 1
        self.n = channels * self.k
        self.horizon_cycles = horizon
        #: Per channel: cycles since the onset (0 in the onset cycle), -1 when stopped.
        self.elapsed = np.full(channels, -1, dtype=np.int64)
        #: The cells whose episode ended in the last ``fill``'s cycle (their
        #: eligibility is cleared once that cycle's update has credited them).
        self.ended = np.zeros(self.n, dtype=bool)
        self.any_ended = False
        self._bin = np.zeros(channels, dtype=np.int64)

    def end_all(self) -> None:
        """An outcome: every running cue's episode ends."""
        for c in range(self.channels):
            if self.elapsed[c] >= 0:
                self._end(c)

    def onset(self, channel: int) -> None:
        """Cue ``channel`` begins (again) now; a running episode of it ends first."""
        if self.elapsed[channel] >= 0:
            self._end(channel)
        self.elapsed[channel] = 0
        self._bin[channel] = 0

    def advance(self) -> None:
        """One cycle passes for every running channel; those past the horizon stop."""
        self.ended.fill(False)
        self.any_ended = False
        for c in range(self.channels):
            t = int(self.elapsed[c])
            if t < 0:
                continue
            t += 1
            if t >= self.horizon_cycles:
                self._end(c)
                continue
            self.elapsed[c] = t
            b = int(self._bin[c])
            while t >= self.edges[b + 1]:
                b += 1
            self._bin[c] = b

    def _end(self, channel: int) -> None:
        self.elapsed[channel] = -1
        self.ended[channel * self.k : (channel + 1) * self.k] = True
        self.any_ended = True

    def fill(self, out: F64Array) -> None:
        """Write the cells of every channel into ``out`` (shape (channels·K,)): 1 in the
        running channels' current bins, 0 elsewhere."""
        out.fill(0.0)
        k = self.k
        for c in range(self.channels):
            if self.elapsed[c] >= 0:
                out[c * k + int(self._bin[c])] = 1.0

    def elapsed_s(self) -> list[float]:
        """Seconds since each channel's onset (-1: stopped), for a snapshot."""
        return [float(t) * self.dt if t >= 0 else -1.0 for t in self.elapsed]

    def load_elapsed_s(self, values: list[float]) -> None:
        for c, v in enumerate(values):
            self.elapsed[c] = -1
            if v >= 0.0:
                self.onset(c)
                self.elapsed[c] = round(v / self.dt)
                while self.elapsed[c] >= self.edges[int(self._bin[c]) + 1]:
                    self._bin[c] += 1
        self.ended.fill(False)
        self.any_ended = False


class Features:
    """Builds φ(s') each cycle into a preallocated array; keeps the cue clocks and the
    entropy baseline."""

    def __init__(self, cfg: CriticConfig, channels: int, dt: float) -> None:
        self.cells = TimeCells(cfg, channels, dt)
        self.n = N_FIXED + self.cells.n
        self._alpha = 1.0 - math.exp(-dt / cfg.baseline_tau_s)
        #: Running means of the energy value and the entropy fraction (NaN: none yet).
        self.baselines = np.full(N_FIXED, math.nan)

    def build(
        self,
        out: F64Array,
        energy_value: float,
        entropy_frac: float,
        cues: tuple[int, ...] | list[int],
        outcome: bool,
    ) -> None:
        """Fill ``out`` (shape (n,)) with φ(s') for this cycle. ``cues``: the channels
        with a cue onset in this cycle; ``outcome``: a reward arrived in this cycle.
        Either ends every running cue's episode before this cycle's onsets begin
        theirs: a reward is the trial's outcome, and a new cue begins a new trial (an
        earlier cue still learns to predict through it, by bootstrapping on the new
        cue's value in the transition that ends it: second-order conditioning)."""
        cells = self.cells
        cells.advance()
        if outcome or cues:
            cells.end_all()
        for c in cues:
            cells.onset(c)
        out[ENERGY] = energy_value - self._centre(ENERGY, energy_value)
        out[ENTROPY] = entropy_frac - self._centre(ENTROPY, entropy_frac)
        cells.fill(out[N_FIXED:])

    def summarise(self, phi: F64Array, out: F64Array) -> None:
        """A compact summary of φ for the replay buffer (shape (2 + C,)): the two field
        features, then per cue channel the start of its active time bin as a fraction of
        ``time_max_s`` (-1 when the channel is stopped). The time cells are one-hot, so
        this loses nothing the buffer's diversity measure needs and keeps a 4096-row
        buffer (and the checkpoint that carries it) at ~200 KiB instead of ~6 MiB."""
        cells = self.cells
        out[:N_FIXED] = phi[:N_FIXED]
        k = cells.k
        for c in range(cells.channels):
            block = phi[N_FIXED + c * k : N_FIXED + (c + 1) * k]
            b = int(block.argmax())
            out[N_FIXED + c] = cells.edges[b] / cells.horizon_cycles if block[b] > 0.0 else -1.0

    def _centre(self, column: int, x: float) -> float:
        """The running mean that column's feature is centred on (before this cycle's
        value is folded in; the first value is its own mean)."""
        base = self.baselines[column]
        if math.isnan(base):
            base = x
        self.baselines[column] = base + self._alpha * (x - base)
        return base


def summary_size(channels: int) -> int:
    """Length of :meth:`Features.summarise`'s output."""
    return N_FIXED + channels


class LinearTdCritic:
    """V(s) = w·φ(s), learned by TD(λ) with bounded traces and a bounded δ."""

    def __init__(
        self,
        n_features: int,
        cfg: CriticConfig,
        gamma: float,
        lam: float,
        dense: int = N_FIXED,
    ) -> None:
        """``dense``: how many leading features are dense (on every cycle: the field
        features); they learn by TD(0) at ``cfg.field_alpha``, the rest (the sparse
        time cells) by TD(λ) at ``cfg.alpha``."""
        self.n = n_features
        self.weights = np.zeros(n_features)
        self.traces = np.zeros(n_features)
        self._step = np.zeros(n_features)
        self.alphas = np.full(n_features, cfg.alpha)
        self.alphas[:dense] = cfg.field_alpha
        self._decay = np.full(n_features, gamma * lam)
        self._decay[:dense] = 0.0
        self._gamma = gamma
        self.delta_bound = cfg.delta_bound

    def value(self, phi: F64Array) -> float:
        return float(self.weights @ phi)

    def update(
        self,
        phi: F64Array,
        reward: float,
        phi_next: F64Array,
        ended: np.ndarray[Any, np.dtype[np.bool_]] | None = None,
    ) -> float:
        """One TD(λ) step on the transition s → s'; returns the bounded δ. ``ended``:
        the features whose episode ended with this transition (the time cells of a
        cue stopped by an outcome, a new onset or the horizon): they are credited
        with this δ, then their eligibility is cleared, as traces are at an episode's
        end (Sutton & Barto 2018 §12.1). Without it the trace of one trial's cells would
        carry into the next and be credited with the next cue's burst: a value
        inflated above the reward (+12 % at λ = 0.5 s⁻¹, x2 at λ → 1)."""
        raw = reward + self._gamma * self.value(phi_next) - self.value(phi)
        b = self.delta_bound
        delta = b if raw > b else -b if raw < -b else raw
        self.traces *= self._decay
        self.traces += phi
        np.clip(self.traces, -1.0, 1.0, out=self.traces)
        np.multiply(self.traces, self.alphas, out=self._step)
        self._step *= delta
        self.weights += self._step
        if ended is not None:
            np.putmask(self.traces[self.n - ended.size :], ended, 0.0)
        return delta
