"""Boredom: the reconciled model's calibration, novelty resets, the entropy-excursion
rate, and curiosity goals naming the frontier (docs/orchestrator.md §5)."""

from __future__ import annotations

import math

import pytest

from services.orchestrator.boredom import Boredom, logit
from services.orchestrator.events import CuriosityGoal
from services.orchestrator.inputs import CycleInputs
from shared.layout import Mode
from tests.services.orchestrator.helpers import (
    GLOBAL_ONLY,
    FakeTelemetry,
    make_config,
    make_engs,
)

DT = 0.01


def _boredom(**values: float) -> Boredom:
    cfg = make_config({f"orchestrator.boredom.{k}": v for k, v in values.items()})
    return Boredom(cfg.orchestrator.boredom, DT)


def test_calibration_is_derived_from_the_two_boundary_conditions() -> None:
    b = _boredom()
    # GAP-036: k = (ln(0.85/0.15) + ln 9) / 600, T_half = ln 9 / k.
    k = (math.log(0.85 / 0.15) + math.log(9.0)) / 600.0
    assert b.k == pytest.approx(k, rel=1e-15)
    assert b.k == pytest.approx(0.00656, abs=1e-5)  # the seed's rounded figure
    assert b.t_half == pytest.approx(math.log(9.0) / k, rel=1e-15)
    assert b.t_half == pytest.approx(335.3, abs=0.1)
    assert b.level_at(0.0) == pytest.approx(0.1, rel=1e-12)
    assert b.level_at(600.0) == pytest.approx(0.85, rel=1e-12)
    # Bounded accumulation (AUTO-04): dB/du = k B (1 - B) ≤ k/4 everywhere.
    slopes = [(b.level_at(u + 1e-3) - b.level_at(u)) / 1e-3 for u in range(0, 2000, 7)]
    assert max(slopes) <= b.k / 4 * (1 + 1e-6)


def test_the_threshold_choice_moves_only_k() -> None:
    b = _boredom(threshold=0.8)
    assert b.level_at(600.0) == pytest.approx(0.8, rel=1e-12)
    assert b.k == pytest.approx((logit(0.8) - logit(0.1)) / 600.0)


def test_idle_engs_crosses_the_threshold_after_600_s_of_ticks() -> None:
    """60 000 cycles of a static field (10 physics ticks each at 1 kHz): one curiosity
    goal, at 600 s ± 1 %, naming the area with the largest metric gradient."""
    engs = make_engs(GLOBAL_ONLY)
    tel = FakeTelemetry(engs, entropy_bits=11.5, metric_grad=(0.1, 0.7, 0.3, 0.7))
    goals: list[tuple[float, CuriosityGoal]] = []
    tel_s = 0.0
    for _ in range(62_000):
        rec = tel.next()
        res = engs.step(CycleInputs(), rec)
        tel_s = int(rec["tick"]) / 1000.0
        goals += [(tel_s, e) for e in res.events if isinstance(e, CuriosityGoal)]
    assert len(goals) == 1
    t, goal = goals[0]
    # Subjective time counts from the first record (the reference tick).
    assert t - 0.01 == pytest.approx(600.0, rel=0.01)
    assert t - 0.01 == pytest.approx(600.0, abs=0.02)  # in fact within a cycle or two
    assert goal.area == 1 and goal.area_name == "motor"  # first of the tied maxima
    assert goal.metric_grad == pytest.approx(0.7)
    assert goal.boredom >= 0.85
    assert engs.flags & Mode.CURIOSITY
    assert tel_s > 600.0


def test_no_ticks_no_boredom() -> None:
    """Subjective time is physics ticks (GAP-036): a stalled physics is not idling."""
    engs = make_engs()
    tel = FakeTelemetry(engs)
    rec = tel.next()
    for _ in range(1000):
        engs.step(CycleInputs(), rec)  # the same record: the tick does not move
    assert engs.boredom.clock_s == 0.0


def test_full_novelty_resets_and_partial_novelty_buys_time() -> None:
    b = _boredom()
    b.advance(400.0)
    before = b.level
    relief = b.novelty([0.2, 0.3])  # partial: 10 s per entropy unit
    assert b.clock_s == pytest.approx(400.0 - 10.0 * 0.5)
    assert relief == pytest.approx(before - b.level)
    assert relief > 0.0
    relief = b.novelty([0.3, 0.51])  # one of them > 0.5: full reset
    assert b.clock_s == 0.0
    assert b.level == pytest.approx(0.1)
    b.advance(3.0)
    b.novelty([0.5])  # exactly 0.5 is partial; the clock never goes below 0
    assert b.clock_s == 0.0


def test_novelty_relief_is_paid_as_intrinsic_reward() -> None:
    engs = make_engs({"orchestrator.dopamine.value_model": "energy"})
    engs.boredom.advance(500.0)
    relief = engs.boredom.level - 0.1
    engs.step(CycleInputs(novelty=(0.9,)), None)
    assert engs.td_error_energy == pytest.approx(relief, rel=1e-12)


def test_entropy_excursion_slows_the_clock() -> None:
    b = _boredom()
    n = 4096  # log2 n = 12 bits
    assert b.observe_entropy(8.0, 0.0, n) == 1.0  # first reading sets the baseline
    # 0.6 bits above the baseline with a 0.1-bit standard error (2σ ignored): x = 0.4/12.
    rate = b.observe_entropy(8.6, 0.1, n)
    assert rate == pytest.approx(1.0 - math.tanh(20.0 * 0.4 / 12.0))
    b.advance(10.0)
    assert b.clock_s == pytest.approx(10.0 * rate)
    # Within the estimator's noise: no excursion.
    b2 = _boredom()
    b2.observe_entropy(8.0, 0.0, n)
    assert b2.observe_entropy(8.15, 0.1, n) == 1.0


def test_a_goal_per_crossing_then_one_per_idle_period() -> None:
    b = _boredom()
    assert not b.advance(599.0)
    assert b.advance(1.5)  # crossed
    assert not b.advance(100.0)  # still bored, already asked
    assert b.advance(500.0)  # another 600 s unanswered: ask again
    b.novelty([0.9])
    assert not b.advance(100.0)
    assert b.advance(500.0)  # a new episode after the reset
