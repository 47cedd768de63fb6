"""``engs physics``: the 1 kHz real-time loop.

Per tick, in this order (ARCHITECTURE §1, seed 003 GAP-022):

1. wait for the tick's absolute deadline (sleep, then spin the last ``spin_us``);
2. test the interrupt word — one load; when a cause is set, note the raise time, act
   (emergency damping, the orchestrator's emergency state if it published one for this
   episode) and record raise → act latency once per raise;
3. take ONE snapshot of the newest NeurochemicalState (phase coherence: the whole tick
   uses it); on a new ``seq`` record staleness (t_applied − t_calc), and on a new
   signal id the signal → applied latency; a one-shot stimulus applies on that tick only;
4. one field step (leapfrog, plasticity, reductions), into the telemetry record;
5. a non-finite field is recovered at once and SCRAM raised on the physics lane (cleared
   after ``scram_clear_ticks`` finite ticks);
6. publish telemetry, heartbeat, tick time and lateness into the stats histograms.

How well it keeps its deadlines is reported by a thread of the same process, outside
the loop (:mod:`engs.services.physics.deadlines`): about once a second it publishes the
achieved rate, the misses and the p99s of the last 10 s into the region and logs a
rate-limited warning, naming the rate achieved, while the physics falls behind.

Deadline policy (catch-up): ticks are on a fixed grid ``t0 + k·period``. A tick that
ends after the next deadline makes the loop *skip* every deadline already past —
counting each as a miss — and resume on the grid: no burst of back-to-back ticks (which
would make the simulated time run ahead of the control state) and no drift of phase.

Nothing in the loop logs, allocates arrays, takes a lock or does I/O other than plain
loads and stores to the region. Start-up (region, backend, real-time setup) and shutdown
(SIGTERM/SIGINT: finish the tick, mark the heartbeat STOPPED, release the telemetry
writer) happen outside it. The physics never serves HTTP; the oracle exports its stats.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from engs.services.physics.backend import Backend, select_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.deadlines import DeadlineReporter
from engs.services.physics.field import make_field
from engs.services.physics.misses import MissTrace
from engs.shared.clock import NS_PER_S, monotonic_ns, next_deadline, sleep_until
from engs.shared.config import Config
from engs.shared.heartbeat import Heartbeat
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, HeartbeatState, Lane, Mode, Process, RegionFlags
from engs.shared.region import Region, open_for_service
from engs.shared.rt import (
    RtResult,
    auto_sched_fifo,
    freeze_gc,
    set_affinity,
    set_sched_fifo,
    set_timer_slack,
    thaw_gc,
)
from engs.shared.seqlock import SeqlockReader, SeqlockWriter
from engs.shared.stats import StatsWriter

log = logging.getLogger("engs.physics")

#: An emergency state counts for an episode if computed at most this long before the
#: episode's first raise (the orchestrator publishes it just before raising).
EMERGENCY_STATE_WINDOW_NS = 100_000_000


class _Stop:
    """Set by SIGTERM/SIGINT; the loop checks it once per tick."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def setup_realtime(cfg: Config, stats: StatsWriter) -> list[RtResult]:
    """Timer slack, SCHED_FIFO (auto, explicit or off) and CPU affinity; failures
    logged and counted."""
    p = cfg.physics
    results = [set_timer_slack(p.timer_slack_ns)]
    if p.sched_fifo_priority is None:  # auto: when safe and allowed (shared/rt.py)
        results.append(auto_sched_fifo())
    elif p.sched_fifo_priority > 0:
        results.append(set_sched_fifo(p.sched_fifo_priority))
    if p.cpu_affinity is not None:
        results.append(set_affinity(p.cpu_affinity))
    failures = stats.counter("engs_physics_rt_setup_failures_total")
    for r in results:
        if r.ok:
            log.info("real-time setup %s", r)
        else:
            log.warning("real-time setup %s", r)
            stats.inc(failures)
    return results


