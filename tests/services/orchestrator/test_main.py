"""`engs orchestrator` as a real process with a real `engs physics`, a real client over
a real socket: signals applied and carried to the physics, replay bit for bit, a manual
interrupt with the token, checkpoint restore after kill -9, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engs.services.orchestrator.session import replay
from engs.shared.client import SignalClient
from engs.shared.errors import SignalRejected
from engs.shared.heartbeat import read_heartbeats
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, HeartbeatState, Lane, Mode, Process
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader
from engs.shared.stats import read_stats
from tests.waiting import wait_for

TOKEN = "a-test-token-of-some-length"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    wait_for(pred, what, timeout, poll_s=0.005)


@dataclass
class Instance:
    name: str
    cfg: Path
    state_dir: Path
    addr: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[str]]

    def start(self, service: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engs.services.cli",
                service,
                "--instance",
                self.name,
                "--config",
                str(self.cfg),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        self.procs[service] = p
        return p

    def client(self, **kw: object) -> SignalClient:
        return SignalClient(self.addr, timeout=5.0, **kw)  # type: ignore[arg-type]


@pytest.fixture
def system(instance: str, tmp_path: Path) -> Iterator[Instance]:
    port = _free_port()
    cfg = tmp_path / "engs.toml"
    cfg.write_text(
        f"""
[shm]
lock_memory = false
[physics]
shape = [16, 16]
areas = ["sensory", "motor"]
[orchestrator]
state_dir = "{tmp_path / "state"}"
checkpoint_period_s = 0.2
[signals]
addr = "127.0.0.1:{port}"
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGS_")}
    env["ENGS_TOKEN"] = TOKEN
    inst = Instance(instance, cfg, tmp_path / "state", f"127.0.0.1:{port}", env, {})
    try:
        yield inst
    finally:
        for name, p in inst.procs.items():
            if p.poll() is None:
                p.kill()
            out, _ = p.communicate(timeout=10)
            print(f"--- {name} (exit {p.returncode}) ---\n{out}")


def _region(inst: Instance) -> Region:
    _wait(lambda: Path(f"/dev/shm/engs-{inst.name}").exists(), "the region")
    return Region.attach(inst.name, lock_memory=False, ready_timeout_s=10)


def _connectable(inst: Instance) -> bool:
    try:
        with inst.client(connect_attempts=1) as c:
            c.state()
        return True
    except OSError:
        return False
    except Exception:
        return False


def test_signals_reach_the_physics_and_the_run_replays(system: Instance) -> None:
    system.start("physics")
    region = _region(system)
    orch = system.start("orchestrator")
    _wait(lambda: _connectable(system), "the signal socket")
    ctl, tel = SeqlockReader(region, "control"), SeqlockReader(region, "telemetry")
    st, tm = ctl.new_record(), tel.new_record()

    with system.client() as c:
        acks = [
            c.reward(0.5),
            c.stress(0.2),
            c.stimulus("motor", 0.3),
            c.goal_complete(),
            c.dmn(
                coherence=0.4,
                utility=0.1,
                uncertainty=0.3,
                safety_penalty=0.0,
                calibration_gap=0.2,
                node="3.6",
            ),
        ]
        with c.reserve(2.0, "ingest") as lock:
            assert lock.lock is not None and lock.lock >= 1
        with pytest.raises(SignalRejected, match="unknown area 'nowhere'"):
            c.stimulus("nowhere", 0.3)
    last = max(a.seq for a in acks)
    _wait(
        lambda: ctl.read_latest(st) and int(st["signal_id"]) >= last,
        "the state to include the last signal",
    )
    _wait(
        lambda: tel.read_latest(tm) and int(tm["applied_signal_id"]) >= last,
        "the physics to apply it",
    )
    with system.client() as c:
        snap = c.state()
    assert snap.seq > 0 and snap.signal_id >= last and 0.0 <= snap.dopamine <= 1.0
    stats = read_stats(region, Process.ORCHESTRATOR)
    for t in ("reward", "stress", "stimulus", "goal_complete", "dmn"):
        received = 2 if t == "stimulus" else 1  # the one naming an unknown area is refused
        assert stats.counter("engs_signals_total", type=t) == received
        assert stats.counter("engs_signals_applied_total", type=t) == 1
    assert stats.counter("engs_signals_rejected_total", reason="invalid") == 1
    _wait(
        lambda: (
            read_stats(region, Process.ORCHESTRATOR).counter("engs_orchestrator_cycles_total") > 10
        ),
        "ten cycles",
    )
    phys = read_stats(region, Process.PHYSICS)
    assert {h.spec.name: h.count for h in phys.histograms}["engs_signal_latency_seconds"] >= 1

    orch.send_signal(signal.SIGTERM)
    assert orch.wait(timeout=15) == 0
    assert read_heartbeats(region)[Process.ORCHESTRATOR].state is HeartbeatState.STOPPED
    ckpt = json.loads((system.state_dir / "checkpoint.json").read_text(encoding="utf-8"))
    assert ckpt["cycle"] > 10
    (seg,) = sorted(system.state_dir.glob(f"session-{system.name}-*.log"))
    res = replay(seg)
    assert res.cycles == ckpt["cycle"] and res.mismatches == 0, res


