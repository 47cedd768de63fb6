"""The exporter over real HTTP: every contract metric (ARCHITECTURE §5) with the right
type, every schema counter and histogram, sums across processes, buckets in seconds,
promtool's verdict, /healthz, content negotiation, and bind failures. Each test builds
its own registry and binds port 0."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from engs.services.oracle.collector import EngsCollector
from engs.services.oracle.exporter import ExporterBindError, MetricsServer
from engs.services.oracle.health import Health
from engs.shared.clock import monotonic_ns
from engs.shared.heartbeat import Heartbeat
from engs.shared.layout import HIST_BOUNDS_NS, Cause, HeartbeatState, Process
from engs.shared.region import Region, unlink
from engs.shared.stats import StatsWriter
from engs.shared.stats_schema import COUNTERS, HISTOGRAMS
from tests.services.oracle.craft import MS, Crafter, make_watchdog

#: ARCHITECTURE §5, Contract: name -> (type, label names).
CONTRACT: dict[str, tuple[str, tuple[str, ...]]] = {
    "engs_state_staleness_seconds": ("histogram", ()),
    "engs_signal_latency_seconds": ("histogram", ()),
    "engs_interrupt_latency_seconds": ("histogram", ()),
    "engs_physics_tick_seconds": ("histogram", ()),
    "engs_physics_tick_lateness_seconds": ("histogram", ()),
    "engs_orchestrator_cycle_seconds": ("histogram", ()),
    "engs_physics_ticks_total": ("counter", ()),
    "engs_physics_deadline_misses_total": ("counter", ()),
    "engs_sync_violations_total": ("counter", ("channel",)),
    "engs_interrupts_total": ("counter", ("cause",)),
    "engs_signals_total": ("counter", ("type",)),
    "engs_signals_rejected_total": ("counter", ("reason",)),
    "engs_dopamine": ("gauge", ()),
    "engs_serotonin": ("gauge", ()),
    "engs_norepinephrine": ("gauge", ()),
    "engs_atp_ratio": ("gauge", ()),
    "engs_boredom": ("gauge", ()),
    "engs_field_energy": ("gauge", ()),
    "engs_field_entropy_bits": ("gauge", ()),
    "engs_heartbeat_age_seconds": ("gauge", ("process",)),
}


def family_name(name: str) -> str:
    """The parser names a counter family without its ``_total`` suffix."""
    return name.removesuffix("_total")


def fetch(url: str, accept: str | None = None, method: str = "GET") -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, method=method)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, Any], name: str, **labels: str) -> float:
    for fam in fams.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError(f"no sample {name}{labels}")


@pytest.fixture
def server(region: Region) -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    registry.register(EngsCollector(region))
    with MetricsServer("127.0.0.1", 0, registry, lambda: (True, {"status": "ok"})) as srv:
        yield srv


def populate(region: Region) -> None:
    """Every process's heartbeat and stats, a published state and telemetry."""
    c = Crafter(region)
    now = monotonic_ns()
    c.publish(now - 3 * MS, dopamine=0.75, serotonin=0.6, norepinephrine=0.3, atp_ratio=0.42)
    c.state["boredom"] = 0.33
    c.publish(now - 2 * MS)
    c.tick(now, energy=123.5, entropy_bits=7.25)
    for p in Process:
        Heartbeat(region, p).set_state(HeartbeatState.RUNNING)
    phys = StatsWriter(region, Process.PHYSICS)
    phys.inc(phys.counter("engs_physics_ticks_total"), 1000)
    phys.inc(phys.counter("engs_physics_deadline_misses_total"), 3)
    for name, ns in (
        ("engs_state_staleness_seconds", 3_000_000),
        ("engs_state_staleness_seconds", 12_000_000),
        ("engs_signal_latency_seconds", 4_000_000),
        ("engs_interrupt_latency_seconds", 400_000),
        ("engs_physics_tick_seconds", 300_000),
        ("engs_physics_tick_lateness_seconds", 20_000),
    ):
        phys.observe_ns(phys.histogram(name), ns)
    orch = StatsWriter(region, Process.ORCHESTRATOR)
    orch.observe_ns(orch.histogram("engs_orchestrator_cycle_seconds"), 2_000_000)
    orch.inc(orch.counter("engs_signals_total", type="reward"), 5)
    orch.inc(orch.counter("engs_signals_rejected_total", reason="decode"), 2)
    orch.inc(orch.counter("engs_interrupts_total", cause="panic"), 2)
    oracle = StatsWriter(region, Process.ORACLE)
    oracle.inc(oracle.counter("engs_interrupts_total", cause="panic"), 3)
    oracle.inc(oracle.counter("engs_sync_violations_total", channel="dopamine"), 4)


