"""End to end on loopback: `engs up` (CPU backend) scraped by a real Prometheus server.

One instance of everything, owned by the test: its own instance name, free ports, state,
runtime and TSDB directories in tmp. It proves, with the real programs:

* a signal sent on the socket travels socket → orchestrator → physics → oracle →
  Prometheus, and the staleness histogram comes back through Prometheus' HTTP API;
* the alert rules load into Prometheus and evaluate without error on live data, and
  every dashboard query parses and returns series;
* the containers' healthchecks (the Dockerfile's /healthz one-liner, and
  ``engs.services.supervisor.healthcheck`` for the physics and the orchestrator) pass against
  the live instance and fail once it is gone;
* SIGTERM to `engs up` exits 0 and leaves no process and no shared-memory region.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import OPS, dashboard_exprs, healthcheck_command, require_tool
from tests.services.supervisor.running import (
    ENGS_ENV,
    EngsUp,
    eventually,
    free_ports,
    http_get,
    running,
)

pytestmark = pytest.mark.slow


class Prometheus:
    """A Prometheus server on 127.0.0.1 scraping ``target`` every 0.5 s."""

    def __init__(self, binary: str, target: str, tmp: Path) -> None:
        (self.port,) = free_ports(1)
        self.api = f"http://127.0.0.1:{self.port}/api/v1"
        self.config = tmp / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": "500ms",
                        "scrape_timeout": "400ms",
                        "evaluation_interval": "500ms",
                    },
                    "rule_files": [str(p) for p in sorted((OPS / "rules").glob("*.yml"))],
                    "scrape_configs": [
                        {"job_name": "engs", "static_configs": [{"targets": [target]}]}
                    ],
                }
            ),
            encoding="utf-8",
        )
        self.log = tmp / "prometheus.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.api}/{path}?{urllib.parse.urlencode(params)}"
        status, body = http_get(url, timeout_s=5)
        assert status == 200, f"{url}: {status} {body[:500]!r}"
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("query", query=expr)["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _send_reward(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b'{"type":"reward","value":0.5,"id":7}\n')
        reply = s.makefile("rb").readline()
    return json.loads(reply)  # type: ignore[no-any-return]


def _healthchecks(up: EngsUp) -> dict[str, int]:
    """Exit codes of the three container healthchecks, run as Docker would."""
    env = {k: v for k, v in os.environ.items() if k not in ENGS_ENV}
    env |= {"ENGS_CONFIG": str(up.config), "ENGS_INSTANCE": up.instance}
    codes = {}
    for process in ("physics", "orchestrator"):
        argv = [sys.executable, "-m", "engs.services.supervisor.healthcheck", process]
        codes[process] = subprocess.run(argv, env=env, timeout=30, check=False).returncode
    env["ENGS_METRICS_ADDR"] = f"127.0.0.1:{up.metrics_port}"
    argv = [sys.executable, "-c", healthcheck_command()]
    res = subprocess.run(argv, env=env, timeout=30, capture_output=True, check=False)
    codes["oracle"] = res.returncode
    return codes


def test_engs_up_scraped_by_a_real_prometheus(instance: str, tmp_path: Path) -> None:
    binary = require_tool("prometheus")
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        children = {p: up.pid(p) for p in ("physics", "orchestrator", "oracle")}
        prom = Prometheus(binary, f"127.0.0.1:{up.metrics_port}", tmp_path)
        try:
            eventually(
                lambda: http_get(f"http://127.0.0.1:{prom.port}/-/ready")[0] == 200,
                30,
                "Prometheus to be ready",
            )
            ack = _send_reward(up.signal_port)
            assert ack["type"] == "ack" and ack["id"] == 7, ack

            def scraped(expr: str) -> bool:
                res = prom.query(expr)
                return bool(res) and float(res[0]["value"][1]) > 0

            # The staleness histogram, through Prometheus' HTTP API.
            eventually(
                lambda: scraped('engs_state_staleness_seconds_count{job="engs"}'),
                30,
                f"staleness samples in Prometheus; its log:\n{prom.log.read_text()}",
            )
            eventually(
                lambda: scraped('sum(rate(engs_state_staleness_seconds_count{job="engs"}[5s]))'),
                15,
                "two scrapes",
            )
            p99 = _value(
                prom.query(
                    "histogram_quantile(0.99, sum by (le) "
                    '(rate(engs_state_staleness_seconds_bucket{job="engs"}[5s])))'
                )
            )
            assert math.isfinite(p99) and 0 < p99 <= 0.1, p99
            # The 10 ms bucket the EngsStateStale rule reads exists under that label.
            assert prom.query('engs_state_staleness_seconds_bucket{le="0.01"}')
            # The reward went all the way: counted by type, its latency observed.
            eventually(
                lambda: (
                    scraped('engs_signals_total{type="reward"}')
                    and scraped("engs_signal_latency_seconds_count")
                ),
                15,
                "the reward signal in Prometheus",
            )
            assert _value(prom.query('engs_signals_total{type="reward"}')) == 1

            # Every dashboard query parses and returns series on live data.
            for expr in dashboard_exprs():
                result = prom.query(expr.replace("$__rate_interval", "5s"))
                assert result, f"no series for dashboard query {expr}"

            # The alert rules are loaded and evaluate cleanly on live data.
            def rules_ok() -> bool:
                rules = [r for g in prom.get("rules")["groups"] for r in g["rules"]]
                assert rules, "Prometheus loaded no rules"
                bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
                assert not bad, bad
                return all(r["health"] == "ok" for r in rules)

            eventually(rules_ok, 15, "every rule evaluated")

            assert _healthchecks(up) == {"physics": 0, "orchestrator": 0, "oracle": 0}
        finally:
            prom.stop()

        assert up.stop() == 0
        assert up.has_line("[supervisor] region unlinked; exit 0"), up.output()
    for process, pid in children.items():
        assert not running(pid), f"{process} pid {pid} outlived `engs up`"
    assert not Path(f"/dev/shm/engs-{instance}").exists()
    assert _healthchecks(up) == {"physics": 1, "orchestrator": 1, "oracle": 1}