class PhysicsLoop:
    """The loop's preallocated state; :meth:`run` is the loop."""

    def __init__(self, cfg: Config, region: Region, backend: Backend | None = None) -> None:
        self.cfg = cfg
        self.region = region
        p = cfg.physics
        self.backend = backend or select_backend(p.backend, p.shape)
        log.info("backend %s: %s", self.backend.name, self.backend.reason)
        if self.backend.name == "cupy" and not region.register_with_cuda():
            log.warning("%s", region.pin_errors[-1])
        self.field = make_field(p, self.backend)
        self.field.warm_up()  # compile the rare paths' kernels now, not inside a tick
        self.n_areas = len(p.areas)
        self.coeffs = Coefficients(self.n_areas)
        self.state_reader = SeqlockReader(region, "control")
        self.emergency_reader = SeqlockReader(region, "interrupt.emergency")
        self.tel_writer = SeqlockWriter(region, "telemetry")
        self.irq = InterruptWord(region, Lane.PHYSICS)
        self.hb = Heartbeat(region, Process.PHYSICS)
        self.stats = StatsWriter(region, Process.PHYSICS)
        self.state = self.state_reader.new_record()
        self.emergency = self.emergency_reader.new_record()
        self.tel = self.tel_writer.new_record()
        # Continue the tick counter of a previous incarnation (restart by the supervisor).
        self.tel_writer.last_published(self.tel)
        self.period_ns = round(NS_PER_S / p.tick_hz)
        self.spin_ns = int(p.spin_us * 1000)
        self.stop = _Stop()
        self.trace = MissTrace.from_env(self.period_ns)  # ENGS_MISS_TRACE: diagnostics

    def run(self) -> int:
        s = self.stats
        c_ticks = s.counter("engs_physics_ticks_total")
        c_miss = s.counter("engs_physics_deadline_misses_total")
        c_cfl = s.counter("engs_physics_cfl_clamps_total")
        c_nonfinite = s.counter("engs_physics_nonfinite_total")
        c_applied = s.counter("engs_physics_states_applied_total")
        c_stale = s.counter("engs_physics_stale_reads_total")
        c_acted = {
            c: s.counter("engs_physics_interrupts_acted_total", cause=c.name.lower())
            for c in Cause
            if c.name
        }
        h_tick = s.histogram("engs_physics_tick_seconds")
        h_late = s.histogram("engs_physics_tick_lateness_seconds")
        h_stale = s.histogram("engs_state_staleness_seconds")
        h_signal = s.histogram("engs_signal_latency_seconds")
        h_irq = s.histogram("engs_interrupt_latency_seconds")

        field, coeffs, irq, hb = self.field, self.coeffs, self.irq, self.hb
        state, tel, emergency = self.state, self.tel, self.emergency
        read_state = self.state_reader.read_latest
        read_emergency = self.emergency_reader.read_latest
        publish = self.tel_writer.publish
        period, spin = self.period_ns, self.spin_ns
        stop = self.stop
        trace = self.trace
        mg_every = self.cfg.physics.metric_grad_every
        scram_clear_ticks = self.cfg.physics.scram_clear_ticks
        safe_bit = int(Mode.SAFE)

        tick = int(tel["tick"])
        last_seq = 0
        last_signal = 0
        applied_t_calc = applied_t = applied_signal_t = 0
        handled_raise = 0
        acted_t = 0
        prev_causes = 0
        finite_run = -1  # ticks since our own SCRAM recovery; -1: no SCRAM of ours
        safe = False

        hb.set_state(HeartbeatState.RUNNING)
        deadline = monotonic_ns() + period
        while not stop.requested:
            lateness = sleep_until(deadline, spin)
            t0 = monotonic_ns()
            if trace is not None:
                trace.tick_start()

            # 2. the interrupt word: one load when nothing is set
            causes = 0
            raised = 0
            if irq.test():
                causes = int(irq.causes())
                raised = irq.raised_at(Cause(causes))
                if raised != handled_raise:
                    handled_raise = raised
                    acted_t = t0
                    s.observe_ns(h_irq, t0 - raised)
                new_bits = causes & ~prev_causes
                if new_bits:
                    for c, idx in c_acted.items():
                        if new_bits & c:
                            s.inc(idx)
            prev_causes = causes
            critical = causes != 0
            if critical != safe:
                safe = critical
                hb.set_state(HeartbeatState.SAFE_MODE if safe else HeartbeatState.RUNNING)

            # 3. one coherent snapshot for the whole tick
            state_ok = read_state(state)
            if not state_ok:
                s.inc(c_stale)
            seq = int(state["seq"])
            new_state = seq not in (last_seq, 0)
            if new_state:
                last_seq = seq
                applied_t = t0
                applied_t_calc = int(state["t_calc_ns"])
                s.observe_ns(h_stale, t0 - applied_t_calc)
                s.inc(c_applied)
                sid = int(state["signal_id"])
                if sid not in (last_signal, 0):
                    last_signal = sid
                    applied_signal_t = int(state["signal_t_ns"])
                    s.observe_ns(h_signal, t0 - applied_signal_t)
            source = state
            if (
                critical
                and read_emergency(emergency)
                and int(emergency["seq"]) != 0
                and int(emergency["t_calc_ns"]) >= raised - EMERGENCY_STATE_WINDOW_NS
            ):
                source = emergency
            coeffs.load_state(source, with_stimulus=new_state and source is state)

            # 4. the step, straight into the telemetry record
            t_step = monotonic_ns()
            r = field.step(coeffs, critical=critical, out=tel)
            t_step = monotonic_ns() - t_step

            # 5. non-finite field: recover now, SCRAM on our lane until it stays finite
            if r.nonfinite:
                s.inc(c_nonfinite, r.nonfinite)
                field.recover_nonfinite()
                irq.raise_cause(Cause.SCRAM, t0)
                finite_run = 0
            elif finite_run >= 0:
                finite_run += 1
                if finite_run >= scram_clear_ticks:
                    irq.clear_cause(Cause.SCRAM)
                    finite_run = -1
            if r.cfl_clamps:
                s.inc(c_cfl, r.cfl_clamps)

            # 6. publish
            tick += 1
            tel["tick"] = tick
            tel["t_ns"] = t0
            tel["lateness_ns"] = lateness
            tel["applied_seq"] = last_seq
            tel["applied_t_calc_ns"] = applied_t_calc
            tel["applied_t_ns"] = applied_t
            tel["applied_signal_id"] = last_signal
            tel["applied_signal_t_ns"] = applied_signal_t
            tel["interrupt_mask"] = causes
            tel["interrupt_raised_t_ns"] = handled_raise
            tel["interrupt_acted_t_ns"] = acted_t
            tel["mode"] = (safe_bit if critical else 0) | (int(source["flags"]) & ~safe_bit)
            t1 = monotonic_ns()
            tel["tick_ns"] = t1 - t0
            publish(tel)
            hb.beat()
            s.inc(c_ticks)
            s.observe_ns(h_tick, t1 - t0)
            s.observe_ns(h_late, lateness)

            now = monotonic_ns()
            deadline, missed = next_deadline(deadline, period, now)
            if missed:
                s.inc(c_miss, missed)
                if trace is not None:
                    overrun = now - (deadline - missed * period)
                    trace.miss(tick, missed, tick % mg_every == 0, state_ok, t0, lateness,
                               t_step, t1 - t0, overrun)  # fmt: skip
        return tick


