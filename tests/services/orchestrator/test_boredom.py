"""Boredom: the reconciled model's calibration, novelty resets, the entropy-excursion
rate, and curiosity goals naming the frontier (docs/orchestrator.md §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engs.services.orchestrator.boredom import Boredom, logit
from engs.services.orchestrator.events import CuriosityGoal
from engs.services.orchestrator.inputs import CycleInputs
from engs.shared.layout import Mode
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


# --- Opportunity cost: the Marginal Value Theorem (issue #12) ---------------------------


def _charnov(travel_s: float, tau_s: float = 5.0) -> float:
    """t* of g(t) = G(1 - e^{-t/τ}): g'(t*) = g(t*)/(T + t*), independent of G."""
    lo, hi = 1e-3, 100.0
    for _ in range(100):  # bisection: e^{-t/τ}(T + t)/τ - (1 - e^{-t/τ}) falls through 0
        mid = 0.5 * (lo + hi)
        if math.exp(-mid / tau_s) * (travel_s + mid) / tau_s > 1.0 - math.exp(-mid / tau_s):
            lo = mid
        else:
            hi = mid
    return lo


def _forage(
    travel_s: float, gain: float, patches: int, lumps_s: float = 0.0, warmup_s: float = 90.0
) -> list[float]:
    """A forager in patches of cumulative gain g(t) = G(1 - e^{-t/5}), paid each cycle
    (or in lumps every ``lumps_s``), with a novelty event on arrival; it leaves on the
    first curiosity goal after arriving, travels ``travel_s`` with no intake. Returns
    the residence times of ``patches`` patches entered after ``warmup_s`` (3 τ_R: R̄
    has learned the environment). No physics: the idle clock stands still, so only the
    opportunity cost can make it leave."""
    engs = make_engs(GLOBAL_ONLY)
    residence = []
    while len(residence) < patches:
        scored = engs.cycle * DT >= warmup_s
        k = 0
        while k * DT < 60.0:
            t = k * DT
            if lumps_s:
                due = k % round(lumps_s / DT) == 0
                r = gain * (math.exp(-t / 5.0) - math.exp(-(t + lumps_s) / 5.0)) if due else 0.0
            else:
                r = gain * (math.exp(-t / 5.0) - math.exp(-(t + DT) / 5.0))
            res = engs.step(CycleInputs(reward=r, novelty=(1.0,) if k == 0 else ()), None)
            k += 1
            if k > 1 and any(isinstance(e, CuriosityGoal) for e in res.events):
                break
        if scored:
            residence.append(k * DT)
        for _ in range(round(travel_s / DT)):
            engs.step(CycleInputs(), None)
    return residence


@pytest.mark.parametrize("travel_s", [1.0, 5.0, 20.0])
def test_patch_residence_follows_the_marginal_value_theorem(travel_s: float) -> None:
    """Residence (once R̄ has learned the environment) within 25 % of Charnov's t*
    (2.86 / 5.73 / 9.68 s), whatever the patch gain."""
    best = _charnov(travel_s)
    stays = {}
    for gain in (0.5, 2.0):
        r = _forage(travel_s, gain, patches=6)
        stays[gain] = float(np.mean(r))
        assert stays[gain] == pytest.approx(best, rel=0.25), (gain, r)
    assert stays[2.0] == pytest.approx(stays[0.5], rel=0.10)  # gain does not matter


def test_lumpy_intake_leaves_near_the_optimum_too() -> None:
    r = _forage(5.0, 1.0, patches=6, lumps_s=0.1)
    assert float(np.mean(r)) == pytest.approx(_charnov(5.0), rel=0.25)


def test_a_patch_poorer_than_the_average_is_left_at_once() -> None:
    """After rich patches (G = 2), a poor one (G = 0.25: its intake starts below R̄) is
    rejected within a second: the arrival restarts the intake estimate."""
    engs = make_engs(GLOBAL_ONLY)
    for _ in range(8):  # rich patches, left after 4 s each, 5 s travel
        for k in range(400):
            t = k * DT
            r = 2.0 * (math.exp(-t / 5.0) - math.exp(-(t + DT) / 5.0))
            engs.step(CycleInputs(reward=r, novelty=(1.0,) if k == 0 else ()), None)
        for _ in range(500):
            engs.step(CycleInputs(), None)
    left_at = None
    for k in range(1000):
        t = k * DT
        r = 0.25 * (math.exp(-t / 5.0) - math.exp(-(t + DT) / 5.0))
        res = engs.step(CycleInputs(reward=r, novelty=(1.0,) if k == 0 else ()), None)
        if any(isinstance(e, CuriosityGoal) for e in res.events):
            left_at = k * DT
            break
    assert left_at is not None and left_at < 1.0


def test_without_the_opportunity_cost_the_forager_does_not_leave() -> None:
    """Flip test: opportunity_gain 0 leaves only the idle clock, which needs physics
    ticks (600 s): no patch is left within 60 s."""
    engs = make_engs({**GLOBAL_ONLY, "orchestrator.boredom.opportunity_gain": 0.0})
    goals = 0
    for k in range(3000):
        t = (k % 1000) * DT
        r = math.exp(-t / 5.0) - math.exp(-(t + DT) / 5.0)
        res = engs.step(CycleInputs(reward=r), None)
        goals += any(isinstance(e, CuriosityGoal) for e in res.events)
    assert goals == 0
    assert engs.boredom.opportunity_level == 0.0


def test_opportunity_level_is_the_threshold_where_intake_meets_the_average() -> None:
    b = _boredom()
    b.observe_intake(0.0, 0.1)  # R̄ = 0.1/s; ρ relaxes towards 0
    b.intake_rate = 0.1
    assert b.opportunity_level == pytest.approx(0.85)
    b.intake_rate = 0.2  # twice the average: well below the threshold
    assert b.opportunity_level == pytest.approx(
        1 / (1 + math.exp(-(logit(0.85) - 4 * math.log(2))))
    )
    b.intake_rate = -0.5  # a net loss: as bored as it gets
    assert b.opportunity_level > 0.999
    b.reward_rate = 0.001  # below opportunity_min_rate: no economy to weigh
    assert b.opportunity_level == 0.0 and b.level == b.idle_level
