"""`engs physics` as a real process against a real region: it ticks, applies a written
state, publishes telemetry, acts on an interrupt, counts CFL clamps, continues its tick
count after a restart, and exits cleanly on SIGTERM."""

from __future__ import annotations

import math
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engs.shared.clock import monotonic_ns
from engs.shared.heartbeat import read_heartbeats
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, HeartbeatState, Lane, Mode, Process
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader, SeqlockWriter
from engs.shared.stats import read_stats
from tests.services.physics.support import start_physics
from tests.waiting import wait_for as _wait

CONFIG = """
[shm]
lock_memory = false
[physics]
shape = [16, 16]
areas = ["sensory", "motor"]
"""


@pytest.fixture
def physics(instance: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Region, Path]]:
    cfg = tmp_path / "engs.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    proc = start_physics(instance, cfg)
    try:
        _wait(lambda: Path(f"/dev/shm/engs-{instance}").exists(), "the region")
        region = Region.attach(instance, lock_memory=False, ready_timeout_s=10)
        yield proc, region, cfg
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _telemetry(region: Region) -> tuple[SeqlockReader, Any]:
    r = SeqlockReader(region, "telemetry")
    return r, r.new_record()


def test_loop_ticks_applies_state_and_acts_on_interrupts(
    physics: tuple[subprocess.Popen[str], Region, Path],
) -> None:
    proc, region, _ = physics
    reader, tel = _telemetry(region)

    def tick() -> int:
        reader.read_latest(tel)
        return int(tel["tick"])

    _wait(lambda: tick() > 50, "50 ticks")
    assert int(tel["n_nodes"]) == 256 and int(tel["n_areas"]) == 2
    assert math.isfinite(float(tel["energy"])) and int(tel["applied_seq"]) == 0

    # A state written by "the orchestrator" is applied by a later tick, exactly once.
    w = SeqlockWriter(region, "control")
    st = w.new_record()
    st["seq"] = 5
    st["n_areas"] = 2
    st["signal_id"] = 9
    st["area_plasticity"][:2] = 1.0
    st["area_elasticity"][:2] = 1.0
    st["area_speed"][:2] = [1.0, 1.2]
    st["area_damping"][:2] = 1.0
    t_calc = monotonic_ns()
    st["t_calc_ns"] = t_calc
    st["signal_t_ns"] = t_calc - 1_000_000
    w.publish(st)
    _wait(lambda: tick() > 0 and int(tel["applied_seq"]) == 5, "the state to be applied")
    assert int(tel["applied_t_calc_ns"]) == t_calc
    assert int(tel["applied_t_ns"]) >= t_calc  # applied at a tick start after it was computed
    assert int(tel["applied_signal_id"]) == 9
    assert int(tel["t_ns"]) >= int(tel["applied_t_ns"])

    # A CRITICAL cause set by another lane is acted on: safe mode, latency recorded once.
    irq = InterruptWord(region, Lane.ORACLE)
    irq.raise_cause(Cause.PANIC)
    raised = irq.raised_at(Cause.PANIC)
    _wait(
        lambda: tick() > 0 and int(tel["interrupt_mask"]) & int(Cause.PANIC) != 0,
        "the physics to act on PANIC",
    )
    assert int(tel["interrupt_raised_t_ns"]) == raised
    assert int(tel["interrupt_acted_t_ns"]) >= raised
    assert int(tel["mode"]) & int(Mode.SAFE)
    _wait(
        lambda: read_heartbeats(region)[Process.PHYSICS].state is HeartbeatState.SAFE_MODE,
        "the heartbeat to say SAFE_MODE",
    )
    irq.clear_cause(Cause.PANIC)
    _wait(lambda: tick() > 0 and int(tel["mode"]) & int(Mode.SAFE) == 0, "safe mode to end")

    # An absurd speed is clamped by the CFL guard and counted, never integrated.
    st["seq"] = 6
    st["area_speed"][:2] = 1e6
    st["t_calc_ns"] = monotonic_ns()
    w.publish(st)
    _wait(lambda: tick() > 0 and int(tel["applied_seq"]) == 6, "the fast state")
    _wait(
        lambda: read_stats(region, Process.PHYSICS).counter("engs_physics_cfl_clamps_total") > 0,
        "CFL clamps to be counted",
    )
    reader.read_latest(tel)
    assert math.isfinite(float(tel["energy"])) and int(tel["nonfinite"]) == 0

    snap = read_stats(region, Process.PHYSICS)
    assert snap.counter("engs_physics_states_applied_total") == 2
    assert snap.counter("engs_physics_interrupts_acted_total", cause="panic") == 1
    hist = {h.spec.name: h for h in snap.histograms}
    assert hist["engs_state_staleness_seconds"].count == 2
    assert hist["engs_signal_latency_seconds"].count == 1  # same signal id twice: once
    assert hist["engs_interrupt_latency_seconds"].count == 1
    assert hist["engs_physics_tick_seconds"].count == snap.counter("engs_physics_ticks_total")
    assert snap.counter("engs_physics_ticks_total") >= int(tel["tick"]) - 1

    # SIGTERM: the tick in progress finishes, the process says STOPPED and exits 0.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    hb = read_heartbeats(region)[Process.PHYSICS]
    assert hb.state is HeartbeatState.STOPPED
    assert int(region.view["telemetry"]["writer_pid"]) == 0


def test_a_restarted_physics_continues_the_tick_count(
    physics: tuple[subprocess.Popen[str], Region, Path],
) -> None:
    proc, region, cfg = physics
    reader, tel = _telemetry(region)
    _wait(lambda: reader.read_latest(tel) and int(tel["tick"]) > 20, "20 ticks")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    reader.read_latest(tel)
    last = int(tel["tick"])
    again = start_physics(region.instance, cfg)
    try:
        _wait(lambda: reader.read_latest(tel) and int(tel["tick"]) > last + 5, "more ticks")
        assert read_heartbeats(region)[Process.PHYSICS].pid == again.pid
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=10) == 0
        again.communicate(timeout=5)
