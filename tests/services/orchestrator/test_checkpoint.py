"""Checkpoints: an exact round trip, and atomicity under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engs.services.orchestrator.checkpoint import CheckpointError, load_checkpoint, write_atomic
from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.inputs import CycleInputs, DmnReport, Stimulus
from engs.services.orchestrator.snapshot import VERSION, EngsSnapshot
from tests.services.orchestrator.helpers import FakeTelemetry, make_engs

ROOT = Path(__file__).resolve().parents[3]


def _inputs(seed: int, n: int) -> list[CycleInputs]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(
            CycleInputs(
                reward=float(rng.normal()) if rng.random() < 0.05 else 0.0,
                stress=float(rng.random()) if rng.random() < 0.02 else None,
                novelty=(float(rng.random()),) if rng.random() < 0.02 else (),
                stimuli=(Stimulus(int(rng.integers(4)), 2.0),) if rng.random() < 0.03 else (),
                dmn=DmnReport(0.5, 0.1 * i % 1, 0.3, 0.0, 0.2) if i % 97 == 0 else None,
            )
        )
    return out


def _trajectory(
    engs: Engs, tel: FakeTelemetry, inputs: list[CycleInputs]
) -> tuple[np.ndarray, list[str]]:
    rows, events = [], []
    for inp in inputs:
        tel.record["energy"] = 100.0 + (engs.cycle % 37)
        res = engs.step(inp, tel.next())
        events += [type(e).__name__ for e in res.events]
        levels = (engs.dopamine, engs.serotonin, engs.norepinephrine, engs.atp_ratio)
        slow = (engs.cortisol, engs.boredom.level, engs.td_error)
        rows.append([*levels, *slow, *engs.critic.weights, *engs.dmn_metrics])
    return np.array(rows), events


def test_round_trip_continues_the_run_exactly(tmp_path: Path) -> None:
    values = {"orchestrator.metabolism.capacity_nmu": 20_000.0}  # naps after ~10 s
    a = make_engs(values)
    tel_a = FakeTelemetry(a)
    _trajectory(a, tel_a, _inputs(1, 700))
    lock = a.try_reserve(123.0, "open across the checkpoint")
    assert lock is not None
    path = tmp_path / "engs.ckpt"
    a.save_checkpoint(str(path))

    b = make_engs(values)
    b.load_checkpoint(str(path))
    assert b.state_dict() == a.state_dict()
    tel_b = FakeTelemetry(b)
    tel_b.record["tick"] = tel_a.record["tick"]
    rest = _inputs(2, 800)
    (ta, ea), (tb, eb) = _trajectory(a, tel_a, rest), _trajectory(b, tel_b, rest)
    assert "NapStarted" in ea and ea == eb  # the continuation crosses a nap
    assert ta.tobytes() == tb.tobytes()
    assert b.commit(lock.id) and a.commit(lock.id)


def test_snapshot_is_plain_msgspec_data() -> None:
    engs = make_engs()
    engs.step(CycleInputs(reward=1.0), None)
    st = engs.state_dict()
    for enc, dec in ((msgspec.json.encode, msgspec.json.decode),
                     (msgspec.msgpack.encode, msgspec.msgpack.decode)):  # fmt: skip
        assert dec(enc(st), type=EngsSnapshot) == st
    builtins = msgspec.to_builtins(st)
    assert builtins["critic"]["weights"] == engs.critic.weights.tolist()
    assert builtins["calibration"]["reference_score"] == 0.25


def test_the_levels_and_telemetry_memory_are_the_engs_state_and_snapshots_copy_them() -> None:
    """The step evolves ``engs.levels`` / ``engs.memory`` themselves (the public names
    read and write through to them); a snapshot holds copies, and a restore adopts
    copies, so neither side moves with the other afterwards."""
    engs = make_engs()
    tel = FakeTelemetry(engs)
    engs.step(CycleInputs(reward=1.0, stress=0.4), tel.next())
    assert engs.dopamine == engs.levels.dopamine and engs.stress == 0.4
    engs.serotonin = 0.25
    assert engs.levels.serotonin == 0.25
    st = engs.state_dict()
    taken = msgspec.msgpack.encode(st)
    assert st.levels == engs.levels and st.levels is not engs.levels
    assert st.telemetry == engs.memory and st.telemetry is not engs.memory
    engs.step(CycleInputs(reward=1.0), tel.next())
    assert st.levels != engs.levels and msgspec.msgpack.encode(st) == taken
    other = make_engs()
    other.load_state_dict(st)
    assert other.levels == st.levels and other.levels is not st.levels
    assert other.memory == st.telemetry and other.memory is not st.telemetry
    other.step(CycleInputs(reward=1.0), None)
    assert msgspec.msgpack.encode(st) == taken  # the restored ENGS writes into its own


def test_unusable_checkpoints_are_refused(tmp_path: Path) -> None:
    engs = make_engs()
    with pytest.raises(FileNotFoundError):
        engs.load_checkpoint(str(tmp_path / "absent"))
    bad = tmp_path / "bad"
    bad.write_bytes(b'{"format": "engs-orchestrator", "cycle": ')
    with pytest.raises(CheckpointError, match=r"checkpoint .*/bad is not a valid EngsSnapshot"):
        engs.load_checkpoint(str(bad))
    other = make_engs({"physics.areas": ["a", "b"]})
    path = tmp_path / "two-areas"
    other.save_checkpoint(str(path))
    # One cue channel of time cells per area (critic.py): the feature count follows.
    k = engs.features.cells.k
    assert (other.features.n, engs.features.n) == (2 + 2 * k, 2 + 4 * k)
    with pytest.raises(
        CheckpointError,
        match=f"snapshot has 2 areas and {2 + 2 * k} critic features, this ENGS 4 and {2 + 4 * k}",
    ):
        engs.load_checkpoint(str(path))
    newer = msgspec.structs.replace(engs.state_dict(), version=99)
    with pytest.raises(CheckpointError, match=f"expected a engs-orchestrator v{VERSION} snapshot"):
        engs.load_state_dict(newer)
    older = msgspec.structs.replace(engs.state_dict(), version=1)
    with pytest.raises(CheckpointError, match="from before the area model: it cannot be restored"):
        engs.load_state_dict(older)


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    assert (path.stat().st_mode & 0o777) == 0o600


_CHILD = textwrap.dedent(
    """
    import sys
    from engs.services.orchestrator.inputs import CycleInputs
    from tests.services.orchestrator.helpers import FakeTelemetry, make_engs

    engs = make_engs()
    tel = FakeTelemetry(engs)
    while True:
        for _ in range(10):
            engs.step(CycleInputs(reward=0.1), tel.next())
        engs.save_checkpoint(sys.argv[1])
        print(engs.cycle, flush=True)
    """
)


@pytest.mark.parametrize("saves_before_kill", [3, 8, 20])
def test_sigkill_leaves_the_last_complete_checkpoint(
    tmp_path: Path, saves_before_kill: int
) -> None:
    """A child saves every 10 cycles and is SIGKILLed (mid-write, often: saving is most
    of what it does). The checkpoint file is then always a complete one, at least as
    new as the last save the child reported, never a partial one."""
    path = tmp_path / "engs.ckpt"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ENGS_")},
    )
    assert child.stdout is not None
    reported = []
    try:
        while len(reported) < saves_before_kill:
            line = child.stdout.readline()
            assert line, "the child died before saving"
            reported.append(int(line))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    snapshot = load_checkpoint(path, EngsSnapshot)  # decodes: complete
    assert snapshot.cycle % 10 == 0
    assert snapshot.cycle >= reported[-1]  # maybe one more save landed before the kill
    assert snapshot.cycle <= reported[-1] + 20
    restored = make_engs()
    restored.load_state_dict(snapshot)
    assert restored.cycle == snapshot.cycle
    res = restored.step(CycleInputs(), None)  # and the run goes on from there
    assert res.cycle == snapshot.cycle + 1
