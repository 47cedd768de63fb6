"""Naps: when ATP runs low, stop taking on work and recharge (seed 003 §2.2, §8.3).

Rules (docs/orchestrator.md §7), evaluated once per cycle on the ATP ratio after that
cycle's metabolism:

* **enter** when ATP < ``enter_below`` (0.15, seed §8.3 "If ATP < 15% ... enter_nap()").
* While napping: every reservation is denied (METABOLIC_WARNING, reason "napping":
  "reject all external queries"); continuous costs are not charged and ATP rises at
  the net rate ``recharge_per_s`` (0.005 /s: 15 % → 90 % in 150 s) — the cost of
  keeping the field alive in sleep is folded into that net rate, so a nap always
  ends; the published drive drops to ``nap_drive`` and the noise becomes the
  dream-weave temperature set by dopamine (§8.1); the boredom clock pauses.
* **leave** when ATP ≥ ``exit_at`` (0.9) and the nap has lasted ``min_duration_s``
  (30 s). The band between the two thresholds is the hysteresis that keeps the system
  from flickering in and out of sleep; the minimum duration keeps a nap that a
  revocation refund made unnecessary from ending after one cycle (GAP-022: on
  revocation "force Nap state"; the seed's naps exist to consolidate). On leaving,
  serotonin gets the seed's +0.2 (§4.3: "sleep consolidates memory and restores
  structural stiffness").

Writer and reader: the control cycle.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from engs.shared.config import NapConfig


class NapState(msgspec.Struct, frozen=True):
    napping: bool
    started_s: float


class NapController:
    """The nap state machine (awake ↔ napping) with hysteresis."""

    def __init__(self, cfg: NapConfig) -> None:
        self._cfg = cfg
        self.napping = False
        self.started_s = 0.0

    def update(self, atp_ratio: float, now_s: float) -> Literal["start", "end"] | None:
        """Apply the rules to this cycle's ATP ratio; returns the transition, if any."""
        if not self.napping and atp_ratio < self._cfg.enter_below:
            self.napping = True
            self.started_s = now_s
            return "start"
        slept = now_s - self.started_s
        if self.napping and atp_ratio >= self._cfg.exit_at and slept >= self._cfg.min_duration_s:
            self.napping = False
            return "end"
        return None

    def state(self) -> NapState:
        return NapState(napping=self.napping, started_s=self.started_s)

    def load_state(self, st: NapState) -> None:
        self.napping = st.napping
        self.started_s = st.started_s
