"""The deployment scripts under ops/: shellcheck-clean, and the e2e probes on real input.

``ops/compose_e2e.py`` is what ops/compose-e2e.sh runs on the host's python3: its metric
reader is fed the exposition of a real oracle collector (the same text Docker's oracle
serves), its Prometheus query a real Prometheus where one is installed (test_e2e.py runs
one; here the reader alone).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import OPS, ROOT, require_tool

SCRIPTS = sorted([*OPS.glob("*.sh"), *OPS.glob("*/*.sh")])
PROBE = OPS / "compose_e2e.py"


def test_there_are_scripts() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SCRIPTS}
    assert {
        "ops/compose-e2e.sh",
        "ops/images/debian-base.sh",
        "ops/images/wheelhouse.sh",
    } <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_finds_nothing(script: Path) -> None:
    shellcheck = require_tool("shellcheck")
    res = subprocess.run(
        [shellcheck, "--severity=style", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_executable_bash_with_strict_mode_and_a_cleanup_trap(script: Path) -> None:
    path = script
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert path.stat().st_mode & 0o111
    if "mktemp" in text:  # whatever a script makes, its trap removes
        assert "trap " in text


EXPOSITION = """\
# HELP engs_signals_applied_total Signals applied to the dynamics, by type.
# TYPE engs_signals_applied_total counter
engs_signals_applied_total{type="reward"} 3.0
engs_signals_applied_total{type="stress"} 1.0
engs_physics_ticks_total 123456.0
"""


@pytest.mark.parametrize(
    ("args", "code", "out"),
    [
        (["engs_signals_applied_total", "type=reward"], 0, "3"),
        (["engs_signals_applied_total"], 0, "4"),
        (["engs_physics_ticks_total"], 0, "123456"),
        (["engs_signals_applied_total", "type=novelty"], 1, ""),
        (["engs_physics_ticks"], 1, ""),
    ],
)
def test_the_metric_probe_sums_matching_samples(args: list[str], code: int, out: str) -> None:
    res = subprocess.run(
        [sys.executable, str(PROBE), "metric", *args],
        input=EXPOSITION,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (res.returncode, res.stdout.strip()) == (code, out), res.stderr


def test_the_probe_explains_itself_on_bad_usage() -> None:
    res = subprocess.run(
        [sys.executable, str(PROBE), "nope"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 2 and "compose-e2e.sh" in res.stderr
