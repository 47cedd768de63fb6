"""Boredom and curiosity: one model reconciling AUTO-04 and GAP-036 (seed 003 §6).

The seed gives two formulas (ARCHITECTURE §6.5):

* AUTO-04 (§6.2), a *rate*: ΔB = α(1 - tanh(k·H)) — bounded, no singularity at H → 0;
* GAP-036, a *sigmoid of subjective time*: B = 1/(1 + e^{-k(t - t₀ - T_half)}), t in
  physics ticks, calibrated so that B goes from 0.1 at a novelty reset to the
  threshold after 600 s idle — with a threshold of 0.85 there and 0.8 in §6.3/§8.3.

One model keeps both properties. A boredom *clock* u (subjective seconds since the
last novelty) advances by the physics ticks elapsed, each weighted by AUTO-04's
bounded factor; B is GAP-036's sigmoid of u::

    du = r · Δticks / tick_hz,      r = 1 - tanh(k_H · x) ∈ (0, 1]
    B  = σ(k (u - T_half)),         k = (logit θ - logit B₀) / T_idle,  T_half = -logit B₀ / k

so dB/dt = k·B(1-B)·r ≤ k/4: bounded (AUTO-04), sigmoidal in subjective time and
exactly calibrated (GAP-036). With B₀ = 0.1, θ = 0.85 (GAP-036's calibrated pair;
0.8 is dropped) and T_idle = 600 s: k = (ln(0.85/0.15) + ln 9)/600 = 0.0065531 s⁻¹
and T_half = 335.3 s (the seed's 0.00656 and 335 s, rounded). An idle system, r = 1,
crosses θ after exactly T_idle worth of ticks.

x is the *excursion* of the field entropy from its own recent baseline, not the level
(a departure): x = max(0, |H - H̄| - z·σ_H) / log2(n_nodes), H̄ an exponential mean
(τ_H) and σ_H the estimator's standard error from telemetry. AUTO-04 on the level H
never accumulates boredom for a noise-saturated field (maximal H), although §6.1 says
boredom exists to escape noise as much as fixation, and an idle calibration would
depend on the physics' resting entropy. On the excursion, a static field — fixated
or noisy — is idle (r = 1), and ingesting information, which changes H (§6.3 step 4),
slows the clock.

Novelty (GAP-036 ``register_novelty``): entropy > 0.5 resets the clock to 0 (B = B₀);
lesser novelty takes ``partial_boost_s``·entropy seconds off it (10 s per unit:
10 000 ticks at 1 kHz), never below 0. The boredom relieved is returned so that it can
be paid as an intrinsic reward (§6.3 step 4).

Opportunity cost (issue #12; Charnov 1976's Marginal Value Theorem, Niv et al. 2007's
tonic dopamine as the average reward rate): the clock above only measures idleness on
the seed's 600 s scale, so a forager's boredom ignored what staying costs. The model
keeps ρ, the *local* intake rate (reward per ENGS second, an exponential mean over
``intake_tau_s``), and compares it with R̄, the average reward rate the ENGS keeps as
tonic dopamine (time constant ``dopamine.reward_rate_tau_s``, travel and idle time
included). The MVT's rule is to leave a patch when its marginal rate falls to the
environment's average rate; boredom carries that rule as a second component::

    B_oc = σ(logit θ + c·ln(R̄ / ρ))     (R̄ ≥ r_min; else 0)
    B    = max(B_idle(u), B_oc)

B_oc equals the threshold θ exactly when ρ = R̄, rises above it as ρ falls below R̄
(sharpness c = ``opportunity_gain``) and falls towards 0 while the patch pays better
than average. B_oc does not depend on the reward's scale (R̄/ρ is a ratio), so patch
gain does not move the leaving time, and it depends on travel through R̄, so longer
travel (a lower R̄) means longer residence — the two signatures of the MVT (Charnov
1976; Constantino & Daw 2015). Below ``opportunity_min_rate`` there is no reward
economy to weigh and B is the idle clock alone. Novelty relieves only the idle
component (what a reset takes off the clock); intake relieves the opportunity cost.

Arriving somewhere new (a full novelty reset) restarts the local estimate: ρ is set to
the intake at which B_oc equals the re-arm level, ρ₀ = R̄·e^{(logit θ - logit rearm)/c}
(a new place is presumed a little better than the average until its own intake says
otherwise), so a patch poorer than the environment's average is left within a few
``intake_tau_s`` (the MVT's patch rejection) and a richer one is kept.

Curiosity: a goal is due when B reaches θ while armed; B re-arms once it has fallen
below ``rearm`` (hysteresis: an intake hovering at R̄ does not fire a goal per
fluctuation) or at a full novelty reset. While B stays at or above θ another goal is
due every T_idle further subjective seconds of the idle clock, or every
``goal_retry_s`` ENGS seconds while the opportunity cost holds it there (an unanswered
goal is retried rather than the drive falling silent). Naps pause the clock.

Writer and reader: the control cycle.
"""

from __future__ import annotations

import math

import msgspec

from engs.shared.config import BoredomConfig


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


class BoredomState(msgspec.Struct, frozen=True):
    clock_s: float
    rate: float
    entropy_baseline: float | None
    last_goal_clock_s: float | None
    intake_rate: float
    reward_rate: float
    armed: bool
    since_goal_s: float


