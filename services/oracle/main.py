"""``engs oracle``: the watchdog process, ``run(cfg) -> int``.

Start-up, in order (each failure is a clear error, before anything is served):

1. open the instance's region (attach, or create it if this service starts first —
   ARCHITECTURE §2; only the supervisor unlinks it);
2. wait out a previous oracle whose heartbeat is still fresh (one writer per lane): if
   it keeps beating past ``heartbeat_timeout_s`` this one refuses with WriterBusy;
3. build the watchdog (adopting causes a previous oracle left raised), the collector on
   its own registry, and bind ``metrics.addr`` (ExporterBindError names the address);
4. heartbeat RUNNING, serve HTTP on a thread, poll on the main thread.

SIGTERM or SIGINT sets a stop event; the loop finishes its poll, the server shuts
down, the heartbeat says STOPPED and ``run`` returns 0. An unexpected exception in the
loop marks the heartbeat FAILED, is logged, and returns 1 (the supervisor restarts).
Raised causes stay in the lane on exit (see services/oracle/watchdog.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from prometheus_client.registry import CollectorRegistry

from engs.services.oracle.collector import EngsCollector
from engs.services.oracle.exporter import MetricsServer
from engs.services.oracle.health import Health
from engs.services.oracle.watchdog import Watchdog
from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.config import Config, OracleConfig, parse_addr
from engs.shared.endpoints import publish_metrics
from engs.shared.errors import WriterBusy
from engs.shared.heartbeat import PeerLoss
from engs.shared.layout import HeartbeatState, Process
from engs.shared.liveness import LivenessLimits
from engs.shared.region import Region

log = logging.getLogger("engs.oracle")

_BEATING = (
    HeartbeatState.STARTING,
    HeartbeatState.RUNNING,
    HeartbeatState.SAFE_MODE,
    HeartbeatState.STOPPING,
)


def wait_for_previous_oracle(region: Region, cfg: OracleConfig) -> None:
    """Return once no other oracle beats in ``region``; WriterBusy if one keeps beating
    for longer than ``heartbeat_timeout_s`` (a crashed one stops within that time)."""
    slot = region.block("heartbeats")[int(Process.ORACLE)]
    limit = int(cfg.heartbeat_timeout_s * NS_PER_S)
    deadline = monotonic_ns() + limit + NS_PER_S // 2
    while True:
        pid, last = int(slot["pid"]), int(slot["last_beat_ns"])
        state = HeartbeatState(int(slot["state"]))
        now = monotonic_ns()
        if pid in (0, os.getpid()) or state not in _BEATING or now - last > limit:
            return
        if now > deadline:
            raise WriterBusy(
                f"another oracle (pid {pid}) is running for {region.name}: one oracle per "
                f"instance (its heartbeat is {(now - last) / 1e6:.0f} ms old)"
            )
        time.sleep(0.05)


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """Route SIGTERM/SIGINT to ``stop``; returns a function restoring the old handlers.
    Only the main thread may install handlers; elsewhere this is a no-op."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    for s in old:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


EXIT_PHYSICS_LOST = 3


def _watch_physics(region: Region, after_s: float, stop: threading.Event) -> threading.Event:
    """With ``after_s`` > 0, a daemon thread that sets ``stop`` (and the returned event)
    once the physics, seen alive, stays silent for ``after_s`` (see PeerLoss)."""
    lost = threading.Event()
    if after_s <= 0:
        return lost
    watch = PeerLoss(region, Process.PHYSICS, after_s)

    def loop() -> None:
        while not stop.wait(0.25):
            if watch.lost():
                log.error(
                    "the physics has not beaten for %.1f s after being alive: exiting so "
                    "the container restarts into its new IPC namespace",
                    after_s,
                )
                lost.set()
                stop.set()
                return

    threading.Thread(target=loop, name="physics-watch", daemon=True).start()
    return lost


def run(cfg: Config, *, stop: threading.Event | None = None) -> int:
    """Run the oracle until SIGTERM/SIGINT (or ``stop`` is set); 0 on a clean stop."""
    region = Region.open(
        cfg.instance,
        cfg.shm.max_areas,
        area_names=cfg.physics.areas,
        lock_memory=cfg.shm.lock_memory,
    )
    try:
        wait_for_previous_oracle(region, cfg.oracle)
        watchdog = Watchdog(region, cfg.oracle)
        registry = CollectorRegistry()
        registry.register(EngsCollector(region, LivenessLimits.from_config(cfg.oracle)))
        health = Health(
            region, watchdog, max_poll_age_ns=int(cfg.oracle.heartbeat_timeout_s * NS_PER_S)
        )
        host, port = parse_addr(cfg.metrics.addr)
        try:
            server = MetricsServer(host, port, registry, health.check)
        except BaseException:
            watchdog.heartbeat.set_state(HeartbeatState.FAILED)
            raise
        stop = stop if stop is not None else threading.Event()
        restore = _on_signals(stop)
        server.start()
        publish_metrics(region, server.url.removeprefix("http://"))  # for `engs status`
        watchdog.heartbeat.set_state(HeartbeatState.RUNNING)
        log.info(
            "oracle for %s polling at %g Hz; metrics on %s/metrics",
            region.name,
            cfg.oracle.poll_hz,
            server.url,
        )
        status = 0
        lost = _watch_physics(region, cfg.oracle.exit_when_physics_lost_s, stop)
        try:
            watchdog.run(stop)
            if lost.is_set():
                status = EXIT_PHYSICS_LOST
        except Exception:
            log.exception("the oracle's poll loop failed")
            status = 1
        finally:
            watchdog.heartbeat.set_state(HeartbeatState.STOPPING)
            server.stop()
            restore()
            watchdog.heartbeat.set_state(
                HeartbeatState.FAILED if status else HeartbeatState.STOPPED
            )
        return status
    finally:
        region.close()
