"""Issue 16, on real processes and real sockets: connection slots cannot be hoarded, and a
session-log segment too small for its snapshot is refused at start-up with the field and
the minimum named. (Recovery after kills and checkpoints through a crash loop are in
tests/services/supervisor/test_recovery.py.)"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.supervisor.recovery import reward_acked
from tests.services.supervisor.running import ENGS_ENV, EngsUp, eventually, free_ports

pytestmark = pytest.mark.slow


class Orchestrator:
    """``engs orchestrator`` alone (no physics: it runs on without telemetry) on its own
    instance, port and state directory; killed and reaped whatever happens."""

    def __init__(self, instance: str, tmp: Path, signals: str = "") -> None:
        (self.port,) = free_ports(1)
        self.config = tmp / "engs.toml"
        self.config.write_text(
            "[shm]\nlock_memory = false\n"
            f'[orchestrator]\nstate_dir = "{tmp / "state"}"\n'
            "[orchestrator.metabolism]\ncalibrate = false\n"
            f'[signals]\naddr = "127.0.0.1:{self.port}"\n{signals}',
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if k not in ENGS_ENV}
        argv = ["orchestrator", "--instance", instance, "--config", str(self.config)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engs.services.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


@pytest.fixture
def orchestrator(instance: str, tmp_path: Path) -> Iterator[Orchestrator]:
    orch = Orchestrator(instance, tmp_path)
    try:
        eventually(lambda: reward_acked(orch.port), 30, "the signal socket")
        yield orch
    finally:
        orch.close()


def _ack_within(port: int, timeout_s: float) -> tuple[bool, float]:
    """A new client's reward: (acked, seconds from connect to ack)."""
    t0 = time.monotonic()
    ok = reward_acked(port, timeout_s=timeout_s)
    return ok, time.monotonic() - t0


def test_300_silent_connections_do_not_lock_out_a_new_client(orchestrator: Orchestrator) -> None:
    port = orchestrator.port  # max_connections = 64, the default
    held: list[socket.socket] = []
    try:
        for _ in range(300):  # silent from the start
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        renewing = []
        for _ in range(64):  # and 64 that sent one byte, as if renewing their idle timer
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x00")
            renewing.append(s)
        held.extend(renewing)

        # A new client is served while all of them are still held open: the one idle
        # the longest makes room for it. (1 s is the bound on the wait; the ack
        # typically takes milliseconds.)
        for _ in range(3):
            acked, took = _ack_within(port, timeout_s=1.0)
            assert acked, f"a new client's reward was not acked within 1 s ({took:.2f} s)"

        # The slots went to the newest connections: a renewer was closed to make room.
        def closed(s: socket.socket) -> bool:
            s.settimeout(0.05)
            try:
                return s.recv(1) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        eventually(lambda: any(closed(s) for s in renewing), 5, "a renewer to be evicted")
    finally:
        for s in held:
            s.close()


def test_a_silent_connection_is_closed_at_the_first_byte_deadline(
    instance: str, tmp_path: Path
) -> None:
    orch = Orchestrator(instance, tmp_path, signals="first_byte_timeout_s = 0.5\n")
    try:
        eventually(lambda: reward_acked(orch.port), 30, "the signal socket")
        silent = socket.create_connection(("127.0.0.1", orch.port), timeout=10)
        t0 = time.monotonic()
        assert silent.recv(1) == b""  # closed quietly by the server, no reply
        waited = time.monotonic() - t0
        silent.close()
        assert waited >= 0.4, f"closed after {waited:.2f} s, before its deadline"
    finally:
        orch.close()


SEGMENT = re.compile(
    r"`\$\.orchestrator\.session_log\.segment_bytes` = 4096 is below the minimum of "
    r"(\d+) bytes for this configuration"
)


def test_a_segment_smaller_than_its_snapshot_is_refused_at_start_up(
    instance: str, tmp_path: Path
) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "ok").mkdir()
    small = EngsUp(instance, tmp_path / "small")
    with small.config.open("a", encoding="utf-8") as f:
        f.write("[orchestrator.session_log]\nsegment_bytes = 4096\n")
    with small:
        assert small.proc is not None
        code = small.proc.wait(timeout=60)
    out = small.output()
    assert code == 2, out
    m = SEGMENT.search(out)
    assert m is not None, out
    assert "orchestrator exited with 2 (bad configuration): not restarting" in out
    minimum = int(m.group(1))
    assert minimum > 2 * 300_000  # at least twice a fresh snapshot (~320 kB)

    # The minimum it names is enough: the same instance starts and serves.
    ok = EngsUp(instance, tmp_path / "ok")
    with ok.config.open("a", encoding="utf-8") as f:
        f.write(f"[orchestrator.session_log]\nsegment_bytes = {minimum}\n")
    with ok:
        ok.wait_alive()
        assert reward_acked(ok.signal_port)
        assert ok.stop() == 0
