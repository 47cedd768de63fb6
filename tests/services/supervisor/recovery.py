"""How long the service takes to be *usable* again after a child is killed.

Usable means all of (issue 16):

* every child's heartbeat is fresh (beaten within :data:`FRESH_S`, state RUNNING), the
  killed one's from its new pid;
* the signal socket acks a reward on a new connection;
* after an orchestrator kill, the new orchestrator restored its checkpoint (it logged
  ``restored … (cycle N)`` with N > 0).

:func:`kill_and_measure` kills one child with SIGKILL and polls those conditions every
10 ms from the moment of the kill. Run as a script it prints the recovery times of five
kills of each child, one every ``--spacing`` seconds, on an ``engs up`` of its own (the
numbers in docs/deploy.md)::

    python -m tests.services.supervisor.recovery [--kills 5] [--spacing 12]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from engs.shared.heartbeat import read_heartbeats
from engs.shared.layout import HeartbeatState, Process
from engs.shared.region import Region
from tests.services.supervisor.running import CHILDREN, EngsUp, eventually

#: A heartbeat at most this old is fresh (the oracle calls one DEAD after 1 s).
FRESH_S = 0.25
RESTORED = re.compile(r"restored \S+ \(cycle (\d+)\)")


def reward_acked(port: int, timeout_s: float = 0.5) -> bool:
    """One reward on a new TCP connection, acked within ``timeout_s``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(b'{"type":"reward","value":0.1}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            return buf.startswith(b'{"type":"ack"')
    except OSError:
        return False


def heartbeats_fresh(instance: str, pid_of: dict[Process, int]) -> bool:
    """Every child beat within FRESH_S, RUNNING, from the pid given for it."""
    region = Region.attach(instance, lock_memory=False)
    try:
        beats = {hb.process: hb for hb in read_heartbeats(region)}
    finally:
        region.close()
    return all(
        beats[p].pid == pid
        and beats[p].state is HeartbeatState.RUNNING
        and beats[p].age_s is not None
        and beats[p].age_s < FRESH_S
        for p, pid in pid_of.items()
    )


@dataclass(frozen=True)
class Recovery:
    process: str
    usable_s: float
    """Kill → heartbeats fresh, socket acking and (orchestrator) checkpoint restored."""
    restarted_s: float
    """Kill → the supervisor announced the new pid."""
    restored_cycle: int | None
    """The cycle the new orchestrator restored (None for the other children)."""


def kill_and_measure(up: EngsUp, process: str, timeout_s: float = 15.0) -> Recovery:
    """SIGKILL ``process`` and time the service until usable again (module docstring)."""
    before = len(up.pids[process])
    victim = up.pid(process)
    n_lines = len(up.lines)
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    restarted = restored_at = None
    restored_cycle: int | None = None
    while True:
        now = time.monotonic()
        if now - t0 > timeout_s:
            raise AssertionError(
                f"{process} not usable {timeout_s} s after its kill:\n{up.output()}"
            )
        if restarted is None and len(up.pids[process]) > before:
            restarted = now - t0
        if restarted is None:
            time.sleep(0.01)
            continue
        if process == "orchestrator" and restored_at is None:
            for line in up.lines[n_lines:]:
                m = RESTORED.search(line)
                if m and line.startswith("[orchestrator]"):
                    restored_cycle = int(m.group(1))
                    restored_at = now
            if restored_at is None:
                time.sleep(0.01)
                continue
        pids = {Process[c.name]: up.pid(c.name.lower()) for c in CHILDREN}
        if heartbeats_fresh(up.instance, pids) and reward_acked(up.signal_port):
            return Recovery(process, time.monotonic() - t0, restarted, restored_cycle)
        time.sleep(0.01)


def measure(up: EngsUp, process: str, kills: int, spacing_s: float) -> list[Recovery]:
    """``kills`` kills of ``process``, one every ``spacing_s`` (from kill to kill)."""
    out = []
    for i in range(kills):
        t0 = time.monotonic()
        out.append(kill_and_measure(up, process))
        if i + 1 < kills:
            time.sleep(max(0.0, spacing_s - (time.monotonic() - t0)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--spacing", type=float, default=12.0, help="seconds from kill to kill")
    ap.add_argument("--settle", type=float, default=15.0, help="seconds between children")
    args = ap.parse_args(argv)
    instance = f"recovery-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, EngsUp(instance, Path(tmp)) as up:
        up.wait_alive()
        time.sleep(args.settle)
        for child in ("physics", "orchestrator", "oracle"):
            eventually(
                lambda: heartbeats_fresh(
                    instance, {Process[c.name]: up.pid(c.name.lower()) for c in CHILDREN}
                ),
                30,
                "fresh heartbeats",
            )
            try:
                rs = measure(up, child, args.kills, args.spacing)
            except Exception:
                print(up.output(), file=sys.stderr)
                raise
            times = ", ".join(f"{r.usable_s:.2f}" for r in rs)
            extra = ""
            if child == "orchestrator":
                extra = " restored cycles " + ", ".join(str(r.restored_cycle) for r in rs)
            print(
                f"{child}: usable after {times} s (max {max(r.usable_s for r in rs):.2f}); "
                f"restarted after " + ", ".join(f"{r.restarted_s:.2f}" for r in rs) + extra,
                flush=True,
            )
            time.sleep(args.settle)
        print(f"load average {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
