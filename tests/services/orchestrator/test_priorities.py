"""CRITICAL causes with hysteresis, and oracle requests applied exactly once."""

from __future__ import annotations

import math

import pytest

from engs.services.orchestrator.events import CausesChanged, OracleApplied
from engs.services.orchestrator.inputs import CycleInputs, OracleRequest
from engs.services.orchestrator.priorities import CauseMonitor
from engs.shared.layout import Cause
from tests.services.orchestrator.helpers import DECOUPLED, make_config, make_engs


def test_atp_exhausted_hysteresis() -> None:
    m = CauseMonitor(make_config().orchestrator.priorities)
    assert m.update(0.06, 0.3, True) == Cause(0)
    assert m.update(0.049, 0.3, True) == Cause.ATP_EXHAUSTED
    assert m.update(0.07, 0.3, True) == Cause.ATP_EXHAUSTED  # inside the band: held
    assert m.update(0.10, 0.3, True) == Cause(0)


def test_panic_hysteresis_and_unstable() -> None:
    m = CauseMonitor(make_config().orchestrator.priorities)
    assert m.update(1.0, 0.951, True) == Cause.PANIC
    assert m.update(1.0, 0.9, False) == Cause.PANIC | Cause.UNSTABLE
    assert m.update(1.0, 0.849, True) == Cause(0)


def test_sustained_stress_raises_panic_once_and_clears_after() -> None:
    engs = make_engs()
    raised_at = []
    for i in range(3_000):
        res = engs.step(CycleInputs(stress=1.0 if i < 2_000 else None), None)
        for e in res.events:
            if isinstance(e, CausesChanged) and e.raised:
                raised_at.append((i, e.raised))
    assert [r for _, r in raised_at] == [int(Cause.PANIC)]
    assert engs.causes == Cause(0)  # stress released, N back below 0.85
    assert engs.norepinephrine < 0.85


def test_stress_is_latest_wins_held_and_decaying() -> None:
    engs = make_engs(DECOUPLED)
    engs.step(CycleInputs(stress=0.8), None)
    assert engs.stress == 0.8
    engs.step(CycleInputs(), None)
    assert engs.stress == pytest.approx(0.8 * math.exp(-0.01 / 5.0))
    engs.step(CycleInputs(stress=0.1), None)
    assert engs.stress == 0.1  # a lower report replaces, it does not add
    # Cortisol integrates the held stress (τ = 60 s).
    alpha = 1.0 - math.exp(-0.01 / 60.0)
    c = 0.0
    for s in (0.8, 0.8 * math.exp(-0.01 / 5.0), 0.1):
        c += alpha * (s - c)
    assert engs.cortisol == pytest.approx(c, rel=1e-12)


def test_oracle_requests_apply_exactly_once() -> None:
    engs = make_engs(DECOUPLED)
    engs.dopamine = 0.0
    req = OracleRequest(kind="anhedonia", id=7)
    res = engs.step(CycleInputs(oracle=(req, req)), None)
    assert [e for e in res.events if isinstance(e, OracleApplied)] == [
        OracleApplied(t_s=0.01, kind="anhedonia", request_id=7)
    ]
    # D from 0: decay toward 0.5, plus the emergency impulse 0.5, once.
    assert engs.dopamine == pytest.approx(0.5 - math.exp(-0.15 * 0.01) * 0.5 + 0.5, abs=1e-15)
    d = engs.dopamine
    res = engs.step(CycleInputs(oracle=(req,)), None)  # a replayed request: ignored
    assert not res.events
    assert engs.dopamine == pytest.approx(0.5 + math.exp(-0.15 * 0.01) * (d - 0.5), abs=1e-15)
    s = engs.serotonin
    engs.step(CycleInputs(oracle=(OracleRequest(kind="mania", id=1),)), None)
    assert engs.serotonin == pytest.approx(s + 0.3, abs=1e-15)


def test_serotonin_events() -> None:
    engs = make_engs(DECOUPLED)  # S at its baseline stays there but for the events
    engs.step(CycleInputs(goal_complete=2), None)
    assert engs.serotonin == pytest.approx(0.5 + 2 * 0.05, abs=1e-15)
    engs.serotonin = 0.5
    engs.step(CycleInputs(security_alert=1), None)
    assert engs.serotonin == pytest.approx(0.0, abs=1e-15)
