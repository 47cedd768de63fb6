"""Deadline-miss attribution (ENGS_MISS_TRACE): each cause recognised, and a real
``engs physics`` that cannot keep its rate writes one attributed row per miss."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np

from engs.services.physics.misses import CAUSES, MISS_DTYPE, MissTrace, attribute
from tests.services.physics.support import start_physics

PERIOD = 1_000_000


def _row(**kw: int | bool) -> np.void:
    r = np.zeros((), dtype=MISS_DTYPE)
    r["state_ok"] = True
    for k, v in kw.items():
        r[k] = v
    return r[()]


def test_each_cause_is_recognised_in_order() -> None:
    assert attribute(_row(gc=1, nivcsw=3), PERIOD) == "gc"
    assert attribute(_row(reporter_ns=5_000, nivcsw=1), PERIOD) == "deadline reporter (GIL)"
    assert attribute(_row(nivcsw=1), PERIOD) == "descheduled"
    assert attribute(_row(lateness_ns=600_000, runq_ns=400_000), PERIOD) == "descheduled"
    assert attribute(_row(lateness_ns=600_000, runq_ns=1_000), PERIOD) == "host (vCPU not running)"
    assert attribute(_row(minflt=2, step_ns=900_000), PERIOD) == "page fault"
    assert attribute(_row(step_ns=900_000), PERIOD) == "slow step"
    assert attribute(_row(state_ok=False), PERIOD) == "torn state read"
    assert attribute(_row(lateness_ns=100_000), PERIOD) == "other"


def test_trace_records_rows_and_summarises(tmp_path: Path) -> None:
    trace = MissTrace(tmp_path / "m.jsonl", PERIOD, capacity=2)
    for tick in range(3):
        trace.tick_start()
        t = time.monotonic_ns()
        trace.miss(tick, 1, False, True, t, 0, 950_000, 990_000, 10_000)
    trace.write()
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in lines[:-1]] == [0, 1]
    summary = lines[-1]["summary"]
    assert summary["ticks"] == 3 and summary["miss_events"] == 2 and summary["dropped"] == 1
    assert set(summary["causes"]) == set(CAUSES)
    assert sum(summary["causes"].values()) == 2


def test_a_physics_too_slow_for_its_rate_attributes_its_misses(
    instance: str, tmp_path: Path
) -> None:
    """64×64 on NumPy at 20 kHz cannot keep up: nearly every tick misses, and the trace
    says why (mostly slow steps; on a busy host some are descheduled)."""
    cfg = tmp_path / "engs.toml"
    cfg.write_text(
        '[shm]\nlock_memory = false\n[physics]\nbackend = "numpy"\ntick_hz = 20000.0\n',
        encoding="utf-8",
    )
    out = tmp_path / "misses.jsonl"
    proc = start_physics(instance, cfg, ENGS_MISS_TRACE=str(out))
    try:
        time.sleep(4.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, log
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert summary["miss_events"] == len(rows) > 100
    assert summary["deadlines_missed"] == sum(r["missed"] for r in rows)
    assert summary["causes"]["slow step"] + summary["causes"]["descheduled"] >= len(rows) // 2
    assert all(r["step_ns"] > 0 and r["overrun_ns"] >= 0 and r["cause"] in CAUSES for r in rows)
    assert f"deadline misses traced to {out}" in log
