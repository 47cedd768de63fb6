"""``engs status``: attach to a live region and show what it holds.

Read-only: it maps the region without pinning, reads the control and telemetry
seqlocks as any reader does, the interrupt word, the heartbeats, where the instance
listens (:mod:`engs.shared.endpoints`) and the physics' deadline report
(:mod:`engs.shared.deadlines`), and judges each process by the one health rule
(:mod:`engs.shared.liveness`). Never writes.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import msgspec

from engs.shared.clock import NS_PER_S, monotonic_ns, wall_ns
from engs.shared.config import Config
from engs.shared.deadlines import DeadlineReport, read_report
from engs.shared.endpoints import connect_addr, read_endpoints
from engs.shared.heartbeat import read_heartbeats
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import (
    NEUROMODULATORS,
    Cause,
    HeartbeatState,
    Lane,
    Mode,
    Process,
    RegionFlags,
)
from engs.shared.liveness import LivenessLimits, LivenessMonitor, judge_all
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader
from engs.shared.stats import read_stats

_GLOBALS = (
    "dopamine", "serotonin", "norepinephrine", "atp_ratio", "atp_reserve", "cortisol",
    "boredom", "td_error", "phasic_dopamine", "reward_rate", "relevance_gate",
    "plasticity_gate", "elasticity_gate", "speed_gain",
)  # fmt: skip
_AREA_COEFFS = (
    "area_plasticity", "area_elasticity", "area_speed", "area_damping", "area_drive",
    "area_stimulus", "area_noise",
)  # fmt: skip
_TELEMETRY = (
    "energy", "hamiltonian", "entropy_bits", "entropy_err_bits", "kinetic_cost",
    "metabolic_cost",
)  # fmt: skip


def _flags(enum_cls: type[Mode] | type[Cause] | type[RegionFlags], value: int) -> list[str]:
    return [m.name.lower() for m in enum_cls if m.name and value & int(m)]


def _age_s(now: int, t_ns: int) -> float | None:
    return (now - t_ns) / NS_PER_S if t_ns else None


class Snapshotter:
    """Readers built once; :meth:`snapshot` returns one plain dict per call."""

    def __init__(self, region: Region, limits: LivenessLimits | None = None) -> None:
        self.region = region
        self._live = LivenessMonitor(region, limits)
        self._deadlines = SeqlockReader(region, "deadlines")
        self._ctl = SeqlockReader(region, "control")
        self._tel = SeqlockReader(region, "telemetry")
        self._state = self._ctl.new_record()
        self._telem = self._tel.new_record()
        self._irq = InterruptWord(region)

    def snapshot(self) -> dict[str, Any]:
        r = self.region
        state_fresh = self._ctl.read_latest(self._state)
        tel_fresh = self._tel.read_latest(self._telem)
        now = monotonic_ns()
        hdr = r.view["header"]
        names = r.area_names
        s, t = self._state, self._telem

        def area_rows(n: int) -> list[str]:
            return [names[i] if i < len(names) else f"area{i}" for i in range(n)]

        n_state = min(int(s["n_areas"]), int(r.view["header"]["max_areas"]))
        n_tel = min(int(t["n_areas"]), int(r.view["header"]["max_areas"]))
        causes = self._irq.causes()
        health = judge_all(self._live.check(now), read_report(r, self._deadlines), now)
        deadlines = health[Process.PHYSICS].deadlines
        assert deadlines is not None  # judge_all judges the physics' deadlines
        ends = read_endpoints(r)
        physics_stats = read_stats(r, Process.PHYSICS)
        return {
            "instance": r.instance,
            "endpoints": {
                "signals": ends.signal_tcp and connect_addr(ends.signal_tcp),
                "signals_bound": ends.signal_tcp,
                "signals_unix": ends.signal_unix,
                "metrics": ends.metrics_url and ends.metrics_url + "/metrics",
                "healthz": ends.metrics_url and ends.metrics_url + "/healthz",
            },
            "deadlines": {
                "status": deadlines.status.value,
                "reasons": list(deadlines.reasons),
                "ticks_total": physics_stats.counter("engs_physics_ticks_total"),
                "misses_total": physics_stats.counter("engs_physics_deadline_misses_total"),
                **_report_fields(deadlines.report),
                "report_age_s": deadlines.age_s,
            },
            "region": {
                "name": r.name,
                "size_bytes": r.size,
                "layout_version": int(hdr["layout_version"]),
                "max_areas": int(hdr["max_areas"]),
                "creator_pid": int(hdr["creator_pid"]),
                "created_wall_ns": int(hdr["created_wall_ns"]),
                "area_names": names,
            },
            "now_wall_ns": wall_ns(),
            "processes": [
                {
                    "process": hb.process.name.lower(),
                    "state": hb.state.name.lower(),
                    "pid": hb.pid,
                    "beats": hb.beats,
                    "age_s": hb.age_s,
                    "uptime_s": hb.uptime_s,
                    "pinning": _flags(RegionFlags, int(hb.flags)),
                    "health": health[hb.process].status.value,
                    "health_detail": health[hb.process].detail,
                }
                for hb in read_heartbeats(r, now)
            ],
            "interrupts": {
                "causes": _flags(Cause, int(causes)),
                "by_lane": {
                    lane.name.lower(): _flags(Cause, int(self._irq.lane_causes(lane)))
                    for lane in Lane
                },
                "raised_age_s": _age_s(now, self._irq.raised_at(causes)) if causes else None,
            },
            "state": {
                **_record_head(s, "seq", "t_calc_ns", state_fresh, now),
                "signal_id": int(s["signal_id"]),
                "flags": _flags(Mode, int(s["flags"])),
                **{k: float(s[k]) for k in _GLOBALS},
                "areas": {
                    name: {
                        **{k.removeprefix("area_"): float(s[k][i]) for k in _AREA_COEFFS},
                        "nt": {
                            nt: float(s["area_nt"][i, j]) for j, nt in enumerate(NEUROMODULATORS)
                        },
                    }
                    for i, name in enumerate(area_rows(n_state))
                },
            },
            "telemetry": {
                **_record_head(t, "tick", "t_ns", tel_fresh, now),
                "applied_seq": int(t["applied_seq"]),
                "staleness_s": (
                    (int(t["applied_t_ns"]) - int(t["applied_t_calc_ns"])) / NS_PER_S
                    if t["applied_seq"]
                    else None
                ),
                "mode": _flags(Mode, int(t["mode"])),
                "n_nodes": int(t["n_nodes"]),
                "cfl_clamps": int(t["cfl_clamps"]),
                "nonfinite": int(t["nonfinite"]),
                **{k: float(t[k]) for k in _TELEMETRY},
                "areas": {
                    name: {
                        "activity": float(t["area_activity"][i]),
                        "metric_grad": float(t["area_metric_grad"][i]),
                    }
                    for i, name in enumerate(area_rows(n_tel))
                },
            },
        }


def _record_head(rec: Any, counter: str, t_field: str, fresh: bool, now: int) -> dict[str, Any]:
    """What a seqlock record's section starts with: whether it was ever published
    (``counter`` past 0), whether the last read found a new publication, the counter,
    and the record's age in s (its time ``t_field``, monotonic ns, against ``now``)."""
    n = int(rec[counter])
    return {"published": n > 0, "fresh": fresh, counter: n, "age_s": _age_s(now, int(rec[t_field]))}


