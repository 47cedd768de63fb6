"""An instance as its user finds it: real `engs up`, real sockets, real shared memory.

* it publishes where it listens, and `engs send/status --instance X` find it by name
  alone (no --config: the configured default address is not where X listens);
* `engs status` (table and JSON) and `/healthz` show its deadline health; the compose
  healthcheck passes on the same rule;
* `--fresh` moves the last checkpoint aside; a clean stop removes the lock file;
* ports already in use are refused before any child starts, naming port and field;
* a child the health rule calls unhealthy (stopped with SIGSTOP: no beat) is restarted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engs.shared.layout import Process
from engs.shared.region import Region
from engs.shared.stats import read_stats
from tests.services.cli.support import engs
from tests.services.supervisor.running import ENGS_ENV, EngsUp, eventually, http_get

pytestmark = pytest.mark.slow


def _rewards_received(instance: str) -> int:
    r = Region.attach(instance, lock_memory=False)
    try:
        return read_stats(r, Process.ORCHESTRATOR).counter("engs_signals_total", type="reward")
    finally:
        r.close()


def test_an_instance_is_found_by_name_and_shows_its_deadline_health(
    instance: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "checkpoint.json").write_text('{"not": "restored"}', encoding="utf-8")
    with EngsUp(instance, tmp_path, "--fresh") as up:
        up.wait_alive()
        aside = state / "checkpoint.json.bak"
        assert up.has_line(f"[supervisor] --fresh: moved the last checkpoint aside to {aside}")
        assert aside.read_text(encoding="utf-8") == '{"not": "restored"}'
        assert not up.has_line("restored"), up.output()

        def judged() -> bool:
            snap = json.loads(engs("status", "--json", "--instance", instance).stdout)
            return snap["deadlines"]["status"] in ("ok", "degraded")

        eventually(judged, 20, "a judged deadline report")
        res = engs("--instance", instance, "status", "--json")
        assert res.returncode == 0, res.stderr
        snap = json.loads(res.stdout)
        assert snap["endpoints"]["signals"] == f"127.0.0.1:{up.signal_port}"
        assert snap["endpoints"]["metrics"] == f"{up.metrics_url}/metrics"
        dl = snap["deadlines"]
        assert dl["target_hz"] == 1000.0 and dl["achieved_hz"] > 0
        assert dl["ticks_total"] > 0 and dl["misses_total"] >= dl["misses_window"] >= 0
        assert dl["tick_p99_s"] > 0 and dl["window_s"] >= 2
        assert (dl["status"] == "degraded") == bool(dl["reasons"])
        procs = {p["process"]: p for p in snap["processes"]}
        assert procs["physics"]["health"] == dl["status"]
        assert procs["orchestrator"]["health"] == "ok"
        print(
            f"\ndeadlines on this machine: {dl['achieved_hz']:.0f} Hz of 1000, "
            f"{dl['misses_window']} missed in {dl['window_s']:.0f} s ({dl['miss_ratio']:.1%}), "
            f"tick p99 {dl['tick_p99_s'] * 1e3:.2f} ms: {dl['status']}"
        )

        table = engs("status", "--instance", instance)
        assert table.returncode == 0, table.stderr
        assert f"signals     127.0.0.1:{up.signal_port}\n" in table.stdout
        assert f"metrics     {up.metrics_url}/metrics\n" in table.stdout
        assert "Hz of 1000 Hz target  misses " in table.stdout

        # /healthz and the compose healthcheck: the same verdict on the physics.
        code, body = http_get(up.metrics_url + "/healthz")
        health = json.loads(body)
        assert code == 200 and health["deadlines"]["status"] in ("ok", "degraded")
        if health["deadlines"]["status"] == "degraded":
            assert health["status"] == "degraded" and health["degraded"]
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "engs.services.supervisor.healthcheck",
                "physics",
                *["--instance", instance],
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={k: v for k, v in os.environ.items() if k not in ENGS_ENV},
        )
        assert check.returncode == 0, check.stdout
        assert check.stdout.startswith("alive")

        # No --config: the default address (127.0.0.1:7411) is not where this instance
        # listens; only its published address reaches it.
        before = _rewards_received(instance)
        sent = engs("send", "reward", "0.5", "--instance", instance)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("ack seq=")
        assert _rewards_received(instance) == before + 1

        assert up.stop() == 0
    assert not (up.runtime_dir / f"engs-{instance}.lock").exists()
    assert not Path(f"/dev/shm/engs-{instance}").exists()


@pytest.mark.parametrize("taken", ["signals", "metrics"])
def test_ports_in_use_are_refused_before_any_child_starts(
    instance: str, tmp_path: Path, taken: str
) -> None:
    up = EngsUp(instance, tmp_path)
    port = up.signal_port if taken == "signals" else up.metrics_port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()  # another instance's server
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "engs.services.cli",
                "up",
                *["--instance", instance],
                *["--config", str(up.config)],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=up.env,
            check=False,
        )
    assert res.returncode == 1
    env_var = "ENGS_SIGNAL_ADDR" if taken == "signals" else "ENGS_METRICS_ADDR"
    assert res.stderr.strip() == (
        f"engs up: port {port} (127.0.0.1:{port}, `$.{taken}.addr`) is not available: "
        "Address already in use; another instance may be using it: stop it, or give this "
        f"one another address (`addr` in [{taken}] of --config, or {env_var})"
    )
    assert "started" not in res.stdout
    assert not Path(f"/dev/shm/engs-{instance}").exists()
    assert not (up.runtime_dir / f"engs-{instance}.lock").exists()


def test_a_child_the_health_rule_calls_unhealthy_is_restarted(
    instance: str, tmp_path: Path
) -> None:
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        victim = up.pid("oracle")
        time.sleep(10.5)  # past the supervisor's start grace
        os.kill(victim, signal.SIGSTOP)  # no beats, but the process does not exit
        try:
            eventually(lambda: len(up.pids["oracle"]) == 2, 20, "the oracle restarted")
        finally:
            if os.path.exists(f"/proc/{victim}"):
                os.kill(victim, signal.SIGCONT)
        assert up.has_line("[supervisor] oracle unhealthy for "), up.output()
        assert up.has_line("(oracle: no heartbeat for "), up.output()
        assert up.stop() == 0


def test_log_flags_reach_the_children() -> None:
    """`engs -v up`: the supervisor starts each child with the level it resolved."""
    from engs.services.cli import build_parser, child_log_args
    from engs.services.supervisor.main import Supervisor
    from engs.shared.config import load_config

    assert child_log_args(build_parser().parse_args(["up"])) == ()
    assert child_log_args(build_parser().parse_args(["up", "-q"])) == ("--log-level", "warning")
    flags = child_log_args(build_parser().parse_args(["-v", "up"]))
    assert flags == ("--log-level", "debug")
    cfg = load_config(env={}, overrides={"--instance": (("instance",), "lv")})
    sup = Supervisor(cfg, None, child_args=flags)
    for child in sup.children.values():
        assert child.argv[-4:] == ["--instance", "lv", "--log-level", "debug"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_a_pinned_physics_has_its_cpu_to_itself(instance: str, tmp_path: Path) -> None:
    """``[physics] cpu_affinity``: the physics runs there, the orchestrator and oracle on
    the other CPUs (the supervisor moves itself before starting them)."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = cpus[-1]
    up = EngsUp(instance, tmp_path)
    up.config.write_text(up.config.read_text() + f"cpu_affinity = [{mine}]\n")  # [physics]
    with up:
        up.wait_healthy()
        others = set(cpus) - {mine}
        assert up.has_line(f"physics on CPUs [{mine}]; orchestrator and oracle on {sorted(others)}")
        eventually(
            lambda: os.sched_getaffinity(up.pid("physics")) == {mine}, 10, "the physics pinned"
        )
        for name in ("orchestrator", "oracle"):
            assert os.sched_getaffinity(up.pid(name)) == others, name
        assert up.stop() == 0
