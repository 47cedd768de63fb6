"""The one health rule, seen through each of its users on a real region.

A physics that beats but misses its deadlines (its reporter published a report through
the real DeadlineReporter, from counts written by the real StatsWriter) is *degraded*
for /healthz (200, status "degraded", the reasons), for the compose healthcheck (exit 0,
the line says so) and for ``judge_region`` (what ``engs up`` acts on: no restart); a
physics that stopped beating is *unhealthy* for all of them. COGNITIVE_PAUSE raised
while a process starts is logged at INFO with that reason, later ones at WARNING.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from engs.services.oracle.collector import EngsCollector
from engs.services.oracle.exporter import MetricsServer
from engs.services.oracle.health import Health
from engs.services.physics.deadlines import DeadlineReporter
from engs.services.supervisor.healthcheck import main as healthcheck
from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.heartbeat import Heartbeat
from engs.shared.layout import HeartbeatState, Process
from engs.shared.liveness import Status, judge_region
from engs.shared.region import Region
from engs.shared.stats import StatsWriter
from tests.services.oracle.craft import MS, Crafter, make_watchdog, oracle_config
from tests.services.oracle.test_exporter import fetch


def _physics_at(region: Region, hz: int, missed_per_s: int) -> Heartbeat:
    """A running physics whose last 3 s ran at ``hz`` with ``missed_per_s`` misses."""
    hb = Heartbeat(region, Process.PHYSICS)
    hb.set_state(HeartbeatState.RUNNING)
    stats = StatsWriter(region, Process.PHYSICS)
    rep = DeadlineReporter(region, 1000.0)
    now = monotonic_ns()
    rep.sample(now - 3 * NS_PER_S)
    stats.inc(stats.counter("engs_physics_ticks_total"), 3 * hz)
    stats.inc(stats.counter("engs_physics_deadline_misses_total"), 3 * missed_per_s)
    rep.sample(now)
    rep.release()
    return hb


def test_a_late_physics_is_degraded_for_healthz_healthcheck_and_supervisor(
    region: Region, capsys: pytest.CaptureFixture[str]
) -> None:
    _physics_at(region, hz=100, missed_per_s=900)  # the 512x512: ~100 Hz of 1000
    wd = make_watchdog(region)
    wd.poll()
    with MetricsServer(
        "127.0.0.1", 0, CollectorRegistry(), Health(region, wd, max_poll_age_ns=NS_PER_S).check
    ) as srv:
        status, _, body = fetch(srv.url + "/healthz")
    h: dict[str, Any] = json.loads(body)
    assert status == 200 and h["status"] == "degraded" and h["problems"] == []
    assert h["degraded"] == [
        "2700 of 3000 deadlines missed (90.0%) over the last 3 s (limit 1%)",
        "ticking at 100 Hz, below 95% of the 1000 Hz target",
    ]
    assert h["deadlines"]["achieved_hz"] == pytest.approx(100.0)
    assert h["deadlines"]["misses_window"] == 2700

    code = healthcheck(["physics", "--instance", region.instance])
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert out == (
        "alive, degraded: physics: running; deadlines degraded: 2700 of 3000 deadlines "
        "missed (90.0%) over the last 3 s (limit 1%); ticking at 100 Hz, below 95% of the "
        "1000 Hz target"
    )

    judged = judge_region(region, oracle_config())
    assert judged[Process.PHYSICS].status is Status.DEGRADED  # `engs up` does not restart
    assert judged[Process.PHYSICS].serving

    registry = CollectorRegistry()
    registry.register(EngsCollector(region))
    assert registry.get_sample_value("engs_physics_degraded") == 1.0
    assert registry.get_sample_value("engs_physics_tick_rate_hz") == pytest.approx(100.0)


def test_an_on_rate_physics_is_ok_and_a_silent_one_unhealthy(
    region: Region, capsys: pytest.CaptureFixture[str]
) -> None:
    hb = _physics_at(region, hz=1000, missed_per_s=2)
    wd = make_watchdog(region)
    wd.poll()
    ok, h = Health(region, wd, max_poll_age_ns=NS_PER_S).check()
    assert ok and h["status"] == "ok" and h["degraded"] == []
    registry = CollectorRegistry()
    registry.register(EngsCollector(region))
    assert registry.get_sample_value("engs_physics_degraded") == 0.0
    assert h["deadlines"]["status"] == "ok"
    assert healthcheck(["physics", "--instance", region.instance]) == 0
    assert capsys.readouterr().out.strip() == "alive: physics: running"

    del hb  # no more beats: after the heartbeat timeout the physics is dead
    cfg = oracle_config(heartbeat_timeout_s=0.05)
    time.sleep(0.1)
    judged = judge_region(region, cfg)[Process.PHYSICS]
    assert judged.status is Status.UNHEALTHY
    assert judged.detail.startswith("physics: no heartbeat for ")
    # a dead physics' last report is not judged: unknown, not degraded
    assert judged.deadlines is not None and judged.deadlines.reasons == (
        "the physics is not running",
    )


def _starve(region: Region, crafter: Crafter, t0: int) -> Any:
    """A watchdog that sees the physics tick while no state is published for 60 ms,
    then ten fresh states: one COGNITIVE_PAUSE raise and clear."""
    wd = make_watchdog(region)
    crafter.publish(t0)
    crafter.tick(t0)
    wd.poll(t0)
    crafter.tick(t0 + 60 * MS, apply=False)
    wd.poll(t0 + 60 * MS)
    for i in range(12):
        t = t0 + (70 + 10 * i) * MS
        crafter.publish(t)
        crafter.tick(t)
        wd.poll(t)
    return wd


@pytest.mark.parametrize(("started_s_ago", "level"), [(1.0, logging.INFO), (30.0, logging.WARNING)])
def test_cognitive_pause_while_starting_is_logged_at_info_with_the_reason(
    region: Region,
    crafter: Crafter,
    caplog: pytest.LogCaptureFixture,
    started_s_ago: float,
    level: int,
) -> None:
    hb = Heartbeat(region, Process.ORCHESTRATOR)
    hb.set_state(HeartbeatState.RUNNING)
    t0 = monotonic_ns()
    region.block("heartbeats")[int(Process.ORCHESTRATOR)]["started_ns"] = t0 - int(
        started_s_ago * NS_PER_S
    )
    caplog.set_level(logging.INFO, logger="engs.oracle")
    _starve(region, crafter, t0)
    pause = [r for r in caplog.records if "COGNITIVE_PAUSE" in r.getMessage()]
    msgs = [r.getMessage() for r in pause]
    assert len(msgs) == 2
    assert msgs[0].startswith("raised COGNITIVE_PAUSE: no state published for 60.0 ms")
    assert msgs[1].startswith("cleared COGNITIVE_PAUSE (its clear rule is met)")
    assert {r.levelno for r in pause} == {level}
    if level == logging.INFO:
        assert " (during start-up: the orchestrator started 1." in msgs[0]
        assert msgs[1].endswith(" (raised during start-up)")
    else:
        assert "start-up" not in msgs[0] + msgs[1]
