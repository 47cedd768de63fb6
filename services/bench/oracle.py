"""``engs bench oracle``: what the watchdog costs, against a live-ish region.

A private region is created and fed by two child processes through the real writer
APIs: a physics stand-in publishing telemetry at ``physics_hz`` (1 kHz, applying each
new state on its next tick, beating, counting ticks and staleness into its stats) and
an orchestrator stand-in publishing a NeurochemicalState at ``orchestrator_hz``
(100 Hz). Both pace with plain sleeps so the bench leaves the machine's cores to the
oracle. The real :class:`~engs.services.oracle.watchdog.Watchdog` then polls at
``cfg.oracle.poll_hz`` on the main thread for ``duration_s`` while a second thread
renders ``/metrics`` (the real collector on its own registry) every
``scrape_every_s`` (0: never; Prometheus' default interval is 15 s).

Reported: the oracle process's CPU use (``resource.getrusage(RUSAGE_SELF)``, user +
system, over wall time — the figure docs/oracle.md quotes), split into the poll loop
(the main thread's ``time.thread_time``) and scraping (the scrape thread's); the polls
achieved; the mean poll time and the upper bound of the bucket holding its 99th
percentile (from the oracle's own ``engs_oracle_poll_seconds`` histogram); the mean
scrape time. Timings belong here, never in pass/fail tests.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import resource
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from engs.services.oracle.collector import EngsCollector
from engs.services.oracle.watchdog import Watchdog
from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.config import Config
from engs.shared.heartbeat import Heartbeat
from engs.shared.layout import HIST_BOUNDS_NS, HeartbeatState, Process
from engs.shared.liveness import LivenessLimits
from engs.shared.region import Region, unlink
from engs.shared.seqlock import SeqlockReader, SeqlockWriter
from engs.shared.stats import StatsWriter, read_stats
from engs.shared.stats_schema import histogram_index

_ctx = mp.get_context("fork")


def _pace(period_ns: int) -> Iterator[int]:
    """Absolute deadlines every ``period_ns``, slept to (no spinning)."""
    deadline = monotonic_ns()
    while True:
        deadline += period_ns
        delay = deadline - monotonic_ns()
        if delay > 0:
            time.sleep(delay / NS_PER_S)
        else:
            deadline = monotonic_ns()
        yield deadline


def _physics_like(instance: str, hz: float, stop: Any, ready: Any) -> None:
    region = Region.attach(instance, lock_memory=False)
    hb = Heartbeat(region, Process.PHYSICS)
    w = SeqlockWriter(region, "telemetry")
    ctl = SeqlockReader(region, "control")
    stats = StatsWriter(region, Process.PHYSICS)
    i_ticks = stats.counter("engs_physics_ticks_total")
    i_stale = stats.histogram("engs_state_staleness_seconds")
    state, t = ctl.new_record(), w.new_record()
    t["n_nodes"], t["n_areas"], t["energy"], t["entropy_bits"] = 4096, 4, 100.0, 11.0
    hb.set_state(HeartbeatState.RUNNING)
    ready.set()
    for tick, _ in enumerate(_pace(round(NS_PER_S / hz)), start=1):
        if stop.is_set():
            break
        now = monotonic_ns()
        ctl.read_latest(state)
        t["tick"], t["t_ns"] = tick, now
        if int(state["seq"]) != int(t["applied_seq"]):
            t["applied_seq"] = state["seq"]
            t["applied_t_calc_ns"] = state["t_calc_ns"]
            t["applied_t_ns"] = now
            stats.observe_ns(i_stale, now - int(state["t_calc_ns"]))
        w.publish(t)
        stats.inc(i_ticks)
        hb.beat()
    hb.set_state(HeartbeatState.STOPPED)


def _orchestrator_like(instance: str, hz: float, stop: Any, ready: Any) -> None:
    region = Region.attach(instance, lock_memory=False)
    hb = Heartbeat(region, Process.ORCHESTRATOR)
    w = SeqlockWriter(region, "control")
    s = w.new_record()
    s["n_areas"], s["dopamine"], s["serotonin"] = 4, 0.5, 0.5
    s["norepinephrine"], s["atp_ratio"], s["boredom"] = 0.3, 0.8, 0.2
    s["spectral_abscissa"] = -0.08  # a stable coupling matrix, as the orchestrator reports
    hb.set_state(HeartbeatState.RUNNING)
    ready.set()
    for seq, _ in enumerate(_pace(round(NS_PER_S / hz)), start=1):
        if stop.is_set():
            break
        s["seq"], s["t_calc_ns"] = seq, monotonic_ns()
        w.publish(s)
        hb.beat()
    hb.set_state(HeartbeatState.STOPPED)


@contextlib.contextmanager
def _publishers(instance: str, physics_hz: float, orchestrator_hz: float) -> Iterator[None]:
    stop = _ctx.Event()
    procs = []
    try:
        for target, hz in ((_physics_like, physics_hz), (_orchestrator_like, orchestrator_hz)):
            ready = _ctx.Event()
            p = _ctx.Process(target=target, args=(instance, hz, stop, ready), daemon=True)
            p.start()
            procs.append(p)
            if not ready.wait(20):
                raise RuntimeError(f"bench publisher {target.__name__} did not start in 20 s")
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.machine()


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(
    cfg: Config | None = None,
    *,
    duration_s: float = 10.0,
    scrape_every_s: float = 1.0,
    physics_hz: float = 1000.0,
    orchestrator_hz: float = 100.0,
    instance: str | None = None,
) -> dict[str, Any]:
    """Measure the oracle for ``duration_s``; returns the figures as a dict.

    ``instance``: the private region's name (default ``bench-oracle-<pid>-<hex>``); it
    is created here and unlinked before returning.
    """
    cfg = cfg or Config()
    instance = instance or f"bench-oracle-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    region = Region.create(instance, cfg.shm.max_areas, lock_memory=False)
    try:
        with _publishers(instance, physics_hz, orchestrator_hz):
            return _measure(region, cfg, duration_s, scrape_every_s) | {
                "physics_hz": physics_hz,
                "orchestrator_hz": orchestrator_hz,
            }
    finally:
        region.close()
        unlink(instance)


def _measure(
    region: Region, cfg: Config, duration_s: float, scrape_every_s: float
) -> dict[str, Any]:
    wd = Watchdog(region, cfg.oracle)
    registry = CollectorRegistry()
    registry.register(EngsCollector(region, LivenessLimits.from_config(cfg.oracle)))
    stop = threading.Event()
    scrape: dict[str, float] = {"n": 0, "cpu_s": 0.0, "wall_s": 0.0}

    def scraper() -> None:
        while scrape_every_s > 0 and not stop.wait(scrape_every_s):
            c0, w0 = time.thread_time(), time.perf_counter()
            generate_latest(registry)
            scrape["cpu_s"] += time.thread_time() - c0
            scrape["wall_s"] += time.perf_counter() - w0
            scrape["n"] += 1

    ih = histogram_index(Process.ORACLE, "engs_oracle_poll_seconds")
    hist0 = read_stats(region, Process.ORACLE).histograms[ih]
    th = threading.Thread(target=scraper, name="bench-scraper", daemon=True)
    timer = threading.Timer(duration_s, stop.set)
    wd.heartbeat.set_state(HeartbeatState.RUNNING)
    cpu0, thread0, wall0 = _cpu_s(), time.thread_time(), time.perf_counter()
    th.start()
    timer.start()
    wd.run(stop)
    loop_cpu = time.thread_time() - thread0
    th.join(10)
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - wall0
    wd.heartbeat.set_state(HeartbeatState.STOPPED)
    hist = read_stats(region, Process.ORACLE).histograms[ih]
    counts = [a - b for a, b in zip(hist.bucket_counts, hist0.bucket_counts, strict=True)]
    n = sum(counts)
    p99_le = None
    acc = 0
    for bound, c in zip((*HIST_BOUNDS_NS, None), counts, strict=True):
        acc += c
        if acc >= 0.99 * n:
            p99_le = None if bound is None else bound / 1e3
            break
    return {
        "duration_s": wall,
        "poll_hz": cfg.oracle.poll_hz,
        "polls": n,
        "achieved_hz": n / wall,
        "cpu_percent": 100.0 * cpu / wall,
        "poll_loop_cpu_percent": 100.0 * loop_cpu / wall,
        "scrape_cpu_percent": 100.0 * scrape["cpu_s"] / wall,
        "poll_mean_us": (hist.sum_ns - hist0.sum_ns) / n / 1e3 if n else None,
        "poll_p99_le_us": p99_le,
        "scrapes": int(scrape["n"]),
        "scrape_mean_ms": 1e3 * scrape["wall_s"] / scrape["n"] if scrape["n"] else None,
        "cpu_count": os.cpu_count(),
        "machine": _cpu_model(),
        "python": platform.python_version(),
    }


def format_result(res: dict[str, Any]) -> str:
    """A human-readable summary of :func:`run`'s result."""

    def f(v: Any, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    return "\n".join(
        [
            f"oracle at {res['poll_hz']:g} Hz for {res['duration_s']:.1f} s against physics "
            f"{res['physics_hz']:g} Hz / orchestrator {res['orchestrator_hz']:g} Hz stand-ins",
            f"  polls          {res['polls']} ({res['achieved_hz']:.1f} Hz achieved)",
            f"  poll time      mean {f(res['poll_mean_us'], '.1f')} us, "
            f"p99 <= {f(res['poll_p99_le_us'], 'g')} us",
            f"  CPU            {res['cpu_percent']:.2f} % of one core (poll loop "
            f"{res['poll_loop_cpu_percent']:.2f} %, scrapes {res['scrape_cpu_percent']:.2f} %)",
            f"  scrapes        {res['scrapes']}, mean {f(res['scrape_mean_ms'], '.2f')} ms",
        ]
    )


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags of ``engs bench oracle``."""
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Measure with the configured oracle and print the result; 0."""
    res = run(cfg, duration_s=2.0 if args.quick else 10.0)
    print(msgspec.json.encode(res).decode() if args.json else format_result(res))
    return 0