class Boredom:
    """The boredom clock, its level and the curiosity trigger."""

    def __init__(self, cfg: BoredomConfig, dt: float) -> None:
        self._cfg = cfg
        #: k (s⁻¹ of subjective time) and T_half (s), derived, never configured.
        self.k = (logit(cfg.threshold) - logit(cfg.start)) / cfg.idle_s
        self.t_half = -logit(cfg.start) / self.k
        self._ema = 1.0 - math.exp(-dt / cfg.entropy_tau_s)
        self._intake_alpha = 1.0 - math.exp(-dt / cfg.intake_tau_s)
        self._dt = dt
        self.clock_s = 0.0
        self.entropy_baseline: float | None = None
        self.last_goal_clock_s: float | None = None
        self.rate = 1.0
        #: ρ: the local reward intake rate, reward per ENGS second.
        self.intake_rate = 0.0
        #: R̄: the average reward rate the ENGS last passed in (tonic dopamine).
        self.reward_rate = 0.0
        self.armed = True
        #: ENGS seconds since the last curiosity goal (for the opportunity-cost retry).
        self.since_goal_s = 0.0
        self._prior_ratio = (
            math.exp((logit(cfg.threshold) - logit(cfg.rearm)) / cfg.opportunity_gain)
            if cfg.opportunity_gain > 0.0
            else 1.0
        )

    @property
    def level(self) -> float:
        """B ∈ (0, 1): the larger of the idle and the opportunity-cost components."""
        return max(self.idle_level, self.opportunity_level)

    @property
    def idle_level(self) -> float:
        """B_idle: GAP-036's sigmoid of the boredom clock."""
        return sigmoid(self.k * (self.clock_s - self.t_half))

    @property
    def opportunity_level(self) -> float:
        """B_oc = σ(logit θ + c·ln(R̄/ρ)), 0 while R̄ < ``opportunity_min_rate``."""
        cfg = self._cfg
        rbar = self.reward_rate
        if rbar < cfg.opportunity_min_rate or cfg.opportunity_gain == 0.0:
            return 0.0
        rho = max(self.intake_rate, rbar * 1e-9)  # no intake (or a net loss): ratio 1e9
        return sigmoid(logit(cfg.threshold) + cfg.opportunity_gain * math.log(rbar / rho))

    def observe_intake(self, reward: float, reward_rate: float) -> None:
        """Fold in this cycle's reward (summed over the cycle) and the current R̄."""
        self.intake_rate += self._intake_alpha * (reward / self._dt - self.intake_rate)
        self.reward_rate = reward_rate
        self.since_goal_s += self._dt

    def level_at(self, clock_s: float) -> float:
        return sigmoid(self.k * (clock_s - self.t_half))

    def novelty(self, entropies: tuple[float, ...] | list[float]) -> float:
        """Register this cycle's novelty events; returns the boredom relieved (≥ 0)."""
        if not entropies:
            return 0.0
        before = self.idle_level
        if max(entropies) > self._cfg.full_reset_entropy:
            self.clock_s = 0.0  # a full reset dominates partial boosts in the same cycle
            self.armed = True  # somewhere new: a new episode
            if self.reward_rate >= self._cfg.opportunity_min_rate:
                self.intake_rate = self.reward_rate * self._prior_ratio
        else:
            self.clock_s = max(0.0, self.clock_s - self._cfg.partial_boost_s * sum(entropies))
        return before - self.idle_level

    def observe_entropy(self, entropy_bits: float, err_bits: float, n_nodes: int) -> float:
        """Update the entropy baseline and the clock rate r from one telemetry reading."""
        base = entropy_bits if self.entropy_baseline is None else self.entropy_baseline
        excursion = max(0.0, abs(entropy_bits - base) - self._cfg.entropy_noise_sigmas * err_bits)
        x = excursion / max(1.0, math.log2(max(n_nodes, 2)))
        self.rate = 1.0 - math.tanh(self._cfg.entropy_gain * x)
        self.entropy_baseline = base + self._ema * (entropy_bits - base)
        return self.rate

    def advance(self, subjective_s: float) -> bool:
        """Advance the clock by ``subjective_s`` (elapsed ticks / tick_hz) at the current
        rate; returns True when a curiosity goal is due."""
        self.clock_s += self.rate * subjective_s
        level = self.level
        if level < self._cfg.rearm:
            self.armed = True
        if level < self._cfg.threshold:
            return False
        last = self.last_goal_clock_s
        cfg = self._cfg
        due = (
            self.armed
            or (
                last is not None
                and self.idle_level >= cfg.threshold
                and self.clock_s - last >= cfg.idle_s
            )
            or (self.opportunity_level >= cfg.threshold and self.since_goal_s >= cfg.goal_retry_s)
        )
        if due:
            self.armed = False
            self.last_goal_clock_s = self.clock_s
            self.since_goal_s = 0.0
        return due

    def state(self) -> BoredomState:
        """Every attribute :class:`BoredomState` names, under the same name."""
        return BoredomState(**{f: getattr(self, f) for f in BoredomState.__struct_fields__})

    def load_state(self, st: BoredomState) -> None:
        for f in BoredomState.__struct_fields__:
            setattr(self, f, getattr(st, f))