def test_every_contract_metric_over_http(region: Region, server: MetricsServer) -> None:
    populate(region)
    status, ctype, body = fetch(server.url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    fams = families(body.decode())
    for name, (kind, labels) in CONTRACT.items():
        fam = fams.get(family_name(name))
        assert fam is not None, f"{name} missing from /metrics"
        assert fam.type == kind, (name, fam.type)
        assert fam.documentation, f"{name} has no HELP"
        assert fam.samples, f"{name} has no samples"
        for s in fam.samples:
            assert set(s.labels) - {"le"} == set(labels), (name, s.labels)
    assert sample(fams, "engs_physics_ticks_total") == 1000
    assert sample(fams, "engs_physics_deadline_misses_total") == 3
    assert sample(fams, "engs_signals_total", type="reward") == 5
    assert sample(fams, "engs_signals_rejected_total", reason="decode") == 2
    assert sample(fams, "engs_sync_violations_total", channel="dopamine") == 4
    # Raised by the orchestrator (2) and the oracle (3): one series, summed.
    assert sample(fams, "engs_interrupts_total", cause="panic") == 5
    assert sample(fams, "engs_dopamine") == 0.75
    assert sample(fams, "engs_serotonin") == 0.6
    assert sample(fams, "engs_norepinephrine") == 0.3
    assert sample(fams, "engs_atp_ratio") == 0.42
    assert sample(fams, "engs_boredom") == 0.33
    assert sample(fams, "engs_field_energy") == 123.5
    assert sample(fams, "engs_field_entropy_bits") == 7.25
    ages = [s for s in fams["engs_heartbeat_age_seconds"].samples]
    assert sorted(s.labels["process"] for s in ages) == sorted(p.name.lower() for p in Process)
    assert all(0 <= s.value < 60 for s in ages)
    assert sample(fams, "engs_up", process="physics") == 1


def test_histograms_have_the_shm_buckets_in_seconds(region: Region, server: MetricsServer) -> None:
    populate(region)
    fams = families(fetch(server.url + "/metrics")[2].decode())
    fam = fams["engs_state_staleness_seconds"]
    buckets = [(s.labels["le"], s.value) for s in fam.samples if s.name.endswith("_bucket")]
    les = [floatToGoString(b / 1e9) for b in HIST_BOUNDS_NS] + ["+Inf"]
    assert [le for le, _ in buckets] == les
    assert les[0] == "2.5e-05" and "0.01" in les and "0.05" in les and les[-2] == "0.1"
    cum = dict(buckets)
    assert cum["0.002"] == 0 and cum["0.003"] == 1  # 3 ms lands in le=0.003
    assert cum["0.01"] == 1 and cum["0.0125"] == 2 and cum["+Inf"] == 2
    assert sample(fams, "engs_state_staleness_seconds_count") == 2
    assert sample(fams, "engs_state_staleness_seconds_sum") == pytest.approx(0.015)


def test_every_schema_counter_and_histogram_is_exported(
    region: Region, server: MetricsServer
) -> None:
    fams = families(fetch(server.url + "/metrics")[2].decode())
    for p in Process:
        for spec in COUNTERS[p]:
            assert fams[family_name(spec.name)].type == "counter", spec.name
            assert sample(fams, spec.name, **dict(spec.labels)) == 0
        for h in HISTOGRAMS[p]:
            assert fams[h.name].type == "histogram"
            assert fams[h.name].documentation == h.help


def test_nothing_published_yet(region: Region, server: MetricsServer) -> None:
    """Before the first publication the level gauges are families without series
    (absent = unknown), never a made-up zero."""
    fams = families(fetch(server.url + "/metrics")[2].decode())
    for name in ("engs_dopamine", "engs_field_energy", "engs_heartbeat_age_seconds"):
        assert fams[name].type == "gauge" and fams[name].samples == []
    active = fams["engs_interrupt_active"]
    assert {s.labels["cause"]: s.value for s in active.samples} == {
        str(c.name).lower(): 0.0 for c in Cause
    }


def test_own_registry_only(region: Region, server: MetricsServer) -> None:
    populate(region)
    assert b"engs_dopamine" in fetch(server.url + "/metrics")[2]
    assert b"engs_" not in generate_latest(REGISTRY)


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not on PATH (Debian: apt-get install prometheus)",
)
def test_promtool_accepts_the_exposition(region: Region, server: MetricsServer) -> None:
    populate(region)
    body = fetch(server.url + "/metrics")[2]
    res = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    findings = set((res.stdout + res.stderr).decode().splitlines())
    # The contract name engs_field_entropy_bits (ARCHITECTURE §5) trips promtool's
    # "base unit" lint (it wants bytes); that name is fixed. Anything else fails, and a
    # parse error (exit 1) is never accepted.
    allowed = {'engs_field_entropy_bits use base unit "bytes" instead of "bits"'}
    assert findings <= allowed, findings - allowed
    assert res.returncode == (3 if findings else 0), res