#: The deadline report's fields ``engs status`` shows (all None before the first report).
_REPORT_FIELDS = (
    "target_hz", "achieved_hz", "window_s", "ticks_window", "misses_window", "miss_ratio",
    "tick_p99_s", "staleness_p99_s", "lateness_p99_s",
)  # fmt: skip


def _report_fields(r: DeadlineReport | None) -> dict[str, Any]:
    return {k: None if r is None else getattr(r, k) for k in _REPORT_FIELDS}


def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.2f} ms"


def _fmt_age(age: float | None) -> str:
    if age is None:
        return "never"
    if age < 1:
        return f"{age * 1e3:.1f} ms ago"
    return f"{age:.1f} s ago"


def render(snap: dict[str, Any]) -> str:
    """The human-readable form of one snapshot."""
    reg = snap["region"]
    lines = [
        f"instance {snap['instance']}  region {reg['name']} ({reg['size_bytes']} B, "
        f"layout v{reg['layout_version']}, max_areas {reg['max_areas']}, "
        f"created by pid {reg['creator_pid']})",
    ]
    ep = snap["endpoints"]
    sig = ep["signals"] or "not published (orchestrator not listening)"
    if ep["signals_unix"]:
        sig += f" and unix:{ep['signals_unix']}"
    lines.append(f"signals     {sig}")
    lines.append(f"metrics     {ep['metrics'] or 'not published (oracle not serving)'}")
    lines.append("processes")
    for p in snap["processes"]:
        if p["state"] == HeartbeatState.ABSENT.name.lower():
            lines.append(f"  {p['process']:<13} absent")
            continue
        pin = ",".join(p["pinning"]) or "-"
        lines.append(
            f"  {p['process']:<13} {p['state']:<10} pid {p['pid']:<7} beat {_fmt_age(p['age_s'])}"
            f"  up {p['uptime_s'] or 0:.1f} s  pinning {pin}  [{p['health']}]"
        )
    dl = snap["deadlines"]
    total = f"misses {dl['misses_total']} of {dl['ticks_total'] + dl['misses_total']} total"
    if dl["achieved_hz"] is None:
        lines.append(f"deadlines   {total}; {'; '.join(dl['reasons'])}")
    else:
        lines.append(
            f"deadlines   {dl['achieved_hz']:.0f} Hz of {dl['target_hz']:.0f} Hz target  "
            f"{total}, {dl['misses_window']} in the last {dl['window_s']:.0f} s "
            f"({dl['miss_ratio']:.1%})  tick p99 {_fmt_ms(dl['tick_p99_s'])}  "
            f"staleness p99 {_fmt_ms(dl['staleness_p99_s'])}  [{dl['status']}]"
        )
        if dl["status"] != "ok":
            lines.append(f"            {'; '.join(dl['reasons'])}")
    irq = snap["interrupts"]
    if irq["causes"]:
        who = "; ".join(f"{lane}: {','.join(c)}" for lane, c in irq["by_lane"].items() if c)
        lines.append(
            f"interrupts  {', '.join(irq['causes']).upper()}  ({who}; first raised "
            f"{_fmt_age(irq['raised_age_s'])})"
        )
    else:
        lines.append("interrupts  none")
    st = snap["state"]
    if not st["published"]:
        lines.append("state       none published yet")
    else:
        tag = "" if st["fresh"] else "  [STALE]"
        lines.append(
            f"state       seq {st['seq']}  computed {_fmt_age(st['age_s'])}  "
            f"signal #{st['signal_id']}  flags {','.join(st['flags']) or '-'}{tag}"
        )
        lines.append(
            f"            D {st['dopamine']:.3f}  S {st['serotonin']:.3f}  "
            f"N {st['norepinephrine']:.3f}  ATP {st['atp_ratio'] * 100:.1f}% "
            f"({st['atp_reserve']:.1f} NMU)  cortisol {st['cortisol']:.3f}  "
            f"boredom {st['boredom']:.3f}"
        )
        lines.append(
            f"            dopamine: tonic R̄ {st['reward_rate']:.3f}/s  "
            f"phasic {st['phasic_dopamine']:+.3f}  δ {st['td_error']:+.3f}"
        )
        if st["areas"]:
            lines.append(
                f"            {'area':<14}{'plast':>7}{'elast':>7}{'speed':>7}{'damp':>7}"
                f"{'drive':>7}{'noise':>7}   " + " ".join(f"{nt:>4}" for nt in NEUROMODULATORS)
            )
            for name, a in st["areas"].items():
                lines.append(
                    f"            {name:<14}{a['plasticity']:7.3f}{a['elasticity']:7.3f}"
                    f"{a['speed']:7.3f}{a['damping']:7.3f}{a['drive']:7.3f}{a['noise']:7.3f}   "
                    + " ".join(f"{v:4.2f}" for v in a["nt"].values())
                )
    te = snap["telemetry"]
    if not te["published"]:
        lines.append("telemetry   none published yet")
    else:
        tag = "" if te["fresh"] else "  [STALE]"
        stale = te["staleness_s"]
        lines.append(
            f"telemetry   tick {te['tick']}  {_fmt_age(te['age_s'])}  applied seq "
            f"{te['applied_seq']}  staleness "
            f"{'-' if stale is None else f'{stale * 1e3:.2f} ms'}  mode "
            f"{','.join(te['mode']) or '-'}{tag}"
        )
        lines.append(
            f"            energy {te['energy']:.4g}  H {te['hamiltonian']:.4g}  entropy "
            f"{te['entropy_bits']:.3f}±{te['entropy_err_bits']:.3f} bits  nodes {te['n_nodes']}"
            f"  cfl clamps {te['cfl_clamps']}  non-finite {te['nonfinite']}"
        )
    return "\n".join(lines)


def run(cfg: Config, *, json_out: bool, watch: float | None) -> int:
    region = Region.attach(cfg.instance, lock_memory=False)
    snapper = Snapshotter(region, LivenessLimits.from_config(cfg.oracle))
    encoder = msgspec.json.Encoder()
    while True:
        snap = snapper.snapshot()
        if json_out:
            sys.stdout.write(encoder.encode(snap).decode() + "\n")
        else:
            if watch is not None and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            sys.stdout.write(render(snap) + "\n")
        sys.stdout.flush()
        if watch is None:
            return 0
        time.sleep(watch)