def test_manual_interrupt_needs_the_token_and_reaches_the_physics(system: Instance) -> None:
    system.start("physics")
    region = _region(system)
    system.start("orchestrator")
    _wait(lambda: _connectable(system), "the signal socket")
    with system.client() as c, pytest.raises(SignalRejected):
        c.interrupt("manual")
    tel = SeqlockReader(region, "telemetry")
    tm = tel.new_record()
    with system.client(token=TOKEN) as c:
        c.interrupt("manual")
        irq = InterruptWord(region)
        assert irq.lane_causes(Lane.ORCHESTRATOR) == Cause.MANUAL
        _wait(
            lambda: tel.read_latest(tm) and int(tm["mode"]) & int(Mode.SAFE) != 0,
            "the physics safe mode",
        )
        assert "manual" in c.state().interrupts
        c.clear("manual")
        assert irq.causes() == Cause(0)
    _wait(lambda: tel.read_latest(tm) and int(tm["mode"]) & int(Mode.SAFE) == 0, "safe mode to end")
    snap = read_stats(region, Process.ORCHESTRATOR)
    assert snap.counter("engs_interrupts_total", cause="manual") == 1


def test_kill_9_restores_from_the_checkpoint(system: Instance) -> None:
    system.start("physics")
    region = _region(system)
    orch = system.start("orchestrator")
    _wait(lambda: _connectable(system), "the signal socket")
    ckpt = system.state_dir / "checkpoint.json"
    _wait(
        lambda: ckpt.exists() and json.loads(ckpt.read_text(encoding="utf-8"))["cycle"] > 50,
        "a checkpoint past cycle 50",
    )
    ctl = SeqlockReader(region, "control")
    st = ctl.new_record()
    ctl.read_latest(st)
    seq_before = int(st["seq"])
    orch.send_signal(signal.SIGKILL)
    orch.wait(timeout=10)
    saved = json.loads(ckpt.read_text(encoding="utf-8"))  # whole: written by rename
    assert 0 < saved["cycle"] <= seq_before

    again = system.start("orchestrator")
    _wait(lambda: _connectable(system), "the restarted socket")
    _wait(lambda: ctl.read_latest(st) and int(st["seq"]) > seq_before, "publication to go on")
    again.send_signal(signal.SIGTERM)
    out, _ = again.communicate(timeout=15)
    assert again.returncode == 0
    assert f"restored {ckpt} (cycle {saved['cycle']})" in out


def test_exits_3_when_the_physics_is_lost(system: Instance) -> None:
    """exit_when_physics_lost_s (set under docker compose): a physics killed for good
    makes the orchestrator exit 3, so its container restarts into the new namespace."""
    text = system.cfg.read_text(encoding="utf-8").replace(
        "[orchestrator]\n", "[orchestrator]\nexit_when_physics_lost_s = 0.3\n"
    )
    system.cfg.write_text(text, encoding="utf-8")
    phys = system.start("physics")
    _region(system)
    orch = system.start("orchestrator")
    _wait(lambda: _connectable(system), "the signal socket")
    time.sleep(0.5)
    assert orch.poll() is None
    phys.kill()
    assert orch.wait(timeout=20) == 3
    out, _ = orch.communicate(timeout=5)
    assert "the physics has not beaten for 0.3 s after being alive" in out
