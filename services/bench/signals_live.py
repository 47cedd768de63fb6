"""``engs bench signals`` (live part): signal → physics-applied latency on the live system.

A real ``engs physics`` and ``engs orchestrator`` run as child processes on a private
instance (temporary state directory, free port). A client sends ``reward`` signals at a
steady rate over the socket, noting the CLOCK_MONOTONIC time just before each send;
this process polls the physics telemetry (seqlock reads, ~10 kHz) and notes the tick
start (``applied_t_ns``) at which ``applied_signal_id`` first reached each id. The
latency of signal *k* is that tick start minus its send time: socket, inbox, the wait for
the next control cycle (≤ 10 ms at 100 Hz), the cycle, the wait for the next physics tick
(≤ 1 ms). The physics' own ``engs_signal_latency_seconds`` histogram measures the same
path from socket receipt, for the newest signal of each state only.

Target (issue #6): p99 ≤ 12 ms. The structural floor is the two waits, uniform over one
control period and one tick: about period/2 + tick/2 on average.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from engs.shared.client import SignalClient
from engs.shared.region import Region, unlink
from engs.shared.seqlock import SeqlockReader


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def measure_live(*, seconds: float = 5.0, rate_hz: float = 500.0) -> dict[str, Any]:
    """Run the live system and measure; returns a JSON-ready dict (times in ms)."""
    instance = f"bench-live-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="engs-bench-") as tmp:
        cfg = Path(tmp) / "engs.toml"
        cfg.write_text(
            f'[orchestrator]\nstate_dir = "{tmp}/state"\n[orchestrator.session_log]\n'
            f'enabled = false\n[signals]\naddr = "127.0.0.1:{port}"\n',
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGS_")}
        try:
            for service in ("physics", "orchestrator"):
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "engs.services.cli",
                            service,
                            "--instance",
                            instance,
                            "--config",
                            str(cfg),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=env,
                    )
                )
                if service == "physics":
                    region = _wait_region(instance)
            return _measure(region, f"127.0.0.1:{port}", seconds, rate_hz)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            unlink(instance)


def _wait_region(instance: str) -> Region:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            return Region.attach(instance, lock_memory=False, ready_timeout_s=5)
        except Exception:
            time.sleep(0.02)
    raise RuntimeError(f"the physics did not create /engs-{instance} within 20 s")


def _measure(region: Region, addr: str, seconds: float, rate_hz: float) -> dict[str, Any]:
    tel = SeqlockReader(region, "telemetry")
    rec = tel.new_record()
    client = SignalClient(addr, timeout=5.0, connect_attempts=100, backoff_s=0.05)
    client.state()  # connected and the orchestrator is up
    sent: list[tuple[int, int]] = []  # (signal id, send time)
    applied: list[tuple[int, int]] = []  # (applied_signal_id, tick start)
    done = threading.Event()

    def send() -> None:
        period = 1.0 / rate_hz
        nxt = time.monotonic()
        end = nxt + seconds
        while nxt < end:
            t = time.monotonic_ns()
            ack = client.reward(0.1)
            sent.append((ack.seq, t))
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        done.set()

    th = threading.Thread(target=send)
    th.start()
    last = -1
    settle_until = None  # after the last send: poll until it is applied, at most 2 s
    while settle_until is None or (time.monotonic() < settle_until and last < sent[-1][0]):
        if tel.read_latest(rec):
            sid = int(rec["applied_signal_id"])
            if sid != last:
                last = sid
                applied.append((sid, int(rec["applied_t_ns"])))
        time.sleep(0.0001)
        if settle_until is None and done.is_set():
            settle_until = time.monotonic() + 2.0
            if not sent:
                break
    th.join()
    client.close()
    lat = []
    j = 0
    for sid, t_send in sent:
        while j < len(applied) and applied[j][0] < sid:
            j += 1
        if j < len(applied):
            lat.append((applied[j][1] - t_send) / 1e6)
    return {
        "signals": len(sent),
        "rate_hz": rate_hz,
        "measured": len(lat),
        "latency_ms": {
            "p50": _percentile(lat, 0.5), "p99": _percentile(lat, 0.99), "max": max(lat),
            "mean": sum(lat) / len(lat),
        } if lat else {},
    }  # fmt: skip
