"""Helpers for the oracle's tests: crafted shared-memory contents written through the
real writer APIs (SeqlockWriter, Heartbeat, StatsWriter), and a watchdog built with a
chosen configuration. Times are CLOCK_MONOTONIC ns; tests that drive
``Watchdog.poll(now_ns=...)`` use a synthetic clock starting at the real now."""

from __future__ import annotations

from typing import Any

import msgspec

from engs.services.oracle.watchdog import Watchdog
from engs.shared.config import OracleConfig
from engs.shared.layout import Process
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockWriter
from engs.shared.stats import read_stats

MS = 1_000_000


class Crafter:
    """Plays the orchestrator (control state) and the physics (telemetry)."""

    def __init__(self, region: Region) -> None:
        self.ctl = SeqlockWriter(region, "control")
        self.tel = SeqlockWriter(region, "telemetry")
        s = self.state = self.ctl.new_record()
        t = self.telem = self.tel.new_record()
        s["n_areas"] = 3
        s["dopamine"], s["serotonin"], s["norepinephrine"] = 0.5, 0.5, 0.3
        s["atp_ratio"], s["boredom"], s["cortisol"] = 0.8, 0.2, 0.1
        s["spectral_abscissa"] = -0.08  # the orchestrator's matrix is stable
        t["n_areas"], t["n_nodes"] = 3, 100
        t["energy"], t["entropy_bits"], t["hamiltonian"] = 50.0, 6.0, 40.0

    def publish(self, t_calc_ns: int, **fields: Any) -> int:
        """Publish the next state (seq + 1) computed at ``t_calc_ns``."""
        s = self.state
        s["seq"] = int(s["seq"]) + 1
        s["t_calc_ns"] = t_calc_ns
        for k, v in fields.items():
            s[k] = v
        self.ctl.publish(s)
        return int(s["seq"])

    def tick(self, t_ns: int, *, apply: bool = True, **fields: Any) -> None:
        """Publish the next telemetry tick starting at ``t_ns``; with ``apply`` the tick
        applies the newest state if it is new (``applied_t_ns`` = this tick's start)."""
        s, t = self.state, self.telem
        t["tick"] = int(t["tick"]) + 1
        t["t_ns"] = t_ns
        if apply and int(s["seq"]) != int(t["applied_seq"]):
            t["applied_seq"] = s["seq"]
            t["applied_t_calc_ns"] = s["t_calc_ns"]
            t["applied_t_ns"] = t_ns
        for k, v in fields.items():
            t[k] = v
        self.tel.publish(t)


def oracle_config(**overrides: Any) -> OracleConfig:
    """An OracleConfig validated like a TOML section would be."""
    return msgspec.convert(overrides, OracleConfig)


def oracle_counter(region: Region, name: str, **labels: str) -> int:
    return read_stats(region, Process.ORACLE).counter(name, **labels)


def make_watchdog(region: Region, **overrides: Any) -> Watchdog:
    return Watchdog(region, oracle_config(**overrides))
