"""The area model inside the ENGS: the published per-area rows, determinism and exact
checkpoint continuation across a nap with consolidation, refusals, the disabled mode,
the replay buffer's state, the DMN node, and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from engs.services.orchestrator.areas.audit import CAPPED
from engs.services.orchestrator.areas.projections import load_file
from engs.services.orchestrator.areas.receptors import node_bucket
from engs.services.orchestrator.checkpoint import CheckpointError
from engs.services.orchestrator.dream import DreamBuffer
from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.inputs import CycleInputs, DmnReport, InputAccumulator, Stimulus
from engs.shared import messages
from engs.shared.layout import N_NT, state_dtype
from tests.services.orchestrator.areas.helpers import make_model, rest_step
from tests.services.orchestrator.helpers import FakeTelemetry, make_engs

#: Small ATP and short naps: a nap (with dream batches and consolidation) in ~13 s.
NAPPY: dict[str, Any] = {
    "orchestrator.metabolism.capacity_nmu": 20_000.0,
    "orchestrator.nap.min_duration_s": 1.0,
    "orchestrator.nap.recharge_per_s": 0.5,
    "orchestrator.areas.consolidation.every_cycles": 20,
}


def _uniform_projections(extra_da_to_a: float = 0.0) -> list[dict[str, Any]]:
    """Every nucleus projects to every area with weight 1, plus optional dopamine."""
    out: list[dict[str, Any]] = [
        {"source": n.name, "target": "*", "weight": 1.0} for n in load_file().nucleus
        if n.name not in ("snc", "mrn")
    ]  # fmt: skip
    if extra_da_to_a:
        out.append({"source": "vta", "target": "a", "weight": extra_da_to_a})
    return out


def _rows(engs: Engs, cycles: int) -> np.ndarray[Any, Any]:
    tel = FakeTelemetry(engs)
    out = np.zeros((), state_dtype(engs.config.shm.max_areas))
    for _ in range(cycles):
        engs.step(CycleInputs(), tel.next())
    engs.fill_state(out)
    return out


@pytest.mark.parametrize("extra", [0.0, 0.4])
def test_published_rows_differ_between_areas_exactly_when_projections_do(extra: float) -> None:
    engs = make_engs(
        {
            "physics.areas": ["a", "b"],
            "orchestrator.areas.projections": _uniform_projections(extra),
            # no random initial weights: two areas with the same inputs are the same
            "orchestrator.areas.homeostasis.weight_init_std": 0.0,
        }
    )
    out = _rows(engs, 200)
    a, b = out["area_nt"][0], out["area_nt"][1]
    if extra == 0.0:  # the control: identical projections, identical rows
        for f in ("area_nt", "area_plasticity", "area_elasticity", "area_speed", "area_drive",
                  "area_damping", "area_noise"):  # fmt: skip
            assert np.array_equal(out[f][0], out[f][1]), f
    else:  # area a gets 1.4x the dopamine: its level and its plasticity are higher
        assert a[0] == pytest.approx(1.4 * b[0], rel=0.05)
        assert out["area_plasticity"][0] > out["area_plasticity"][1] + 0.5
        # the other modulators differ only through the learning's shared context
        np.testing.assert_allclose(a[1:], b[1:], atol=1e-3)


def _busy_run(engs: Engs, cycles: int, seed: int = 3) -> tuple[list[bytes], list[str]]:
    """Random rewards, stress, stimuli, DMN reports with nodes; returns each cycle's
    published state (bytes) and the event names."""
    rng = np.random.default_rng(seed)
    tel = FakeTelemetry(engs)
    out = np.zeros((), state_dtype(engs.config.shm.max_areas))
    states, events = [], []
    for i in range(cycles):
        rec = tel.next()
        rec["area_activity"][:4] = rng.uniform(0.5, 2.0, 4)
        dmn = None
        if i % 37 == 0:
            dmn = DmnReport(*(float(v) for v in rng.uniform(0, 1, 5)), node=f"3.{i % 5}")
        inp = CycleInputs(
            reward=float(rng.normal()) if rng.random() < 0.05 else 0.0,
            stress=float(rng.random()) if rng.random() < 0.01 else None,
            stimuli=(Stimulus(int(rng.integers(4)), 1.0),) if rng.random() < 0.02 else (),
            dmn=dmn,
        )
        res = engs.step(inp, rec)
        engs.fill_state(out)
        states.append(out.tobytes())
        events += [type(e).__name__ for e in res.events]
    return states, events


def test_two_runs_with_the_same_seeds_are_identical_and_another_seed_is_not() -> None:
    a, b = make_engs(NAPPY), make_engs(NAPPY)
    sa, ea = _busy_run(a, 1_400)
    sb, eb = _busy_run(b, 1_400)
    assert "AreaConsolidated" in ea and ea == eb
    assert sa == sb
    assert a.state_dict() == b.state_dict()
    c = make_engs(NAPPY | {"orchestrator.areas.seed": 1})
    sc, _ = _busy_run(c, 300)
    assert sc != sa[:300]  # the area seed matters (the test can fail)


def test_a_checkpoint_continues_the_run_exactly_across_a_nap(tmp_path: Path) -> None:
    """Saved mid-run with a part-filled replay buffer, restored into a fresh ENGS: both
    continue through a nap, dream batches and consolidation, byte for byte."""
    a = make_engs(NAPPY)
    _busy_run(a, 500, seed=4)
    assert len(a.replay) > 0
    path = tmp_path / "ckpt.json"
    a.save_checkpoint(str(path))
    b = make_engs(NAPPY)
    b.load_checkpoint(str(path))
    assert b.state_dict() == a.state_dict()
    sa, ea = _busy_run(a, 1_000, seed=5)
    sb, eb = _busy_run(b, 1_000, seed=5)
    assert "AreaConsolidated" in ea and "NapEnded" in ea
    assert ea == eb and sa == sb
    assert a.state_dict() == b.state_dict()


def test_checkpoints_of_another_area_model_are_refused(tmp_path: Path) -> None:
    engs = make_engs()
    other = make_engs({"orchestrator.areas.projections": _uniform_projections()})
    path = tmp_path / "other.json"
    other.save_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="taken with another projection graph"):
        engs.load_checkpoint(str(path))
    plain = make_engs({"orchestrator.areas.enabled": False})
    plain.save_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="snapshot has no area state, this ENGS runs"):
        engs.load_checkpoint(str(path))
    engs.save_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="has an area state, this ENGS does not run"):
        plain.load_checkpoint(str(path))
    broken = msgspec.structs.replace(
        engs.state_dict(),
        replay=msgspec.structs.replace(engs.replay.state(), capacity=7),
    )
    with pytest.raises(CheckpointError, match="replay state of capacity 7"):
        engs.load_state_dict(broken)


def test_without_the_area_model_every_area_gets_the_global_coefficients() -> None:
    engs = make_engs({"orchestrator.areas.enabled": False})
    assert engs.area_chem is None
    out = _rows(engs, 5)
    n = engs.n_areas
    np.testing.assert_allclose(out["area_plasticity"][:n], out["plasticity_gate"], rtol=1e-7)
    np.testing.assert_allclose(out["area_speed"][:n], out["speed_gain"], rtol=1e-7)
    assert out["area_damping"][:n].tolist() == [1.0] * n
    np.testing.assert_allclose(out["area_nt"][:n, 0], engs.dopamine, rtol=1e-7)
    assert not out["area_nt"][:n, 3:].any()
    st = engs.state_dict()
    assert st.areas is None and st.replay is not None


def test_the_replay_buffer_state_round_trips_bytes_exactly() -> None:
    a = DreamBuffer(16, 3, 2, 1e-3)
    rng = np.random.default_rng(1)
    for i in range(21):  # wraps around
        a.add(i, rng.normal(size=3), 0.1 * i, float(rng.normal()), (0.5, 0.5, 0.3, 0.9),
              rng.uniform(size=2), (0.0, 0.1, 0.0, 1.0, 0.0))  # fmt: skip
    b = DreamBuffer(16, 3, 2, 1e-3)
    b.load_state(msgspec.json.decode(msgspec.json.encode(a.state()), type=type(a.state())))
    assert len(b) == 16 and b.state() == a.state()
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(a.sample(8, 0.4, 1.0, r1).cycle, b.sample(8, 0.4, 1.0, r2).cycle)
    with pytest.raises(ValueError, match="3 features"):
        DreamBuffer(16, 4, 2, 1e-3).load_state(a.state())


def test_the_dmn_node_reaches_the_area_context() -> None:
    acc = InputAccumulator(["sensory", "motor", "association", "limbic"])
    acc.add_signal(
        messages.Dmn(
            coherence=0.4, utility=0.1, uncertainty=0.3, safety_penalty=0.0,
            calibration_gap=0.2, node="3.11",
        )
    )  # fmt: skip
    inputs = acc.take()
    assert inputs.dmn is not None and inputs.dmn.node == "3.11"
    engs = make_engs()
    engs.step(inputs, None)
    chem = engs.area_chem
    assert chem is not None and chem._bucket == node_bucket("3.11", 8)
    hot = chem.ctx[:, 3 * N_NT + 4 + 5 :]
    assert np.all(hot.argmax(axis=1) == node_bucket("3.11", 8))


def test_the_audit_log_is_bounded_rotating_and_sampled() -> None:
    m = make_model(
        {"orchestrator.areas.audit.capacity": 16, "orchestrator.areas.audit.every_cycles": 2,
         "orchestrator.areas.audit.per_sample": 3}
    )  # fmt: skip
    e_cap = m.graph.edge_names.index("lc->motor")
    m.kin.cap_edge[e_cap, 2] = 0.5 * m.sent_rest[e_cap, 2]  # hits its cap every cycle
    for i in range(20):
        rest_step(m, i)
    rec = m.audit.records()
    assert len(rec) == 16 and m.audit.total > 16  # bounded; the oldest were overwritten
    assert np.all(np.diff(rec["cycle"]) >= 0) and rec["cycle"][-1] == 19
    capped = rec[(rec["edge"] == e_cap) & (rec["nt"] == 2)]
    assert np.all(capped["flags"] & CAPPED)
    assert set(capped["cycle"]) >= set(range(15, 20))  # logged every cycle, not sampled
    sampled = rec[(rec["flags"] & CAPPED) == 0]
    assert len(sampled) and np.all(sampled["cycle"] % 2 == 0)  # every other cycle
    # a record is the transfer of its cycle
    last = rec[-1]
    assert last["cycle"] == 19
    assert float(last["sent"]) == pytest.approx(float(m.flows.sent[last["edge"], last["nt"]]))
    assert m.kin.mask[sampled["edge"], sampled["nt"]].all()  # only carried transfers
