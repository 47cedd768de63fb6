"""``engs orchestrator``: the 100 Hz control loop and the signal socket, one uvloop loop.

Each cycle (ARCHITECTURE §1, seed 003 GAP-022), on an absolute deadline:

1. read the newest PhysicsTelemetry (one seqlock snapshot);
2. drain the signals accepted since the last cycle (each applied in exactly this one
   cycle) and take the oracle's pending requests (each applied exactly once);
3. step the ENGS dynamics (:class:`engs.services.orchestrator.engs.Engs`);
4. mirror the dynamics' CRITICAL causes onto the orchestrator's interrupt lane at once —
   publishing the emergency state *before* raising, so the physics can use it from the
   tick that sees the bit — together with causes an operator raised over the socket;
5. publish the NeurochemicalState (HIGH priority) with the newest signal id it includes;
6. forward events (curiosity goals to subscribers), heartbeat, cycle time into stats,
   append the cycle to the session log.

Checkpoints of the learned parameters and slow state are written atomically (in a worker
thread, so the loop never waits on the disk) and restored at start. The first comes
``checkpoint_first_s`` after the loop starts (once the restored state has run briefly),
then the interval doubles up to ``checkpoint_period_s``; one more is written on every
clean stop. A kill -9 loses at most the current interval, so a process killed every few
seconds keeps nearly all it learned (docs/orchestrator.md §9 has the trade-off).

Deadline policy: cycles sit on a fixed grid; a cycle that overruns skips the deadlines
already past (counted as misses) and resumes on the grid.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from engs.services.orchestrator import checkpoint, events, publish
from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.inbox import SignalCounters, SignalInbox
from engs.services.orchestrator.inputs import InputAccumulator
from engs.services.orchestrator.server import SignalServer
from engs.services.orchestrator.session import (
    LedgerOp,
    SessionLog,
    check_segment_bytes,
)
from engs.services.orchestrator.snapshot import EngsSnapshot
from engs.shared import messages
from engs.shared.clock import NS_PER_S, monotonic_ns, next_deadline
from engs.shared.config import Config
from engs.shared.endpoints import publish_signals
from engs.shared.heartbeat import Heartbeat, PeerLoss
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, HeartbeatState, Lane, Mode, Priority, Process
from engs.shared.region import Region, open_for_service
from engs.shared.requests import RequestReceiver
from engs.shared.rt import freeze_gc, thaw_gc
from engs.shared.seqlock import SeqlockReader, SeqlockWriter
from engs.shared.stats import StatsWriter

log = logging.getLogger("engs.orchestrator")

EXIT_PHYSICS_LOST = 3
#: The automatic collector is off in the loop (as in the physics); between cycles it runs
#: the young generations after this many net allocations (CPython's default threshold)
GC_YOUNG_ALLOCATIONS = 700
#: ... and a full collection this often, in seconds.
GC_FULL_EVERY_S = 10.0
#: Oracle request kinds (engs.shared.layout.REQUEST_KINDS) → the dynamics' request names.
ORACLE_REQUESTS = {"emergency_stimulus": "anhedonia", "serotonin_boost": "mania"}


def state_dir(cfg: Config) -> Path:
    """Where checkpoints and session logs live (``orchestrator.state_dir``, else
    ``$XDG_STATE_HOME/engs/<instance>``, else ``~/.local/state/engs/<instance>``)."""
    if cfg.orchestrator.state_dir:
        return Path(cfg.orchestrator.state_dir)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "engs" / cfg.instance


class Orchestrator:
    """The loop's state; also the server's :class:`SignalHandler`."""

    def __init__(self, cfg: Config, region: Region) -> None:
        self.cfg = cfg
        self.region = region
        self.dir = state_dir(cfg)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = self.dir / "checkpoint.json"
        self.engs = self._restore()
        self.stats = StatsWriter(region, Process.ORCHESTRATOR)
        self.hb = Heartbeat(region, Process.ORCHESTRATOR)
        self.writer = SeqlockWriter(region, "control")
        self.emergency_writer = SeqlockWriter(region, "interrupt.emergency")
        self.tel_reader = SeqlockReader(region, "telemetry")
        self.lane = InterruptWord(region, Lane.ORCHESTRATOR)
        self.irq = InterruptWord(region)
        self.requests = RequestReceiver(region)
        self.inbox = SignalInbox(counters=SignalCounters(self.stats))
        self.acc = InputAccumulator(cfg.physics.areas)
        self.rec = self.writer.new_record()
        self.writer.last_published(self.rec)  # continue seq after a restart
        self.seq = int(self.rec["seq"])
        self.emergency = self.emergency_writer.new_record()
        self.scratch = self.writer.new_record()
        self.tel = self.tel_reader.new_record()
        self.manual = 0  # causes an operator raised through the socket
        self.ledger_ops: list[LedgerOp] = []  # lock calls since the last cycle (replay)
        self.signal_id = int(self.rec["signal_id"])
        self.signal_t = int(self.rec["signal_t_ns"])
        self.request_id = 0
        self.server: SignalServer | None = None
        # One worker thread for the disk: checkpoints and finished session segments.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk")
        self.session: SessionLog | None = None
        sl = cfg.orchestrator.session_log
        if sl.enabled:
            check_segment_bytes(self.engs, cfg)  # refuse a segment smaller than it must be
            self.session = SessionLog(
                self.dir,
                cfg.instance,
                cfg,
                segment_bytes=sl.segment_bytes,
                segments=sl.segments,
                finisher=self._executor,
            )
        if self.seq == 0:  # nothing published yet: report the dynamics' starting levels
            publish.fill(self.engs, self.rec)
        self._snapshot: messages.StateSnapshot | None = None
        self._open_locks = self.engs.ledger.open_locks
        # The checkpoint schedule (maybe_checkpoint): the next one is due then, and the
        # interval that follows it (doubling from checkpoint_first_s to the period).
        self._checkpoint_due = 0
        self._checkpoint_interval_ns = 0
        self._pending_ckpt: Any = None
        s = self.stats
        self.c_cycles = s.counter("engs_orchestrator_cycles_total")
        self.c_miss = s.counter("engs_orchestrator_deadline_misses_total")
        self.c_switch = s.counter("engs_orchestrator_context_switches_total")
        self.c_goals = s.counter("engs_curiosity_goals_total")
        self.c_naps = s.counter("engs_naps_total")
        self.c_requests = {
            k: s.counter("engs_oracle_requests_applied_total", kind=k) for k in ORACLE_REQUESTS
        }
        self.c_raised = {
            c: s.counter("engs_interrupts_total", cause=c.name.lower()) for c in Cause if c.name
        }
        self.h_cycle = s.histogram("engs_orchestrator_cycle_seconds")
        self.h_late = s.histogram("engs_orchestrator_cycle_lateness_seconds")

    def _restore(self) -> Engs:
        """The dynamics, from the checkpoint when there is a usable one. A checkpoint
        carries the host calibration it ran with, so a restart skips the calibration
        benchmark (≈ 0.4 s of a restart's 1 s on two cores), which the restore would
        overwrite anyway."""
        path = self.checkpoint_path
        if path.exists():
            try:
                snap = checkpoint.load_checkpoint(path, EngsSnapshot)
                engs = Engs(self.cfg, calibration=snap.calibration)
                engs.load_state_dict(snap)
            except Exception as exc:  # a bad checkpoint must not keep the service down
                log.warning("ignoring checkpoint %s: %s", path, exc)
            else:
                log.info("restored %s (cycle %d)", path, engs.cycle)
                return engs
        return Engs(self.cfg)

    # -- SignalHandler (called on the loop, between cycles) -------------------------

    def try_reserve(self, cost: float, task: str) -> int | None:
        lock = self.engs.try_reserve(cost, task)
        lock_id = None if lock is None else lock.id
        self.ledger_ops.append(LedgerOp("reserve", cost, task, lock_id or 0))
        return lock_id

    def commit(self, lock: int) -> bool:
        self.ledger_ops.append(LedgerOp("commit", lock=lock))
        return self.engs.commit(lock)

    def abort(self, lock: int) -> bool:
        self.ledger_ops.append(LedgerOp("abort", lock=lock))
        return self.engs.abort(lock)

    def snapshot(self) -> messages.StateSnapshot:
        """The last published state, with the interrupt causes as they are now (an
        operator's raise is visible at once, not at the next cycle)."""
        if self._snapshot is None:
            self._snapshot = self._make_snapshot()
        causes = int(self.irq.causes())
        return msgspec.structs.replace(
            self._snapshot, interrupts=[c.name.lower() for c in Cause if c.name and causes & c]
        )

    def raise_interrupt(self, cause: Cause) -> None:
        self.manual |= int(cause)
        self._raise(int(cause))

    def clear_interrupt(self, cause: Cause) -> None:
        self.manual &= ~int(cause)
        self.lane.clear_cause(cause)

    # -- the cycle ----------------------------------------------------------------

    def _raise(self, bits: int) -> None:
        new = self.lane.raise_cause(Cause(bits))
        for c, idx in self.c_raised.items():
            if new & c:
                self.stats.inc(idx)

    def cycle(self, lateness_ns: int) -> None:
        t0 = monotonic_ns()
        tel = self.tel if self.tel_reader.read_latest(self.tel) or self.tel["tick"] else None
        if tel is not None and int(tel["tick"]) == 0:
            tel = None
        acc = self.acc
        goals_done = 0
        for item in self.inbox.drain():
            acc.add_signal(item.signal)
            self.signal_id, self.signal_t = item.seq, item.t_rx_ns
            if isinstance(item.signal, messages.GoalComplete):
                goals_done += 1
        for kind, n in self.requests.take().items():
            for _ in range(n):
                self.request_id += 1
                acc.request_oracle(ORACLE_REQUESTS[kind], self.request_id)  # type: ignore[arg-type]
            self.stats.inc(self.c_requests[kind], n)
        acc.set_external_causes(int(self.irq.causes()))
        inputs = acc.take()
        ops, self.ledger_ops = self.ledger_ops, []
        result = self.engs.step(inputs, tel)

        # CRITICAL first: the emergency state, then the bits (GAP-022: bypasses the buffer).
        own = int(self.lane.lane_causes(Lane.ORCHESTRATOR))
        want = int(result.causes) | self.manual
        if want & ~own:
            self._fill(self.emergency, Priority.CRITICAL)
            self.emergency_writer.publish(self.emergency)
            self._raise(want & ~own)
        if own & ~want:
            self.lane.clear_cause(Cause(own & ~want))

        self._fill(self.rec, Priority.HIGH)
        self.writer.publish(self.rec)
        self._snapshot = None  # built when someone asks (a subscriber, `state`)
        self._open_locks = self.engs.ledger.open_locks

        for ev in result.events:
            self._event(ev)
        if goals_done:
            self.stats.inc(self.c_switch, goals_done)
        if self.session is not None:
            crc = publish.dynamic_crc(self.rec, self.scratch)
            self.session.append(self.engs, result.cycle, inputs, tel, crc, ops)

        self.hb.beat()
        s = self.stats
        s.inc(self.c_cycles)
        s.observe_ns(self.h_cycle, monotonic_ns() - t0)
        s.observe_ns(self.h_late, lateness_ns)

    def _fill(self, rec: Any, priority: Priority) -> None:
        publish.fill(self.engs, rec)
        self.seq += 1
        publish.stamp(rec, self.seq, monotonic_ns(), self.signal_id, self.signal_t, priority)

    def _event(self, ev: Any) -> None:
        if isinstance(ev, events.CuriosityGoal):
            self.stats.inc(self.c_goals)
            self.stats.inc(self.c_switch)  # a curiosity interruption switches context
            log.info("curiosity goal: explore %s (boredom %.3f)", ev.area_name, ev.boredom)
            if self.server is not None:
                self.server.publish(
                    messages.CuriosityGoal(
                        area=ev.area_name, boredom=ev.boredom, t_ns=monotonic_ns()
                    )
                )
        elif isinstance(ev, events.NapStarted):
            self.stats.inc(self.c_naps)
            log.info("nap started at ATP %.1f %%", ev.atp_ratio * 100)
        elif isinstance(ev, events.NapEnded):
            log.info("nap ended at ATP %.1f %% after %.1f s", ev.atp_ratio * 100, ev.duration_s)

    def _make_snapshot(self) -> messages.StateSnapshot:
        r = self.rec
        causes = int(self.irq.causes())
        return messages.StateSnapshot(
            seq=int(r["seq"]),
            t_calc_ns=int(r["t_calc_ns"]),
            signal_id=int(r["signal_id"]),
            dopamine=float(r["dopamine"]),
            serotonin=float(r["serotonin"]),
            norepinephrine=float(r["norepinephrine"]),
            atp_ratio=float(r["atp_ratio"]),
            atp_reserve=float(r["atp_reserve"]),
            cortisol=float(r["cortisol"]),
            boredom=float(r["boredom"]),
            reward_rate=float(r["reward_rate"]),
            phasic_dopamine=float(r["phasic_dopamine"]),
            td_error=float(r["td_error"]),
            plasticity_gate=float(r["plasticity_gate"]),
            elasticity_gate=float(r["elasticity_gate"]),
            relevance_gate=float(r["relevance_gate"]),
            speed_gain=float(r["speed_gain"]),
            mode=[m.name.lower() for m in Mode if m.name and int(r["flags"]) & m],
            interrupts=[c.name.lower() for c in Cause if c.name and causes & c],
            open_locks=self._open_locks,
        )

    # -- checkpoints ----------------------------------------------------------------

    def start_checkpoints(self, now_ns: int) -> None:
        """The loop starts now: the first checkpoint is due ``checkpoint_first_s`` later."""
        oc = self.cfg.orchestrator
        first = min(oc.checkpoint_first_s, oc.checkpoint_period_s)
        self._checkpoint_interval_ns = int(first * NS_PER_S)
        self._checkpoint_due = now_ns + self._checkpoint_interval_ns

    def maybe_checkpoint(self, now_ns: int) -> None:
        """Save a checkpoint if one is due (call between cycles, after
        :meth:`start_checkpoints`): at ``checkpoint_first_s``, then at intervals doubling
        up to ``checkpoint_period_s``."""
        if self._checkpoint_interval_ns == 0:
            self.start_checkpoints(now_ns)
            return
        if now_ns < self._checkpoint_due:
            return
        period = int(self.cfg.orchestrator.checkpoint_period_s * NS_PER_S)
        self._checkpoint_interval_ns = min(2 * self._checkpoint_interval_ns, period)
        self._checkpoint_due = now_ns + self._checkpoint_interval_ns
        if self._pending_ckpt is not None and not self._pending_ckpt.done():
            return  # the disk is slower than the period: skip, never queue up
        snap = self.engs.state_dict()
        self._pending_ckpt = self._executor.submit(
            checkpoint.save_checkpoint, str(self.checkpoint_path), snap
        )
        if self.session is not None:
            self.session.flush()

    def close(self) -> None:
        if self._pending_ckpt is not None:
            self._pending_ckpt.result()
        checkpoint.save_checkpoint(str(self.checkpoint_path), self.engs.state_dict())
        self._executor.shutdown()
        if self.session is not None:
            self.session.close()
        self.writer.release()
        self.emergency_writer.release()


def collect_garbage(full: bool) -> None:
    """The collector runs here, after a cycle and off its clock, never inside one: the
    young generations once enough objects were allocated since, all of it when ``full``
    (every ``GC_FULL_EVERY_S``; the start-up objects are frozen, so it stays short)."""
    if full:
        gc.collect()
    elif gc.get_count()[0] >= GC_YOUNG_ALLOCATIONS:
        gc.collect(1)


async def _run(cfg: Config) -> int:
    region = open_for_service(
        cfg.instance, cfg.shm.max_areas, cfg.physics.areas, cfg.shm.lock_memory
    )
    orch = Orchestrator(cfg, region)
    server = SignalServer.from_config(cfg.signals, orch.inbox, orch, areas=cfg.physics.areas)
    await server.start()
    orch.server = server
    host, port = server.tcp_address
    publish_signals(
        region, f"[{host}]:{port}" if ":" in host else f"{host}:{port}", server.unix_path
    )  # `engs send --instance X` finds it here
    log.info("signals on %s; state in %s", ", ".join(server.addresses()), orch.dir)
    if orch.session is not None:
        log.info("session log %s", orch.session.open_segment(orch.engs))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    period = round(NS_PER_S / cfg.orchestrator.cycle_hz)
    physics = PeerLoss(region, Process.PHYSICS, cfg.orchestrator.exit_when_physics_lost_s)
    status = 0
    orch.hb.set_state(HeartbeatState.RUNNING)
    deadline = monotonic_ns() + period
    orch.start_checkpoints(deadline)
    gc_report = freeze_gc()  # as the physics does: start-up objects out of the collector
    log.debug("%s", gc_report)
    full_gc_every = max(1, round(GC_FULL_EVERY_S * cfg.orchestrator.cycle_hz))
    try:
        while not stop.is_set():
            delay = deadline - monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / NS_PER_S)  # a stop is seen within one period
                if stop.is_set():
                    break
            now = monotonic_ns()
            orch.cycle(now - deadline)
            orch.maybe_checkpoint(now)
            collect_garbage(orch.engs.cycle % full_gc_every == 0)
            if physics.lost(now):
                log.error(
                    "the physics has not beaten for %.1f s after being alive: exiting so "
                    "the container restarts into its new IPC namespace",
                    cfg.orchestrator.exit_when_physics_lost_s,
                )
                status = EXIT_PHYSICS_LOST
                break
            deadline, missed = next_deadline(deadline, period, monotonic_ns())
            if missed:
                orch.stats.inc(orch.c_miss, missed)
    finally:
        thaw_gc()
        orch.hb.set_state(HeartbeatState.STOPPING)
        await server.stop()
        orch.close()
        orch.hb.set_state(HeartbeatState.STOPPED)
        region.close()
    log.info("orchestrator stopped at cycle %d (seq %d)", orch.engs.cycle, orch.seq)
    return status


def run(cfg: Config) -> int:
    """Entry point of ``engs orchestrator``."""
    import uvloop  # noqa: PLC0415

    t0 = time.perf_counter()
    code = uvloop.run(_run(cfg))
    log.debug("ran %.1f s", time.perf_counter() - t0)
    return code
