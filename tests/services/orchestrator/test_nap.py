"""A full nap cycle: ATP runs down, the nap starts below 15 %, reservations are denied,
the drive drops, ATP recharges at the configured rate, and waking at 90 % gives
serotonin its +0.2 (docs/orchestrator.md §7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engs.services.orchestrator.events import MetabolicWarning, NapEnded, NapStarted
from engs.services.orchestrator.inputs import CycleInputs
from engs.services.orchestrator.nap import NapController
from engs.shared.layout import Mode, state_dtype
from tests.services.orchestrator.helpers import DECOUPLED, FakeTelemetry, make_config, make_engs

SMALL = {
    **DECOUPLED,
    "orchestrator.metabolism.capacity_nmu": 20_000.0,  # ~10 s awake at 1600 NMU/s
    "orchestrator.nap.recharge_per_s": 0.05,  # 15 % → 90 % in ~15 s
    "orchestrator.nap.min_duration_s": 0.0,
}


def test_controller_hysteresis() -> None:
    nap = NapController(make_config().orchestrator.nap)
    assert nap.update(0.16, 1.0) is None
    assert nap.update(0.1499, 2.0) == "start"
    assert nap.update(0.5, 3.0) is None  # still napping inside the band
    assert nap.update(0.95, 31.9) is None  # recharged, but not 30 s asleep yet
    assert nap.update(0.9, 32.0) == "end"
    assert nap.update(0.5, 33.0) is None  # awake inside the band


def test_full_nap_cycle() -> None:
    engs = make_engs(SMALL)
    tel = FakeTelemetry(engs)
    out = np.zeros((), state_dtype(engs.config.shm.max_areas))
    dt = engs.dt

    # Awake: run down; each cycle costs 16 NMU and resynthesis returns λ_A (1 - A).
    started = None
    for _ in range(5_000):
        res = engs.step(CycleInputs(), tel.next())
        started = next((e for e in res.events if isinstance(e, NapStarted)), None)
        if started:
            break
    assert started is not None
    a_entry = started.atp_ratio
    assert 0.15 - 16.0 / 20_000 <= a_entry < 0.15
    assert engs.atp_ratio == a_entry
    # Awake time matches the decoupled ATP equation integrated cycle by cycle.
    a, cycles = 1.0, 0
    while a >= 0.15:
        a = 1.0 + math.exp(-1e-4 * dt) * (a - 1.0) - 16.0 / 20_000
        cycles += 1
    assert engs.cycle == cycles
    assert a == pytest.approx(a_entry, abs=1e-12)

    # Napping: reservations denied with a warning, drive lowered, dream noise on.
    assert engs.try_reserve(1.0, "during nap") is None
    engs.fill_state(out)
    assert out["flags"] & Mode.NAP
    # (the area model multiplies the base drive and noise by each area's histamine and
    # oxytocin effects and passes the drive through its receptors' response, docs/areas.md
    # §7a; undo them to see the nap's base values)
    assert engs.area_chem is not None
    fx, sc = engs.area_chem.effects, engs.area_chem.scaling
    slope = sc.rho0 * float(sc.density[0]) * fx.response_gain[0] / sc.a_max
    u = math.atanh(float(out["area_drive"][0]) / sc.a_max) / slope
    assert u == pytest.approx(0.2 * fx.drive_gain[0], rel=1e-5)
    assert out["area_noise"][0] == pytest.approx((2.0 - 1.5 * engs.dopamine) * fx.noise_gain[0])
    res = engs.step(CycleInputs(), tel.next())
    warnings = [e for e in res.events if isinstance(e, MetabolicWarning)]
    assert len(warnings) == 1 and warnings[0].reason == "napping"
    clock = engs.boredom.clock_s
    nap_start_cycle = engs.cycle - 1

    ended = None
    serotonin_before = engs.serotonin
    for _ in range(5_000):
        serotonin_before = engs.serotonin
        res = engs.step(CycleInputs(), tel.next())
        ended = next((e for e in res.events if isinstance(e, NapEnded)), None)
        if ended:
            break
    assert ended is not None
    # Recharge: +0.05/s x 10 ms = 0.0005 per cycle, no costs charged while napping.
    nap_cycles = engs.cycle - nap_start_cycle
    assert nap_cycles == math.ceil((0.9 - a_entry) / 0.0005 - 1e-9)
    assert ended.duration_s == pytest.approx(nap_cycles * dt)
    assert ended.atp_ratio >= 0.9
    assert engs.boredom.clock_s == clock  # the clock paused while asleep
    # Waking: serotonin +0.2 (S sat at its baseline, so exactly 0.7).
    assert serotonin_before == 0.5
    assert engs.serotonin == pytest.approx(0.7, abs=1e-15)
    assert not engs.nap.napping
    lock = engs.try_reserve(1.0, "after nap")
    assert lock is not None and engs.commit(lock.id)
    engs.fill_state(out)
    assert not out["flags"] & Mode.NAP
    fx, sc = engs.area_chem.effects, engs.area_chem.scaling
    slope = sc.rho0 * float(sc.density[0]) * fx.response_gain[0] / sc.a_max
    u = math.atanh(float(out["area_drive"][0]) / sc.a_max) / slope
    assert u == pytest.approx(1.0 * fx.drive_gain[0], rel=1e-5)
    assert out["area_noise"][0] == pytest.approx(1.0 * fx.noise_gain[0])


def test_dream_batch_during_a_nap() -> None:
    engs = make_engs(SMALL)
    tel = FakeTelemetry(engs)
    while not engs.nap.napping:
        engs.step(CycleInputs(reward=0.01), tel.next())
    batch = engs.dream_batch(32)
    assert batch.features.shape == (32, 2 + engs.n_areas)  # the compact summary of φ
    assert batch.noise_temperature == pytest.approx(2.0 - 1.5 * engs.dopamine)
    assert batch.beta == engs.norepinephrine
    assert np.all(batch.cycle >= 1) and np.all(batch.cycle <= engs.cycle)
