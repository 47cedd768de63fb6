"""The container healthcheck of the physics and the orchestrator (docker-compose.yml).

Each case builds the heartbeat slot as a process in that situation would leave it, in a
region of the test's own, and runs the command's ``main`` as Docker would (exit code and
the one line it prints). The live case, against real processes, is in
tests/deploy/test_e2e.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from engs.services.supervisor.healthcheck import main
from engs.shared.heartbeat import Heartbeat
from engs.shared.layout import HeartbeatState, Process
from engs.shared.region import Region
from tests.services.supervisor.running import ENGS_ENV


@pytest.fixture(autouse=True)
def _no_engs_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENGS_ENV:
        monkeypatch.delenv(var, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_no_region_is_unhealthy(instance: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "physics", "--instance", instance)
    assert code == 1
    assert out.startswith(f"unhealthy: no shared-memory region /engs-{instance}")


def test_a_process_that_never_started_is_unhealthy(
    region: Region, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "orchestrator", "--instance", region.instance)
    assert (code, out) == (1, "unhealthy: absent: orchestrator: never started")


def test_a_running_beating_process_is_healthy_and_a_stopped_one_is_not(
    region: Region, capsys: pytest.CaptureFixture[str]
) -> None:
    hb = Heartbeat(region, Process.PHYSICS)
    hb.set_state(HeartbeatState.STARTING)
    code, out, _ = _run(capsys, "physics", "--instance", region.instance)
    assert (code, out) == (1, "unhealthy: starting: physics: starting")

    hb.set_state(HeartbeatState.RUNNING)  # beats now; no telemetry yet: start-up allowance
    code, out, _ = _run(capsys, "physics", "--instance", region.instance)
    assert (code, out) == (0, "alive: physics: running")

    hb.set_state(HeartbeatState.STOPPED)
    code, out, _ = _run(capsys, "physics", "--instance", region.instance)
    assert (code, out) == (1, "unhealthy: stopped: physics: stopped cleanly")


def test_a_process_whose_heartbeat_stopped_is_dead(
    region: Region, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hb = Heartbeat(region, Process.ORCHESTRATOR)
    hb.set_state(HeartbeatState.RUNNING)
    config = str(tmp_path / "engs.toml")
    Path(config).write_text("[oracle]\nheartbeat_timeout_s = 0.05\n", encoding="utf-8")
    code, _, _ = _run(capsys, "orchestrator", "--instance", region.instance, "--config", config)
    assert code == 0
    # The [oracle] limits of the config are the ones applied: 50 ms without a beat is dead.
    time.sleep(0.1)
    code, out, _ = _run(capsys, "orchestrator", "--instance", region.instance, "--config", config)
    assert code == 1
    assert out.startswith("unhealthy: dead: orchestrator: no heartbeat for ")


def test_a_bad_configuration_exits_2_naming_the_field(
    instance: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGS_METRICS_ADDR", "nowhere")
    code, out, err = _run(capsys, "physics", "--instance", instance)
    assert code == 2 and out == ""
    assert err.startswith("healthcheck physics: invalid configuration: ")
    assert "ENGS_METRICS_ADDR sets `$.metrics.addr`" in err


def test_the_healthcheck_imports_neither_the_supervisor_nor_the_oracle() -> None:
    # Docker runs it every few seconds in a fresh process: it loads the one rule from
    # engs.shared.liveness, not `engs up`'s asyncio supervisor or the oracle's package.
    probe = (
        "import sys, engs.services.supervisor.healthcheck; "
        "print([m for m in ('asyncio', 'uvloop', 'engs.services.supervisor.main', "
        "'engs.services.oracle') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
