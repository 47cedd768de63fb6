"""The instance's Prometheus metrics, read from shared memory at scrape time.

:class:`EngsCollector` is a custom ``prometheus_client`` Collector: it owns no metric
objects, and each :meth:`~EngsCollector.collect` reads the region and yields fresh
families. Register it on a registry of your own (the oracle builds one; never the
process-global default), e.g.::

    registry = CollectorRegistry()
    registry.register(EngsCollector(region))

What it yields (the full list with meanings is in docs/oracle.md):

* every counter of every process's stats block (:data:`engs.shared.stats_schema.COUNTERS`).
  A name+labels owned by several processes — ``engs_interrupts_total{cause}``, raised
  by the orchestrator and by the oracle — is exported once, **summed** over them, so
  the contract's series is one series per cause (per-raiser counts are in each
  process's own log; the raiser is also visible in ``engs status``);
* every histogram (:data:`engs.shared.stats_schema.HISTOGRAMS`) with the shared-memory buckets
  converted to seconds (25 µs … 100 ms, +Inf), summed the same way;
* gauges of the newest NeurochemicalState and PhysicsTelemetry (absent until the
  first publication), the interrupt word, heartbeats and liveness, pinning outcome,
  pending oracle requests, and the physics' deadline report: its achieved tick rate and
  whether the one health rule calls it degraded (absent while it cannot be judged).

Reads are lock-free seqlock copies; a lock serialises concurrent scrapes only because
the readers' scratch records are per collector.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.deadlines import DeadlineStatus, judge, read_report
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import HIST_BOUNDS_NS, REQUEST_KINDS, Cause, Mode, Process, RegionFlags
from engs.shared.liveness import LivenessLimits, LivenessMonitor, Verdict
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader
from engs.shared.stats import read_stats
from engs.shared.stats_schema import HistogramSpec

#: (gauge name, NeurochemicalState field, HELP)
STATE_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("engs_dopamine", "dopamine", "Global dopamine level D in [0, 1]."),
    ("engs_serotonin", "serotonin", "Global serotonin level S in [0, 1]."),
    ("engs_norepinephrine", "norepinephrine", "Global norepinephrine level N in [0, 1]."),
    ("engs_atp_ratio", "atp_ratio", "ATP budget as a fraction of its capacity."),
    ("engs_boredom", "boredom", "Boredom level in [0, 1]."),
    (
        "engs_average_reward_rate",
        "reward_rate",
        "Tonic dopamine: the average reward rate R-bar, reward per second (Niv et al. 2007).",
    ),
    (
        "engs_dopamine_phasic",
        "phasic_dopamine",
        "Phasic dopamine: the TD error, negative errors compressed (Bayer & Glimcher 2005).",
    ),
    ("engs_cortisol", "cortisol", "Cortisol (stress) level in [0, 1]."),
    (
        "engs_coupling_spectral_abscissa",
        "spectral_abscissa",
        "max Re(eigenvalue) of the coupling matrix in force, 1/s (< 0: stable).",
    ),
)
#: (gauge name, PhysicsTelemetry field, HELP)
TELEMETRY_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("engs_field_energy", "energy", "Field energy V = sum |psi|^2 (field units)."),
    ("engs_field_entropy_bits", "entropy_bits", "Shannon entropy of |psi|^2, in bits."),
    ("engs_field_hamiltonian", "hamiltonian", "Discrete Hamiltonian of the field."),
)

_PIN = (
    (RegionFlags.MLOCKED, "mlock", 1),
    (RegionFlags.MLOCK_FAILED, "mlock", 0),
    (RegionFlags.CUDA_REGISTERED, "cuda", 1),
    (RegionFlags.CUDA_REGISTER_FAILED, "cuda", 0),
)


def _lower(e: Any) -> str:
    return str(e.name).lower()


class EngsCollector(Collector):
    """Reads the whole region at scrape time; see the module docstring."""

    def __init__(self, region: Region, limits: LivenessLimits | None = None) -> None:
        self.region = region
        self._lock = threading.Lock()
        self._ctl = SeqlockReader(region, "control")
        self._tel = SeqlockReader(region, "telemetry")
        self._state: Any = self._ctl.new_record()
        self._telem: Any = self._tel.new_record()
        self._live = LivenessMonitor(region, limits)
        self._deadlines = SeqlockReader(region, "deadlines")
        self._irq = InterruptWord(region)
        self._hb = region.block("heartbeats")
        self._requests = region.block("requests")

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            return self._families()

    def _families(self) -> list[Metric]:
        snaps = [read_stats(self.region, p) for p in Process]
        self._ctl.read_latest(self._state)
        self._tel.read_latest(self._telem)
        live = self._live.check()
        now = monotonic_ns()
        out: list[Metric] = []
        out += _counters(snaps)
        out += _histograms(snaps)
        out += self._state_gauges(now)
        out += self._telemetry_gauges(now)
        out += self._interrupt_gauges()
        out += self._deadline_gauges(live, now)
        hb_age = GaugeMetricFamily(
            "engs_heartbeat_age_seconds",
            "Seconds since each process's last heartbeat.",
            labels=["process"],
        )
        up = GaugeMetricFamily(
            "engs_up",
            "1 if the process is alive (or starting) by the oracle's liveness rules, 0 if it "
            "is dead, frozen, failed or stopped; absent for processes never started.",
            labels=["process"],
        )
        pinned = GaugeMetricFamily(
            "engs_region_pinned",
            "1 if the process pinned its mapping of the region by this method, 0 if it tried "
            "and failed (reported, not fatal).",
            labels=["process", "method"],
        )
        for p, lv in live.items():
            name = _lower(p)
            if lv.heartbeat_age_s is not None:
                hb_age.add_metric([name], lv.heartbeat_age_s)
            if lv.pid:
                up.add_metric([name], 1.0 if lv.ok else 0.0)
            flags = int(self._hb[int(p)]["flags"])
            for flag, method, value in _PIN:
                if flags & flag:
                    pinned.add_metric([name, method], value)
        out += [hb_age, up, pinned]
        pending = GaugeMetricFamily(
            "engs_oracle_requests_pending",
            "Oracle requests not yet taken by the orchestrator, by kind.",
            labels=["kind"],
        )
        req = self._requests["requested"]["count"]
        app = self._requests["applied"]["count"]
        for i, kind in enumerate(REQUEST_KINDS):
            pending.add_metric([kind], float(int(req[i]) - int(app[i])))
        out.append(pending)
        return out

    def _state_gauges(self, now: int) -> list[Metric]:
        published = int(self._state["seq"]) > 0
        fams, age = _record_gauges(
            self._state,
            STATE_GAUGES,
            published,
            "engs_state_age_seconds",
            "Age of the newest published control state (now - t_calc).",
        )
        if published:
            age.add_metric([], (now - int(self._state["t_calc_ns"])) / NS_PER_S)
        return [*fams, age]

    def _telemetry_gauges(self, now: int) -> list[Metric]:
        t = self._telem
        ticked = int(t["tick"]) > 0
        fams, age = _record_gauges(
            t,
            TELEMETRY_GAUGES,
            ticked,
            "engs_telemetry_age_seconds",
            "Age of the newest physics telemetry (now - tick start).",
        )
        used = GaugeMetricFamily(
            "engs_applied_state_age_seconds",
            "Age of the control state the physics used at its newest tick (tick start - "
            "t_calc): the staleness the physics is running on right now.",
        )
        mode = GaugeMetricFamily(
            "engs_physics_mode", "1 if the physics reports this mode bit.", labels=["mode"]
        )
        if ticked:
            age.add_metric([], (now - int(t["t_ns"])) / NS_PER_S)
            if int(t["applied_seq"]):
                used.add_metric([], (int(t["t_ns"]) - int(t["applied_t_calc_ns"])) / NS_PER_S)
            bits = int(t["mode"])
            for m in Mode:
                mode.add_metric([_lower(m)], 1.0 if bits & int(m) else 0.0)
        return [*fams, age, used, mode]

    def _deadline_gauges(self, live: dict[Process, Any], now: int) -> list[Metric]:
        """The physics' DeadlineReport and the one rule's verdict on it."""
        rate = GaugeMetricFamily(
            "engs_physics_tick_rate_hz",
            "Ticks per second the physics achieved over its last report window (~10 s).",
        )
        degraded = GaugeMetricFamily(
            "engs_physics_degraded",
            "1 if the physics misses over 1 % of its deadlines or ticks below 95 % of its "
            "target over the last ~10 s, 0 if not; absent while that cannot be judged.",
        )
        health = judge(
            read_report(self.region, self._deadlines),
            now,
            running=live[Process.PHYSICS].verdict is Verdict.ALIVE,
        )
        if health.report is not None and health.status is not DeadlineStatus.UNKNOWN:
            rate.add_metric([], health.report.achieved_hz)
            degraded.add_metric([], 1.0 if health.degraded else 0.0)
        return [rate, degraded]

    def _interrupt_gauges(self) -> list[Metric]:
        active = GaugeMetricFamily(
            "engs_interrupt_active",
            "1 while the CRITICAL cause is set in any lane of the interrupt word.",
            labels=["cause"],
        )
        causes = int(self._irq.causes())
        for c in Cause:
            active.add_metric([_lower(c)], 1.0 if causes & int(c) else 0.0)
        return [active]


def _counters(snaps: Iterable[Any]) -> list[Metric]:
    totals: dict[str, dict[tuple[str, ...], int]] = {}
    keys: dict[str, tuple[str, ...]] = {}
    helps: dict[str, str] = {}
    for snap in snaps:
        for spec, value in snap.counters:
            helps.setdefault(spec.name, spec.help)
            names = tuple(k for k, _ in spec.labels)
            if keys.setdefault(spec.name, names) != names:
                raise ValueError(
                    f"counter {spec.name} has labels {keys[spec.name]} in one process and "
                    f"{names} in another: cannot sum them (fix shared/stats_schema.py COUNTERS)"
                )
            series = totals.setdefault(spec.name, {})
            values = tuple(v for _, v in spec.labels)
            series[values] = series.get(values, 0) + value
    fams: list[Metric] = []
    for name, series in totals.items():
        fam = CounterMetricFamily(name, helps[name], labels=list(keys[name]))
        for values, total in series.items():
            fam.add_metric(list(values), float(total))
        fams.append(fam)
    return fams


def _histograms(snaps: Iterable[Any]) -> list[Metric]:
    merged: dict[str, tuple[HistogramSpec, list[int], list[int]]] = {}
    for snap in snaps:
        for h in snap.histograms:
            spec, counts, total = merged.setdefault(
                h.spec.name, (h.spec, [0] * len(h.bucket_counts), [0])
            )
            for i, c in enumerate(h.bucket_counts):
                counts[i] += c
            total[0] += h.sum_ns
    bounds = [floatToGoString(b / NS_PER_S) for b in HIST_BOUNDS_NS] + ["+Inf"]
    fams: list[Metric] = []
    for spec, counts, total in merged.values():
        fam = HistogramMetricFamily(spec.name, spec.help)
        acc, buckets = 0, []
        for le, c in zip(bounds, counts, strict=True):
            acc += c
            buckets.append((le, float(acc)))
        fam.add_metric([], buckets, sum_value=total[0] / NS_PER_S)
        fams.append(fam)
    return fams


def _record_gauges(
    rec: Any,
    specs: tuple[tuple[str, str, str], ...],
    published: bool,
    age_name: str,
    age_doc: str,
) -> tuple[list[Metric], GaugeMetricFamily]:
    """One gauge per ``(name, field, doc)`` of ``specs`` from a seqlock record (empty
    until the record is ``published``), and the record's age gauge, left for the caller
    to fill (each record stamps its time in its own field)."""
    fams: list[Metric] = []
    for name, field, doc in specs:
        g = GaugeMetricFamily(name, doc)
        if published:
            g.add_metric([], float(rec[field]))
        fams.append(g)
    return fams, GaugeMetricFamily(age_name, age_doc)
