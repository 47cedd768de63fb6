"""The step as a whole: the published record, determinism, and exhaustion handling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.events import CausesChanged, LocksRevoked, NapEnded, NapStarted
from engs.services.orchestrator.gates import elasticity_gate, plasticity_gate, speed_gain
from engs.services.orchestrator.inputs import CycleInputs, OracleRequest, Stimulus
from engs.shared.layout import N_NT, Cause, Mode, state_dtype
from tests.services.orchestrator.helpers import FakeTelemetry, make_engs


def test_fill_state_writes_globals_gates_and_area_rows() -> None:
    engs = make_engs()
    tel = FakeTelemetry(engs)
    max_areas = engs.config.shm.max_areas
    out = np.full((), 7, state_dtype(max_areas))  # garbage everywhere
    engs.step(CycleInputs(reward=0.5, stimuli=(Stimulus(2, 3.0), Stimulus(2, 0.5))), tel.next())
    engs.fill_state(out)
    n = engs.n_areas
    assert out["n_areas"] == n == 4
    assert out["dopamine"] == engs.dopamine and engs.dopamine > 0.5
    assert out["serotonin"] == engs.serotonin
    assert out["norepinephrine"] == engs.norepinephrine
    assert out["atp_ratio"] == engs.atp_ratio and out["atp_reserve"] == engs.ledger.available_nmu
    assert out["boredom"] == pytest.approx(0.1, abs=1e-4)
    assert out["td_error"] == engs.td_error
    assert out["plasticity_gate"] == plasticity_gate(engs.dopamine, 0.5, 5.0)
    assert out["speed_gain"] == 1.0 + engs.norepinephrine**2
    assert out["relevance_gate"] == pytest.approx(0.6 - 0.6 * engs.norepinephrine)
    assert out["flags"] == 0 and out["priority"] == 7  # loop-owned: publish.stamp writes it
    # Per-area rows: the gates.py gates of each area's own effective levels (area_nt),
    # and the other modulators' multipliers 1 ± 0.5 tanh(5 (x - 0.5)) (docs/areas.md).
    assert engs.area_chem is not None
    x = engs.area_chem.x
    np.testing.assert_allclose(out["area_nt"][:n], x, rtol=1e-6)
    assert out["area_nt"].shape[1] == N_NT
    for a in range(n):
        da, sht, ne, oxt, tst, ha, orx = (float(v) for v in x[a])
        fields = ("area_plasticity", "area_elasticity", "area_speed", "area_damping",
                  "area_drive", "area_noise")  # fmt: skip
        row = {f: float(out[f][a]) for f in fields}
        assert row["area_plasticity"] == pytest.approx(plasticity_gate(da, 0.5, 5.0), rel=1e-6)
        assert row["area_elasticity"] == pytest.approx(elasticity_gate(sht, 0.5, 5.0), rel=1e-6)
        assert row["area_speed"] == pytest.approx(speed_gain(ne), rel=1e-6)
        assert row["area_damping"] == pytest.approx(1 - 0.5 * math.tanh(5 * (orx - 0.5)), rel=1e-6)
        # The drive: the histamine multiplier of the awake drive (1.0), through the area's
        # receptor response (activity scaling with NE's response gain, docs/areas.md §7a).
        u = np.zeros(n)
        u[a] = 1 + 0.5 * math.tanh(5 * (ha - 0.5))
        resp = np.zeros(n)
        chem = engs.area_chem
        chem.scaling.respond(u, resp, chem.effects.response_gain)
        assert row["area_drive"] == pytest.approx(resp[a], rel=1e-6)
        assert resp[a] == pytest.approx(u[a], rel=0.1)  # near calibration: about the input
        assert row["area_noise"] == pytest.approx(1 - 0.5 * math.tanh(5 * (oxt - 0.5)), rel=1e-6)
        stim = 3.5 * (1 + 0.5 * math.tanh(5 * (tst - 0.5))) if a == 2 else 0.0
        assert float(out["area_stimulus"][a]) == pytest.approx(stim, rel=1e-6)
    # Resting levels follow the innervation of projections.toml: dopamine is sparse in
    # sensory cortex, dense in the limbic system, so their plasticity differs.
    assert x[0, 0] < x[1, 0] < x[3, 0]
    assert out["area_plasticity"][0] < out["area_plasticity"][3]
    for field in ("area_plasticity", "area_stimulus", "area_noise", "area_nt"):
        assert not out[field][n:].any(), field  # rows beyond n_areas are zero
    # The stimulus is one-shot: gone in the next cycle's state.
    engs.step(CycleInputs(), tel.next())
    engs.fill_state(out)
    assert not out["area_stimulus"].any()


def test_fill_state_rejects_a_record_with_too_few_rows() -> None:
    engs = make_engs()
    with pytest.raises(ValueError, match="state record has 2 area rows, need 4"):
        engs.fill_state(np.zeros((), state_dtype(2)))


def _run(seed_inputs: int) -> dict[str, Any]:
    """A busy run: random rewards, stress, novelty, stimuli, alerts, locks, varying
    telemetry, a DMN report, oracle requests; returns every trajectory as float64."""
    engs = make_engs({"orchestrator.metabolism.capacity_nmu": 40_000.0})
    tel = FakeTelemetry(engs, metric_grad=(0.2, 0.1, 0.4, 0.3))
    rng = np.random.default_rng(seed_inputs)
    out = np.zeros((), state_dtype(engs.config.shm.max_areas))
    rows: list[list[float]] = []
    events: list[str] = []
    for i in range(3_000):
        rec = tel.next()
        rec["energy"] = 100.0 + 20.0 * rng.standard_normal()
        rec["entropy_bits"] = 10.0 + rng.random()
        inp = CycleInputs(
            reward=float(rng.normal()) if rng.random() < 0.05 else 0.0,
            stress=float(rng.random()) if rng.random() < 0.01 else None,
            novelty=(float(rng.random()),) if rng.random() < 0.01 else (),
            stimuli=(Stimulus(int(rng.integers(4)), 1.0),) if rng.random() < 0.02 else (),
            security_alert=int(rng.random() < 0.002),
            oracle=(OracleRequest(kind="mania", id=i),) if i % 700 == 0 else (),
        )
        if rng.random() < 0.02:
            lock = engs.try_reserve(float(rng.uniform(10, 3000)), "job")
            if lock is not None and rng.random() < 0.5:
                engs.commit(lock.id)
        res = engs.step(inp, rec)
        engs.fill_state(out)
        events += [type(e).__name__ for e in res.events]
        rows.append(
            [
                engs.dopamine, engs.serotonin, engs.norepinephrine, engs.atp_ratio,
                engs.cortisol, engs.boredom.level, engs.td_error, engs.td_error_energy,
                float(out["plasticity_gate"]), float(out["area_speed"][0]),
            ]
        )  # fmt: skip
    batch = engs.dream_batch(64)
    return {
        "traj": np.array(rows, dtype=np.float64),
        "weights": engs.critic.weights.copy(),
        "events": events,
        "slots": batch.slots,
    }


def test_two_runs_with_the_same_seed_are_bit_identical() -> None:
    a, b = _run(5), _run(5)
    assert a["traj"].dtype == np.float64
    assert np.array_equal(a["traj"], b["traj"])  # exact, not approximate
    assert a["traj"].tobytes() == b["traj"].tobytes()
    assert np.array_equal(a["weights"], b["weights"])
    assert a["events"] == b["events"] and "NapStarted" in a["events"]
    assert np.array_equal(a["slots"], b["slots"])
    c = _run(6)  # different inputs: a different run (the test can fail)
    assert not np.array_equal(a["traj"], c["traj"])


def test_a_big_reservation_exhausts_atp_raises_and_revokes() -> None:
    engs = make_engs()
    tel = FakeTelemetry(engs)
    lock = engs.try_reserve(0.97 * 5e6, "self-improvement")
    assert lock is not None
    res = engs.step(CycleInputs(), tel.next())
    assert res.cause_set == Cause.ATP_EXHAUSTED
    names = [type(e) for e in res.events]
    assert NapStarted in names and LocksRevoked in names and CausesChanged in names
    revoked = next(e for e in res.events if isinstance(e, LocksRevoked))
    assert revoked.refund_nmu == 0.97 * 5e6 and revoked.causes == int(Cause.ATP_EXHAUSTED)
    assert not engs.commit(lock.id)
    out = np.zeros((), state_dtype(engs.config.shm.max_areas))
    engs.fill_state(out)
    assert engs.causes and out["flags"] & Mode.NAP
    # The refund lifted ATP above the clear level: cleared on the next cycle; the nap
    # the exhaustion forced still runs its minimum 30 s.
    res = engs.step(CycleInputs(), tel.next())
    assert res.causes == 0 and engs.nap.napping
    for _ in range(2_998):
        assert not any(isinstance(e, NapEnded) for e in engs.step(CycleInputs(), tel.next()).events)
    assert any(isinstance(e, NapEnded) for e in engs.step(CycleInputs(), tel.next()).events)
    assert engs.cycle == 3_001


def test_engs_constructor_uses_the_reference_host_when_calibration_is_off() -> None:
    from tests.services.orchestrator.helpers import make_config

    cfg = make_config({"orchestrator.metabolism.calibrate": False})
    engs = Engs(cfg)
    assert engs.calibration.factor == 1.0 and engs.calibration.cpu is None
