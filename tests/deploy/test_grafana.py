"""Grafana provisioning: the datasource, the dashboard provider and the dashboard.

No Grafana server here: these check the files against each other and against the
compose file (what Grafana would fail on silently: a datasource uid the panels do not
use, a provider path that is not where the dashboards are mounted), and that the
dashboard shows what docs/deploy.md says it shows. Every panel query is run against a
real Prometheus in test_e2e.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.tools import OPS, ROOT, load_yaml

GRAFANA = OPS / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "engs.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _grafana_service() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")["services"]["grafana"]


def _mount_target(source: str) -> str:
    for vol in _grafana_service()["volumes"]:
        src, dst, *_ = vol.split(":")
        if src == source:
            return dst
    raise AssertionError(f"{source} is not mounted into grafana")


def _panels(dashboard: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if kind is None or p["type"] == kind]


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets", [])]


def test_datasource_points_at_the_compose_prometheus() -> None:
    (ds,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert (ds["type"], ds["uid"], ds["url"]) == (
        "prometheus",
        "engs-prometheus",
        "http://prometheus:9090",
    )
    assert "9090" in load_yaml(ROOT / "docker-compose.yml")["services"]["prometheus"]["expose"]
    assert _mount_target("./ops/grafana/provisioning") == "/etc/grafana/provisioning"


def test_the_provider_loads_the_mounted_dashboards() -> None:
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "engs.yml")["providers"]
    path = provider["options"]["path"]
    assert path == _mount_target("./ops/grafana/dashboards")
    home = _grafana_service()["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{DASHBOARD.name}"


def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "engs-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "engs-prometheus", panel["title"]
            assert panel["targets"] and panel.get("description"), panel["title"]
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == "engs-prometheus", panel["title"]


def test_dashboard_shows_what_the_docs_promise(dashboard: dict[str, Any]) -> None:
    heatmaps = [e for p in _panels(dashboard, "heatmap") for e in _exprs(p)]
    for metric in ("engs_state_staleness_seconds", "engs_signal_latency_seconds",
                   "engs_physics_tick_lateness_seconds"):  # fmt: skip
        assert any(f"{metric}_bucket" in e for e in heatmaps), f"no heatmap of {metric}"
    for p in _panels(dashboard, "heatmap"):
        assert p["targets"][0]["format"] == "heatmap" and p["options"]["calculate"] is False
    series = [e for p in _panels(dashboard, "timeseries") for e in _exprs(p)]
    for metric in ("engs_state_staleness_seconds", "engs_signal_latency_seconds",
                   "engs_interrupt_latency_seconds", "engs_physics_tick_seconds",
                   "engs_physics_tick_lateness_seconds"):  # fmt: skip
        for q in ("0.5", "0.99"):
            assert any(
                e.startswith(f"histogram_quantile({q},") and metric + "_bucket" in e for e in series
            ), f"no p{q} of {metric}"
    for needle in ("engs_physics_deadline_misses_total", "engs_orchestrator_deadline_misses_total",
                   "engs_dopamine", "engs_serotonin", "engs_norepinephrine", "engs_atp_ratio",
                   "engs_boredom", "sum by (type) (rate(engs_signals_total",
                   "engs_interrupts_total"):  # fmt: skip
        assert any(needle in e for e in series), needle
    timeline = [e for p in _panels(dashboard, "state-timeline") for e in _exprs(p)]
    assert any("engs_interrupt_active" in e for e in timeline)