def test_openmetrics_when_asked(region: Region, server: MetricsServer) -> None:
    populate(region)
    status, ctype, body = fetch(
        server.url + "/metrics", accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    fams = {f.name: f for f in openmetrics_families(body.decode())}
    assert fams["engs_interrupts"].type == "counter"
    assert fams["engs_state_staleness_seconds"].type == "histogram"


def test_head_and_unknown_paths(server: MetricsServer) -> None:
    status, _, body = fetch(server.url + "/metrics", method="HEAD")
    assert status == 200 and body == b""
    assert fetch(server.url + "/nope")[0] == 404


def test_healthz(region: Region, crafter: Crafter) -> None:
    wd = make_watchdog(region)
    health = Health(region, wd, max_poll_age_ns=5_000_000_000)
    with MetricsServer("127.0.0.1", 0, CollectorRegistry(), health.check) as srv:

        def healthz() -> tuple[int, dict[str, Any]]:
            status, ctype, body = fetch(srv.url + "/healthz")
            assert ctype == "application/json"
            return status, json.loads(body)

        status, body = healthz()
        assert status == 503
        assert body["problems"] == ["the poll loop has not completed a poll yet"]
        wd.poll()
        status, body = healthz()
        assert status == 200 and body["status"] == "ok" and body["problems"] == []
        assert body["instance"] == region.instance and body["polls"] == 1
        assert body["processes"]["oracle"] == "starting"
        unlink(region.instance)  # the supervisor removed the region
        status, body = healthz()
        assert status == 503
        assert body["problems"] == [f"region {region.name} was unlinked"]


def test_healthz_when_the_loop_stalls(region: Region) -> None:
    wd = make_watchdog(region)
    wd.poll()
    ok, body = Health(region, wd, max_poll_age_ns=20_000_000).check()
    assert ok
    time.sleep(0.05)
    ok, body = Health(region, wd, max_poll_age_ns=20_000_000).check()
    assert not ok and body["problems"][0].startswith("the poll loop last completed a poll")


def test_bind_failure_names_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ExporterBindError) as err:
            MetricsServer("127.0.0.1", port, CollectorRegistry(), lambda: (True, {}))
    assert str(err.value) == f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"
