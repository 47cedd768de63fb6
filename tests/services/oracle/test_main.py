"""The oracle as a real process (``python -m engs.services.oracle``, what ``engs oracle``
runs): serves /healthz and /metrics against a region, refuses a second oracle, names
an address it cannot bind, and exits 0 on SIGTERM with its heartbeat STOPPED."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engs.shared.heartbeat import read_heartbeats
from engs.shared.layout import HeartbeatState, Process
from engs.shared.region import Region


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "engs.toml"
    path.write_text(
        "[shm]\nmax_areas = 8\nlock_memory = false\n\n"
        "[oracle]\npoll_hz = 200\nheartbeat_timeout_s = 0.5\n",
        encoding="utf-8",
    )
    return path


def _cmd(region: Region, cfg: Path, port: int) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGS_")}
    env["ENGS_METRICS_ADDR"] = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "engs.services.oracle", "--config", str(cfg)]
    return [*cmd, "--instance", region.instance], env


def start_oracle(region: Region, cfg: Path, port: int) -> subprocess.Popen[str]:
    cmd, env = _cmd(region, cfg, port)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_oracle(region: Region, cfg: Path, port: int) -> subprocess.CompletedProcess[str]:
    cmd, env = _cmd(region, cfg, port)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def oracle_state(region: Region) -> HeartbeatState:
    return read_heartbeats(region)[Process.ORACLE].state


@pytest.mark.slow
def test_engs_oracle_serves_and_stops_cleanly_on_sigterm(region: Region, tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    port = free_port()
    proc = start_oracle(region, cfg, port)
    try:
        deadline = time.monotonic() + 30
        status, body = 0, b""
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200, body
        health = json.loads(body)
        assert health["status"] == "ok" and health["instance"] == region.instance
        assert health["region"] == region.name and health["polls"] > 0
        assert oracle_state(region) == HeartbeatState.RUNNING
        status, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert b'engs_up{process="oracle"} 1.0' in metrics
        assert b"engs_oracle_polls_total " in metrics

        # A second oracle for the same instance refuses (one writer per lane).
        second = run_oracle(region, cfg, free_port())
        assert second.returncode == 1
        assert f"engs oracle: another oracle (pid {proc.pid}) is running for " in second.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        _, err = proc.communicate()
        assert "Traceback" not in err
        assert oracle_state(region) == HeartbeatState.STOPPED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_engs_oracle_names_an_address_it_cannot_bind(region: Region, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_oracle(region, config_file(tmp_path), port)
    assert res.returncode == 1
    assert res.stderr.strip().endswith(
        f"engs oracle: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    )
    assert oracle_state(region) == HeartbeatState.FAILED


def test_exits_3_when_the_physics_is_lost(region: Region, tmp_path: Path) -> None:
    """With exit_when_physics_lost_s set (the compose configuration), an oracle whose
    physics was alive and went silent exits 3 so its container restarts into the
    physics' new IPC namespace; it never fires before the physics was seen alive."""
    from engs.shared.heartbeat import Heartbeat

    cfg = tmp_path / "lost.toml"
    cfg.write_text(
        "[shm]\nmax_areas = 8\nlock_memory = false\n\n"
        "[oracle]\npoll_hz = 200\nheartbeat_timeout_s = 0.5\nexit_when_physics_lost_s = 0.3\n",
        encoding="utf-8",
    )
    proc = start_oracle(region, cfg, free_port())
    try:
        time.sleep(1.0)  # no physics yet: must keep running
        assert proc.poll() is None
        hb = Heartbeat(region, Process.PHYSICS)
        hb.set_state(HeartbeatState.RUNNING)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # alive for a second
            hb.beat()
            time.sleep(0.02)
        assert proc.poll() is None
        assert proc.wait(timeout=20) == 3  # then silent: lost
        _, err = proc.communicate(timeout=5)
        assert "the physics has not beaten for 0.3 s after being alive" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
