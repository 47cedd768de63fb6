"""Every ENGS metric the alert rules and the dashboard name is one the oracle exports.

The exported names come from the oracle's own collector on a region of the test's own
(the families it yields, gauges included before any publication); a rule or a panel
naming a metric that does not exist would silently never fire or stay empty.
"""

from __future__ import annotations

import re

from prometheus_client.core import CollectorRegistry

from engs.services.oracle.collector import EngsCollector
from engs.shared.region import Region
from tests.deploy.tools import OPS, dashboard_exprs, load_yaml

NAME = re.compile(r"\bengs_[a-z0-9_]+")


def exported_names(region: Region) -> set[str]:
    registry = CollectorRegistry()
    registry.register(EngsCollector(region))
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def rule_exprs() -> list[str]:
    return [
        rule["expr"]
        for path in sorted((OPS / "rules").glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def test_the_contract_metrics_are_exported(region: Region) -> None:
    names = exported_names(region)
    # ARCHITECTURE §5, the ones the deployment depends on.
    for name in (
        "engs_state_staleness_seconds_bucket",
        "engs_signal_latency_seconds_bucket",
        "engs_interrupt_latency_seconds_bucket",
        "engs_physics_tick_lateness_seconds_bucket",
        "engs_physics_deadline_misses_total",
        "engs_interrupts_total",
        "engs_signals_total",
        "engs_dopamine",
        "engs_heartbeat_age_seconds",
        "engs_up",
        "engs_interrupt_active",
    ):
        assert name in names


def test_rules_name_only_exported_metrics(region: Region) -> None:
    names = exported_names(region)
    used = {n for expr in rule_exprs() for n in NAME.findall(expr)}
    assert used, "the rules name no ENGS metric"
    assert used - names == set()


def test_dashboard_names_only_exported_metrics(region: Region) -> None:
    names = exported_names(region)
    used = {n for expr in dashboard_exprs() for n in NAME.findall(expr)}
    assert len(used) >= 20
    assert used - names == set()
