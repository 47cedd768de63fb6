"""ops/prometheus.yml and the alert rules, checked by Prometheus' own promtool.

``promtool test rules`` runs the unit tests in ops/tests/; this file also holds those
tests to a standard: every alert is shown both firing and silent.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import OPS, load_yaml, require_tool

RULES = sorted((OPS / "rules").glob("*.yml"))
RULE_TESTS = sorted((OPS / "tests").glob("*.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [require_tool("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{res.stdout}{res.stderr}"
    return res


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_there_are_rules_and_rule_tests() -> None:
    assert RULES and RULE_TESTS


def test_promtool_check_config() -> None:
    out = promtool("check", "config", OPS / "prometheus.yml").stdout
    # The rule files resolve relative to the config, as they do in the container.
    assert f"SUCCESS: {len(RULES)} rule files found" in out


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", *RULES).stdout
    assert f"SUCCESS: {len(alerts())} rules found" in out


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", *RULE_TESTS).stdout
    assert "SUCCESS" in out and "FAILED" not in out


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_every_alert_is_tested_firing_and_silent(alert: str) -> None:
    firing = silent = 0
    for path in RULE_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] == alert:
                    if check.get("exp_alerts"):
                        firing += 1
                    else:
                        silent += 1
    assert firing and silent, f"{alert}: {firing} firing and {silent} silent checks"


def test_every_alert_has_a_severity_and_a_description() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
