"""The oracle's poll loop: read every block, feed the rules, raise and clear interrupts
in the oracle's own lane, send requests, count.

One :class:`Watchdog` per oracle process, driven from one thread. Each :meth:`poll`:

1. copies the newest NeurochemicalState and PhysicsTelemetry out of their seqlocks;
2. new telemetry (a new ``tick``) → SCRAM rule (non-finite values, energy bound and
   growth); new applied state (a new ``applied_seq``) → staleness τ, sync violations
   counted once per applied state; new published state (a new ``seq``) → ATP, PANIC,
   UNSTABLE, anhedonia, and the fresh run that clears COGNITIVE_PAUSE;
3. starvation: while the physics ticks, no state published for > 50 ms, or the physics
   still using one computed > 50 ms ago → COGNITIVE_PAUSE;
4. every 250 ms the orchestrator's context-switch counter → mania; every 100 ms the
   liveness of every process (transitions are logged);
5. stores the wanted cause set into the oracle's lane (raise: count and log; clear: log)
   and warns if the physics, ticking, has not acted on a raised cause within 100 ms.
   A COGNITIVE_PAUSE raised while the physics or the orchestrator is starting (within
   :data:`STARTUP_GRACE_NS` of its start) is still raised — the interlock holds — but
   it and its clear are logged at INFO with that reason: a first cycle that is late
   while the processes load is expected, not an operator's concern;
6. beats the oracle's heartbeat, counts the poll and its duration.

The oracle never writes the control state: anhedonia and mania go to the orchestrator
as requests (:mod:`engs.shared.requests`). Its lane holds only causes it raised, except at
start, when it *adopts* bits a previous oracle left (they stay raised until their clear
rule is met, so a restarted oracle never silently drops a safety interlock).
"""

from __future__ import annotations

import logging
import math
import threading
from time import perf_counter_ns
from typing import Any

import numpy as np

from engs.services.oracle.ratelog import RateLimitedLog
from engs.services.oracle.rules import (
    AnhedoniaRule,
    BandRule,
    ManiaRule,
    ScramRule,
    StalenessRule,
    UnstableRule,
)
from engs.shared.clock import NS_PER_S, monotonic_ns, sleep_until
from engs.shared.config import OracleConfig
from engs.shared.heartbeat import Heartbeat
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import REQUEST_KINDS, Cause, HeartbeatState, Lane, Mode, Process
from engs.shared.liveness import Liveness, LivenessLimits, LivenessMonitor, Verdict
from engs.shared.region import Region
from engs.shared.requests import RequestSender
from engs.shared.seqlock import SeqlockReader
from engs.shared.stats import StatsWriter, read_stats
from engs.shared.stats_schema import SYNC_CHANNELS, counter_index

log = logging.getLogger("engs.oracle")

#: The causes the oracle raises and clears in its lane (MANUAL is the operator's).
OWNED = Cause.SCRAM | Cause.ATP_EXHAUSTED | Cause.PANIC | Cause.UNSTABLE | Cause.COGNITIVE_PAUSE

MANIA_SAMPLE_NS = 250_000_000
#: A process started less than this long ago is starting (COGNITIVE_PAUSE logged at INFO).
STARTUP_GRACE_NS = 5 * NS_PER_S
LIVENESS_EVERY_NS = 100_000_000
ACT_TIMEOUT_NS = 100_000_000

_TELEMETRY_FLOATS = (
    "energy", "hamiltonian", "entropy_bits", "entropy_err_bits", "kinetic_cost",
    "metabolic_cost",
)  # fmt: skip
_TELEMETRY_AREAS = ("area_activity", "area_metric_grad")
_STATE_LEVELS = ("dopamine", "serotonin", "norepinephrine", "atp_ratio", "cortisol", "boredom")


def _ms(ns: int) -> float:
    return ns / 1e6