def run(cfg: Config) -> int:
    """Entry point of ``engs physics``: runs until SIGTERM/SIGINT, returns 0."""
    # before the region: a lattice no backend here can run is refused with nothing created
    backend = select_backend(cfg.physics.backend, cfg.physics.shape)
    region = open_for_service(
        cfg.instance, cfg.shm.max_areas, cfg.physics.areas, cfg.shm.lock_memory
    )
    loop = PhysicsLoop(cfg, region, backend)
    if region.pin_flags & (RegionFlags.MLOCK_FAILED | RegionFlags.CUDA_REGISTER_FAILED):
        loop.stats.inc(loop.stats.counter("engs_physics_rt_setup_failures_total"))
    setup_realtime(cfg, loop.stats)
    prev: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        prev[sig] = signal.signal(sig, loop.stop)
    # The rate it achieves is the reporter's to say (after its first window), not ours.
    log.info(
        "physics starting at a target of %.0f Hz on %s, lattice %s (%d nodes), areas %s",
        cfg.physics.tick_hz,
        loop.backend.name,
        "x".join(map(str, cfg.physics.shape)),
        int(loop.tel["n_nodes"]) or _nodes(cfg),
        ", ".join(cfg.physics.areas),
    )
    reporter = DeadlineReporter(region, cfg.physics.tick_hz)
    if loop.trace is not None:
        reporter.busy = loop.trace.reporter_busy
    reporting = threading.Event()
    reporter_thread = reporter.start(reporting)
    freeze_gc()
    try:
        ticks = loop.run()
    finally:
        thaw_gc()
        if loop.trace is not None:
            loop.trace.write()
            log.info("deadline misses traced to %s: %s", loop.trace.path, loop.trace.summary())
        reporting.set()
        reporter_thread.join(timeout=2.0)
        reporter.release()
        loop.hb.set_state(HeartbeatState.STOPPED)
        loop.tel_writer.release()
        for sig, handler in prev.items():
            signal.signal(sig, handler)
    log.info("physics stopped after tick %d", ticks)
    region.close()
    return 0


def _nodes(cfg: Config) -> int:
    n = 1
    for s in cfg.physics.shape:
        n *= s
    return n
