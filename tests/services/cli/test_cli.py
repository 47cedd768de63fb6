"""The `engs` command line as a user runs it: real subprocesses, a real region with a
live writer process, JSON parsed back."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from engs.shared.clock import monotonic_ns
from engs.shared.heartbeat import Heartbeat
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, HeartbeatState, Lane, Process
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockWriter
from tests.services.cli.support import engs

ctx = mp.get_context("fork")


def _orchestrator_like(instance: str, ready: Any, stop: Any) -> None:
    """A stand-in writer process using the real writer APIs: publishes states at 100 Hz."""
    r = Region.attach(instance, lock_memory=False)
    w = SeqlockWriter(r, "control")
    hb = Heartbeat(r, Process.ORCHESTRATOR)
    hb.set_state(HeartbeatState.RUNNING)
    rec = w.new_record()
    rec["n_areas"] = 3
    rec["dopamine"] = 0.75
    rec["atp_ratio"] = 0.5
    rec["area_speed"][:3] = [1.0, 1.5, 2.0]
    rec["area_nt"][1, 2] = 0.25
    n = 0
    while not stop.is_set():
        n += 1
        rec["seq"] = n
        rec["t_calc_ns"] = monotonic_ns()
        w.publish(rec)
        hb.beat()
        if n == 1:
            ready.set()
        time.sleep(0.01)


def test_status_of_a_missing_instance(instance: str) -> None:
    res = engs("status", "--instance", instance)
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"engs status: no shared-memory region /engs-{instance}: nothing is running for "
        f"instance '{instance}' (start it with `engs up --instance {instance}`)"
    )


def test_status_reads_a_live_instance(region: Region) -> None:
    ready, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_orchestrator_like, args=(region.instance, ready, stop))
    p.start()
    try:
        assert ready.wait(20)
        InterruptWord(region, Lane.ORACLE).raise_cause(Cause.PANIC)
        res = engs("status", "--json", env={"ENGS_INSTANCE": region.instance})
        assert res.returncode == 0, res.stderr
        snap = json.loads(res.stdout)
        text = engs("status", "--instance", region.instance)
    finally:
        stop.set()
        p.join(10)
    assert snap["instance"] == region.instance
    assert snap["region"]["area_names"] == ["sensory", "motor", "limbic"]
    st = snap["state"]
    assert st["published"] and st["fresh"] and st["seq"] >= 1
    assert st["dopamine"] == 0.75 and st["atp_ratio"] == 0.5
    assert list(st["areas"]) == ["sensory", "motor", "limbic"]
    assert st["areas"]["limbic"]["speed"] == 2.0 and st["areas"]["motor"]["nt"]["NE"] == 0.25
    assert 0 <= st["age_s"] < 10
    procs = {x["process"]: x for x in snap["processes"]}
    assert procs["orchestrator"]["state"] == "running" and procs["orchestrator"]["pid"] == p.pid
    assert procs["physics"]["state"] == "absent"
    assert snap["interrupts"]["causes"] == ["panic"]
    assert snap["interrupts"]["by_lane"]["oracle"] == ["panic"]
    assert snap["telemetry"]["published"] is False
    assert text.returncode == 0
    assert "interrupts  PANIC  (oracle: panic" in text.stdout
    assert "D 0.750" in text.stdout and "limbic" in text.stdout
    assert "telemetry   none published yet" in text.stdout


def _watch(instance: str, *, sigint: Any) -> subprocess.Popen[str]:
    """``engs status --watch`` with SIGINT set to ``sigint`` in the child before exec,
    whatever the test runner's own disposition is (a CI runner or ``nohup``/``&`` may
    have it ignored, and an ignored signal stays ignored across exec)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGS_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engs.services.cli",
            "status",
            "--instance",
            instance,
            "--json",
            "--watch",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Only signal(2) between fork and exec: no lock a thread could hold is taken.
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),  # noqa: PLW1509
    )


def test_status_watch_repeats_until_interrupted(region: Region) -> None:
    proc = _watch(region.instance, sigint=signal.SIG_DFL)
    lines = [proc.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert all(json.loads(line)["instance"] == region.instance for line in lines)


def test_status_watch_ends_on_sigterm_where_sigint_is_ignored(region: Region) -> None:
    proc = _watch(region.instance, sigint=signal.SIG_IGN)  # a background job's lot
    lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
    proc.send_signal(signal.SIGINT)  # ignored, as the caller asked
    more = proc.stdout.readline()  # type: ignore[union-attr]
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert all(json.loads(line)["instance"] == region.instance for line in [*lines, more])


def test_bad_config_exits_2_and_names_the_field(tmp_path: Any) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[physics]\ntick_hz = 0\n", encoding="utf-8")
    res = engs("status", "--config", str(cfg))
    assert res.returncode == 2
    assert "Expected `float` > 0.0 - at `$.physics.tick_hz`" in res.stderr


def test_every_contract_command_is_wired() -> None:
    res = engs("--help")
    for cmd in ("up", "physics", "orchestrator", "oracle", "send", "status", "bench", "validate"):
        assert cmd in res.stdout
    for cmd in ("up", "status", "bench"):
        sub = engs(cmd, "--help")
        assert "--config" in sub.stdout and "--instance" in sub.stdout


def test_bench_seqlock_quick_json() -> None:
    res = engs("bench", "seqlock", "--quick", "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["payload_bytes"] > 0 and out["ops"] == 20_000
    for label in ("full_speed", "100hz"):
        sc = out["scenarios"][label]
        p50, p99 = sc["seqlock"]["read"]
        assert 0 < p50 <= p99
        assert sc["seqlock"]["reads"] == 20_000 and sc["seqlock"]["writes"] > 0
        assert len(sc["locked_array"]["read"]) == 2
    assert out["scenarios"]["full_speed"]["seqlock"]["publications_seen"] > 0
    assert out["mp_queue"]["rtt"][0] > 0
    assert "rtt" in out["posix_mq"] or "unavailable" in out["posix_mq"]
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("engs-bench-")]


def test_bench_signals_quick_json() -> None:
    """The bench's machinery end to end (figures themselves are never asserted)."""
    res = engs("bench", "signals", "--quick", "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {r["framing"] for r in out["ingest"]} == {"msgpack", "json"}
    assert all(r["exact"] and r["acked"] == r["applied"] for r in out["ingest"])
    live = out["live"]
    assert live["signals"] > 0 and live["measured"] == live["signals"]
    assert 0 < live["latency_ms"]["p50"] <= live["latency_ms"]["p99"] <= live["latency_ms"]["max"]
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("engs-bench-")]


def test_a_backend_this_machine_lacks_exits_69(instance: str) -> None:
    import importlib.util

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is importable here: the cupy backend may be available")
    res = engs("physics", "--instance", instance, env={"ENGS_BACKEND": "cupy"})
    assert res.returncode == 69
    assert "backend cupy requested but unavailable" in res.stderr