class Watchdog:
    """The oracle's state and its poll. Not thread-safe: one thread polls."""

    def __init__(self, region: Region, cfg: OracleConfig) -> None:
        self.region = region
        self.cfg = cfg
        self._unstable_reported = False  # the state's spectral abscissa is >= 0
        self._orch_state = region.scalar(f"heartbeats[{int(Process.ORCHESTRATOR)}].state")
        self._started = [
            (p, region.scalar(f"heartbeats[{int(p)}].started_ns"))
            for p in (Process.PHYSICS, Process.ORCHESTRATOR)
        ]
        self._quiet_pause = False  # the pause now raised was raised during start-up
        self.period_ns = round(NS_PER_S / cfg.poll_hz)
        self._max_areas = int(region.view["header"]["max_areas"])
        self._ctl = SeqlockReader(region, "control")
        self._tel = SeqlockReader(region, "telemetry")
        self._state: Any = self._ctl.new_record()
        self._telem: Any = self._tel.new_record()
        self._irq = InterruptWord(region, Lane.ORACLE)
        self._requests = RequestSender(region)
        self.stats = StatsWriter(region, Process.ORACLE)
        st = self.stats
        self._i_polls = st.counter("engs_oracle_polls_total")
        self._i_poll_s = st.histogram("engs_oracle_poll_seconds")
        self._i_sync = {
            c: st.counter("engs_sync_violations_total", channel=c) for c in SYNC_CHANNELS
        }
        self._i_req = {k: st.counter("engs_oracle_requests_total", kind=k) for k in REQUEST_KINDS}
        self._i_irq = {
            c: st.counter("engs_interrupts_total", cause=str(c.name).lower()) for c in Cause
        }
        sync_ns = round(cfg.sync_limit_s * NS_PER_S)
        self.pause_limit_ns = round(cfg.pause_limit_s * NS_PER_S)
        limits = {c: sync_ns for c in SYNC_CHANNELS}
        limits["serotonin"] = round(cfg.serotonin_sync_limit_s * NS_PER_S)
        self.staleness = StalenessRule(
            limits,
            sync_limit_ns=sync_ns,
            pause_limit_ns=self.pause_limit_ns,
            clear_states=cfg.pause_clear_states,
        )
        self.scram = ScramRule(
            energy_per_node_max=cfg.scram_energy_per_node_max,
            growth_factor=cfg.scram_growth_factor,
            growth_window_ns=round(cfg.scram_growth_window_s * NS_PER_S),
            growth_floor_per_node=cfg.scram_growth_floor_per_node,
            clear_ns=round(cfg.scram_clear_s * NS_PER_S),
            clear_ratio=cfg.scram_clear_ratio,
        )
        self.atp = BandRule(cfg.atp_exhausted_below, cfg.atp_clear_above, above=False)
        self.panic = BandRule(cfg.panic_above, cfg.panic_clear_below, above=True)
        self.unstable = UnstableRule(
            window=cfg.unstable_window_cycles,
            min_run=cfg.unstable_min_run_cycles,
            growth_ratio=cfg.unstable_growth_ratio,
            min_step=cfg.unstable_min_step,
            bound_eps=cfg.unstable_bound_eps,
            clear_cycles=cfg.unstable_clear_cycles,
        )
        self.anhedonia = AnhedoniaRule(
            below=cfg.anhedonia_below,
            cycles=cfg.anhedonia_cycles,
            ma_cycles=cfg.anhedonia_ma_cycles,
            rearm_above=cfg.anhedonia_rearm_above,
        )
        self.mania = ManiaRule(
            rate_per_s=cfg.mania_switches_per_s,
            window_ns=round(cfg.mania_window_s * NS_PER_S),
            clear_ratio=cfg.mania_clear_ratio,
            cooldown_ns=round(cfg.mania_cooldown_s * NS_PER_S),
        )
        self._live = LivenessMonitor(region, LivenessLimits.from_config(cfg))
        self.liveness: dict[Process, Liveness] = {}
        self._rlog = RateLimitedLog(log, round(cfg.log_interval_s * NS_PER_S))
        self._reasons: dict[Cause, str] = {}
        self.polls = 0
        self.last_poll_ns = 0
        self._last_mania_ns: int | None = None
        self._last_live_ns: int | None = None
        # Judge from now on: the applied state and the physics' non-finite count
        # present at start were the previous oracle's to judge. Published states are
        # judged from the current one (a low ATP already there must raise).
        self._tel.read_latest(self._telem)
        self._applied_seq = int(self._telem["applied_seq"])
        # The physics' cumulative non-finite count: the per-tick telemetry field shows a
        # non-finite tick only in that tick's record, which a 4 ms poll may never see.
        nf = counter_index(Process.PHYSICS, "engs_physics_nonfinite_total")
        self._nonfinite_total = region.scalar(f"stats[{int(Process.PHYSICS)}].counters[{nf}]")
        self._nonfinite = int(self._nonfinite_total[0])
        self._tick = 0
        self._state_seq = 0
        self._adopt(monotonic_ns())
        self.heartbeat = Heartbeat(region, Process.ORACLE)

    # -- start-up ------------------------------------------------------------

    def _adopt(self, now: int) -> None:
        left = self._irq.lane_causes(Lane.ORACLE) & OWNED
        if not left:
            return
        if left & Cause.SCRAM:
            self.scram.adopt(now)
        self.atp.active = bool(left & Cause.ATP_EXHAUSTED)
        self.panic.active = bool(left & Cause.PANIC)
        if left & Cause.UNSTABLE:
            self.unstable.adopt()
        self.staleness.active = bool(left & Cause.COGNITIVE_PAUSE)
        for c in _causes(left):
            self._reasons[c] = "adopted from a previous oracle"
        log.warning(
            "adopting %s left raised in the oracle lane; each clears by its rule",
            _names(left),
        )

    # -- one poll --------------------------------------------------------------

    def poll(self, now_ns: int | None = None) -> None:
        """One poll (see the module docstring). ``now_ns`` (tests): the time to judge at."""
        t0 = perf_counter_ns()
        now = monotonic_ns() if now_ns is None else now_ns
        self._ctl.read_latest(self._state)
        self._tel.read_latest(self._telem)
        s, t = self._state, self._telem
        self._on_telemetry(t)
        self._on_state(now, s)
        self._on_staleness(now, s, t)
        if self._last_mania_ns is None or now - self._last_mania_ns >= MANIA_SAMPLE_NS:
            self._last_mania_ns = now
            self._on_mania(now)
        if self._last_live_ns is None or now - self._last_live_ns >= LIVENESS_EVERY_NS:
            self._last_live_ns = now
            self._on_liveness(now)
        self._apply(now, t)
        self.heartbeat.beat()
        self.polls += 1
        self.last_poll_ns = monotonic_ns()
        self.stats.inc(self._i_polls)
        self.stats.observe_ns(self._i_poll_s, perf_counter_ns() - t0)

    def _on_telemetry(self, t: Any) -> None:
        tick = int(t["tick"])
        if tick in (0, self._tick):
            return
        self._tick = tick
        t_ns = int(t["t_ns"])
        bad = [f for f in _TELEMETRY_FLOATS if not math.isfinite(float(t[f]))]
        n = min(int(t["n_areas"]), self._max_areas)
        bad += [f for f in _TELEMETRY_AREAS if n and not np.isfinite(t[f][:n]).all()]
        total = int(self._nonfinite_total[0])
        counted, self._nonfinite = total - self._nonfinite, total
        if bad:
            raised = self.scram.on_nonfinite(t_ns, "telemetry " + ", ".join(bad))
        elif counted > 0 or int(t["nonfinite"]):
            n = max(counted, int(t["nonfinite"]))
            raised = self.scram.on_nonfinite(t_ns, f"field values ({n} counted by the physics)")
        else:
            raised = self.scram.on_energy(t_ns, float(t["energy"]), int(t["n_nodes"]))
        if raised:
            self._reasons[Cause.SCRAM] = self.scram.reason

    def _on_state(self, now: int, s: Any) -> None:
        seq = int(s["seq"])
        if seq in (0, self._state_seq):
            return
        self._state_seq = seq
        self.staleness.on_published(now - int(s["t_calc_ns"]))
        lv = {f: float(s[f]) for f in _STATE_LEVELS}
        bad = [f for f, v in lv.items() if not math.isfinite(v)]
        if bad and self.scram.on_nonfinite(now, "state " + ", ".join(bad)):
            self._reasons[Cause.SCRAM] = self.scram.reason
        atp, n = lv["atp_ratio"], lv["norepinephrine"]
        was_atp, was_panic = self.atp.active, self.panic.active
        if self.atp.update(atp) and not was_atp:
            self._reasons[Cause.ATP_EXHAUSTED] = f"ATP ratio {atp:.4f} < {self.atp.raise_at}"
        if self.panic.update(n) and not was_panic:
            self._reasons[Cause.PANIC] = f"norepinephrine {n:.4f} > {self.panic.raise_at}"
        abscissa = float(s["spectral_abscissa"])
        reported = math.isfinite(abscissa) and abscissa >= 0.0
        if reported and not self._unstable_reported:
            self._reasons[Cause.UNSTABLE] = (
                f"the orchestrator's coupling matrix has spectral abscissa {abscissa:+.4g} /s"
            )
        self._unstable_reported = reported
        was = self.unstable.active
        levels = (lv["dopamine"], lv["serotonin"], n)
        if self.unstable.on_state(seq, levels, int(s["signal_id"])) and not was:
            u = self.unstable
            self._reasons[Cause.UNSTABLE] = (
                f"D, S, N = {', '.join(f'{x:.3f}' for x in levels)} pinned at a bound after "
                f"steps grew x{u.last_growth:.3g} over {u.last_run} cycles with no signal"
            )
        if self.anhedonia.on_state(seq, lv["dopamine"]):
            self._request(
                "emergency_stimulus",
                f"moving average of D {self.anhedonia.moving_average:.4f} < "
                f"{self.anhedonia.below} for {self.anhedonia.cycles} cycles (anhedonia)",
            )

    def _on_staleness(self, now: int, s: Any, t: Any) -> None:
        applied = int(t["applied_seq"])
        if applied and applied != self._applied_seq:
            self._applied_seq = applied
            tau = int(t["applied_t_ns"]) - int(t["applied_t_calc_ns"])
            was = self.staleness.active
            channels = self.staleness.on_applied(tau)
            for ch in channels:
                self.stats.inc(self._i_sync[ch])
            if channels:
                self._rlog.log(
                    "sync",
                    now,
                    logging.WARNING,
                    "SYNC_VIOLATION: state seq %d applied %.3f ms after it was computed "
                    "(over the limit for %s)",
                    applied,
                    _ms(tau),
                    ", ".join(channels),
                )
            if self.staleness.active and not was:
                self._reasons[Cause.COGNITIVE_PAUSE] = (
                    f"state seq {applied} applied {_ms(tau):.3f} ms after it was computed"
                )
        tick_t = int(t["t_ns"])
        if int(t["tick"]) == 0 or now - tick_t > self.pause_limit_ns:
            return  # the physics is not ticking: nothing is applying stale states
        seq = int(s["seq"])
        published_age = now - int(s["t_calc_ns"])
        used_age = tick_t - int(t["applied_t_calc_ns"])
        why = ""
        if self._orch_state[0] in (HeartbeatState.STOPPING, HeartbeatState.STOPPED):
            return  # a planned stop (e.g. `engs up` shutting down in order) is not lag
        if seq and published_age > self.pause_limit_ns:
            why = f"no state published for {_ms(published_age):.1f} ms"
        elif applied and not int(t["mode"]) & Mode.SAFE and used_age > self.pause_limit_ns:
            why = f"the physics still applies state seq {applied}, {_ms(used_age):.1f} ms old"
        if why:
            if not self.staleness.active:
                self._reasons[Cause.COGNITIVE_PAUSE] = why
            self.staleness.on_starved()

    def _on_mania(self, now: int) -> None:
        count = read_stats(self.region, Process.ORCHESTRATOR).counter(
            "engs_orchestrator_context_switches_total"
        )
        if self.mania.on_sample(now, count):
            self._request(
                "serotonin_boost",
                f"context-switch rate {self.mania.rate_per_s_now:.3g}/s above "
                f"{self.mania.rate_per_s}/s (mania)",
            )

    def _on_liveness(self, now: int) -> None:
        live = self._live.check(now)
        for p, cur in live.items():
            prev = self.liveness.get(p)
            if prev is not None and prev.verdict == cur.verdict:
                continue
            quiet = cur.ok or cur.verdict in (Verdict.ABSENT, Verdict.STOPPED)
            log.log(logging.INFO if quiet else logging.WARNING, "liveness: %s", cur.detail)
        self.liveness = live

    def _request(self, kind: str, why: str) -> None:
        n = self._requests.request(kind)
        self.stats.inc(self._i_req[kind])
        log.warning("requesting %s (request #%d): %s", kind, n, why)

    def _apply(self, now: int, t: Any) -> None:
        want = Cause(0)
        for cause, active in (
            (Cause.SCRAM, self.scram.active),
            (Cause.ATP_EXHAUSTED, self.atp.active),
            (Cause.PANIC, self.panic.active),
            (Cause.UNSTABLE, self.unstable.active or self._unstable_reported),
            (Cause.COGNITIVE_PAUSE, self.staleness.active),
        ):
            if active:
                want |= cause
        lane = self._irq.lane_causes(Lane.ORACLE)
        up = want & ~lane
        down = lane & OWNED & ~want
        if up:
            for c in _causes(self._irq.raise_cause(up)):
                self.stats.inc(self._i_irq[c])
                level, why = logging.WARNING, ""
                if c is Cause.COGNITIVE_PAUSE:
                    starting = self._starting(now)
                    self._quiet_pause = starting is not None
                    if starting is not None:
                        level, why = logging.INFO, f" (during start-up: {starting})"
                log.log(level, "raised %s: %s%s", c.name, self._reasons.get(c, "?"), why)
        if down:
            self._irq.clear_cause(down)
            for c in _causes(down):
                quiet = c is Cause.COGNITIVE_PAUSE and self._quiet_pause
                log.log(
                    logging.INFO if quiet else logging.WARNING,
                    "cleared %s (its clear rule is met)%s",
                    c.name,
                    " (raised during start-up)" if quiet else "",
                )
                self._reasons.pop(c, None)
        held = int(want) & ~int(t["interrupt_mask"])
        if held and int(t["tick"]) and now - int(t["t_ns"]) <= self.pause_limit_ns:
            for c in _causes(held):
                age = monotonic_ns() - self._irq.raised_at(c)  # raise times are real
                if age > ACT_TIMEOUT_NS:
                    self._rlog.log(
                        f"unacted-{c.name}",
                        now,
                        logging.ERROR,
                        "the physics ticks but has not acted on %s raised %.1f ms ago",
                        c.name,
                        _ms(age),
                    )

    def _starting(self, now: int) -> str | None:
        """Which process is starting (started < STARTUP_GRACE_NS ago), or None."""
        for p, started in self._started:
            t = int(started[0])
            if t and now - t < STARTUP_GRACE_NS:
                return f"the {p.name.lower()} started {(now - t) / NS_PER_S:.1f} s ago"
        return None

    # -- the loop -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll at ``poll_hz`` on absolute deadlines until ``stop`` is set. A poll
        that overruns by more than a period resynchronises instead of bursting."""
        period = self.period_ns
        deadline = monotonic_ns()
        while not stop.is_set():
            self.poll()
            deadline += period
            now = monotonic_ns()
            if now - deadline > period:
                # Resynchronise instead of bursting. Worth a warning only when the lag
                # reaches the pause limit: then staleness is judged late.
                late = now - deadline
                warn = late > self.pause_limit_ns
                self._rlog.log(
                    "behind-warn" if warn else "behind",
                    now,
                    logging.WARNING if warn else logging.DEBUG,
                    "poll loop %.1f ms behind its deadline; resynchronising",
                    _ms(late),
                )
                deadline = now
            else:
                sleep_until(deadline, spin_ns=0)


def _causes(c: Cause | int) -> list[Cause]:
    return [x for x in Cause if int(c) & int(x)]


def _names(c: Cause | int) -> str:
    return "|".join(str(x.name) for x in _causes(c))
