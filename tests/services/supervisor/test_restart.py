"""`engs up` keeps the instance running: real processes, real signals.

* a child killed with SIGKILL is restarted (and the supervisor says so), the other two
  keep running with the same pids, and the restarted one works again;
* a supervisor killed with SIGKILL does not leave its children running unsupervised:
  they receive their parent-death signal and stop cleanly.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from engs.services.supervisor.main import HEALTHY_AFTER_S, describe_exit
from engs.shared.heartbeat import read_heartbeats
from engs.shared.layout import HeartbeatState, Process
from engs.shared.liveness import Verdict, liveness
from engs.shared.region import Region
from tests.services.supervisor.running import EngsUp, eventually, http_get, running

pytestmark = pytest.mark.slow


def _verdict(instance: str, process: Process) -> Verdict:
    region = Region.attach(instance, lock_memory=False)
    try:
        return liveness(region)[process].verdict
    finally:
        region.close()


def _counter(body: bytes, name: str, labels: str) -> float:
    m = re.search(rf"^{name}\{{{labels}\}} (\S+)$", body.decode(), re.M)
    assert m is not None, f"{name}{{{labels}}} not in /metrics"
    return float(m.group(1))


def test_exit_descriptions() -> None:
    assert describe_exit(0) == "exited with 0"
    assert describe_exit(1) == "exited with 1"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"


def test_a_child_killed_with_sigkill_is_restarted_and_the_others_keep_running(
    instance: str, tmp_path: Path
) -> None:
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        time.sleep(HEALTHY_AFTER_S + 0.2)  # it has run healthily: a kill, not a start crash
        victim = up.pid("physics")
        others = {p: up.pid(p) for p in ("orchestrator", "oracle")}

        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        eventually(lambda: len(up.pids["physics"]) == 2, 5, "physics restarted")
        restart_s = time.monotonic() - killed_at
        new = up.pid("physics")

        # The supervisor says what happened and what it does about it.
        assert up.has_line(
            "[supervisor] physics was killed by SIGKILL; restarting now (restart 1)"
        ), up.output()
        assert up.has_line(f"[supervisor] started physics (pid {new})")
        assert new != victim and not running(victim)
        assert restart_s < 2.0, f"restarted {restart_s:.2f} s after the kill (limit 2 s)"
        print(
            f"\nphysics pid {victim} killed with SIGKILL; restarted as pid {new} "
            f"{restart_s:.2f} s later; orchestrator and oracle kept pids {others}"
        )

        # The restarted physics works: it beats and publishes fresh telemetry again.
        eventually(
            lambda: _verdict(instance, Process.PHYSICS) is Verdict.ALIVE,
            15,
            "the restarted physics to be alive",
        )
        # The other two were never restarted: same pids, still running, one start each.
        for process, pid in others.items():
            assert up.pids[process] == [pid], f"{process} was restarted: {up.output()}"
            assert running(pid)
        status, body = http_get(up.metrics_url + "/metrics")
        assert status == 200
        assert _counter(body, "engs_restarts_total", 'process="physics"') == 1
        assert _counter(body, "engs_restarts_total", 'process="orchestrator"') == 0
        assert _counter(body, "engs_restarts_total", 'process="oracle"') == 0

        assert up.stop() == 0
        assert up.has_line("[supervisor] region unlinked; exit 0")
    for pid in (new, *others.values()):
        assert not running(pid)
    assert not Path(f"/dev/shm/engs-{instance}").exists()


def test_children_stop_cleanly_when_the_supervisor_is_killed(instance: str, tmp_path: Path) -> None:
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        children = {p: up.pid(p) for p in ("physics", "orchestrator", "oracle")}
        assert up.proc is not None
        up.proc.kill()  # SIGKILL: no chance to stop anything
        up.proc.wait()
        eventually(
            lambda: not any(running(pid) for pid in children.values()),
            10,
            f"the orphaned children {children} to exit",
        )
    # Each stopped cleanly on its parent-death SIGTERM (it said so in its heartbeat), so
    # the region they leave is stale and the next `engs up` replaces it.
    region = Region.attach(instance, lock_memory=False)
    try:
        states = {hb.process: hb.state for hb in read_heartbeats(region)}
    finally:
        region.close()
    for p in (Process.PHYSICS, Process.ORCHESTRATOR, Process.ORACLE):
        assert states[p] == HeartbeatState.STOPPED, f"{p.name}: {states[p].name}"
