"""End to end with a live writer process: a physics stand-in (a child process using the
real writer APIs) diverges; the oracle's real poll loop raises SCRAM; the stand-in acts
on the interrupt word at its next tick (SAFE mode, records the raise→act latency in its
stats as the physics does); the exporter, over HTTP, shows the raise, the action and
the latency histogram; SCRAM clears by its rule once the field is finite again."""

from __future__ import annotations

import math
import multiprocessing as mp
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from engs.services.oracle.collector import EngsCollector
from engs.services.oracle.exporter import MetricsServer
from engs.shared.clock import monotonic_ns
from engs.shared.heartbeat import Heartbeat
from engs.shared.interrupt import InterruptWord, lanes_or
from engs.shared.layout import Cause, HeartbeatState, Mode, Process
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader, SeqlockWriter
from engs.shared.stats import StatsWriter
from tests.services.oracle.craft import make_watchdog

ctx = mp.get_context("fork")


def _physics_stand_in(instance: str, diverge: Any, ready: Any, stop: Any) -> None:
    region = Region.attach(instance, lock_memory=False)
    hb = Heartbeat(region, Process.PHYSICS)
    w = SeqlockWriter(region, "telemetry")
    irq = InterruptWord(region)
    stats = StatsWriter(region, Process.PHYSICS)
    i_lat = stats.histogram("engs_interrupt_latency_seconds")
    i_acted = {
        c: stats.counter("engs_physics_interrupts_acted_total", cause=str(c.name).lower())
        for c in Cause
    }
    t = w.new_record()
    t["n_nodes"], t["n_areas"] = 100, 3
    hb.set_state(HeartbeatState.RUNNING)
    acted = 0
    tick = 0
    while not stop.is_set():
        tick += 1
        now = monotonic_ns()
        word = irq.test()  # one load at tick start
        causes = int(lanes_or(word)) if word else 0
        new = causes & ~acted
        if new:
            raised = irq.raised_at(Cause(new))
            stats.observe_ns(i_lat, now - raised)
            for c in Cause:
                if new & int(c):
                    stats.inc(i_acted[c])
            t["interrupt_raised_t_ns"], t["interrupt_acted_t_ns"] = raised, now
        acted = causes
        t["interrupt_mask"] = causes
        t["mode"] = int(Mode.SAFE) if causes else 0
        t["energy"] = math.nan if diverge.is_set() else 50.0
        t["tick"], t["t_ns"] = tick, now
        w.publish(t)
        hb.beat()
        if tick == 1:
            ready.set()
        time.sleep(0.001)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.002)
    return time.monotonic()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_scram_is_raised_acted_on_exported_and_cleared(region: Region) -> None:
    diverge, ready, stop = ctx.Event(), ctx.Event(), ctx.Event()
    child = ctx.Process(target=_physics_stand_in, args=(region.instance, diverge, ready, stop))
    child.start()
    wd = make_watchdog(region, scram_clear_s=0.3)
    registry = CollectorRegistry()
    registry.register(EngsCollector(region))
    halt = threading.Event()
    loop = threading.Thread(target=wd.run, args=(halt,), name="oracle-loop")
    irq = InterruptWord(region)
    tel = SeqlockReader(region, "telemetry")
    rec = tel.new_record()

    def physics_shows(mask: int, mode: int) -> bool:
        tel.read_latest(rec)
        return int(rec["interrupt_mask"]) == mask and int(rec["mode"]) == mode

    try:
        assert ready.wait(20)
        with MetricsServer("127.0.0.1", 0, registry, lambda: (True, {})) as srv:
            loop.start()
            time.sleep(0.1)
            assert irq.causes() == Cause(0)
            diverge.set()
            wait_for(lambda: irq.causes() == Cause.SCRAM, "SCRAM raised")
            wait_for(lambda: physics_shows(int(Cause.SCRAM), int(Mode.SAFE)), "physics acting")
            m = scrape(srv.url)
            assert m[("engs_interrupts_total", (("cause", "scram"),))] == 1
            assert m[("engs_interrupt_active", (("cause", "scram"),))] == 1
            assert m[("engs_physics_interrupts_acted_total", (("cause", "scram"),))] == 1
            assert m[("engs_interrupt_latency_seconds_count", ())] == 1
            assert 0 < m[("engs_interrupt_latency_seconds_sum", ())] < 1.0
            assert m[("engs_physics_mode", (("mode", "safe"),))] == 1
            assert math.isnan(m[("engs_field_energy", ())])
            healthy_since = time.monotonic()
            diverge.clear()
            cleared = wait_for(lambda: irq.causes() == Cause(0), "SCRAM cleared")
            # scram_clear_s of healthy telemetry, timed from the last bad tick the oracle
            # saw (it polls every 4 ms, so that tick may precede the clear by a poll).
            assert cleared - healthy_since >= 0.3 - 0.01
            wait_for(lambda: physics_shows(0, 0), "physics leaving SAFE mode")
            assert scrape(srv.url)[("engs_interrupts_total", (("cause", "scram"),))] == 1
    finally:
        halt.set()
        if loop.is_alive():
            loop.join(10)
        stop.set()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
