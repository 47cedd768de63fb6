"""Issue 16 on a real ``engs up``: repeated kills do not slow recovery, a crash loop at
start-up still backs off, and a crash loop keeps what the orchestrator learned.

* Each child killed five times: every restart is immediate (it had run healthily), and
  each time the service is usable again — heartbeats fresh, the socket acking, the
  checkpoint restored (tests/services/supervisor/recovery.py). The measured times are in
  docs/deploy.md; the bound asserted here is generous (a loaded two-core CI box), the
  mechanism (no backoff after a healthy run) is asserted exactly.
* An orchestrator that crashes at start (its state dir is a file) is restarted after
  0.25, 0.5, 1, 1.5 s.
* Killed every 4 s, the orchestrator restores a checkpoint that keeps growing (cycle and
  replay buffer), and a clean stop checkpoints the last cycle.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from engs.services.supervisor.main import HEALTHY_AFTER_S
from tests.services.supervisor.recovery import RESTORED, kill_and_measure, reward_acked
from tests.services.supervisor.running import EngsUp, eventually

pytestmark = pytest.mark.slow

KILLS = 5
#: A bound no healthy restart comes near (measured 0.4–1.3 s, docs/deploy.md), but one
#: that the pre-issue-16 backoff (1.5 s + start-up, > 2 s) would not make it obvious
#: against: the exact check is that every restart was immediate.
USABLE_WITHIN_S = 5.0


@pytest.mark.parametrize("child", ["physics", "orchestrator", "oracle"])
def test_five_kills_each_end_with_the_service_usable_again(
    instance: str, tmp_path: Path, child: str
) -> None:
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        times = []
        for i in range(KILLS):
            time.sleep(HEALTHY_AFTER_S + 0.5)  # each incarnation runs healthily first
            r = kill_and_measure(up, child)
            times.append(r.usable_s)
            assert up.has_line(
                f"[supervisor] {child} was killed by SIGKILL; restarting now (restart {i + 1})"
            ), up.output()
            if child == "orchestrator":
                assert r.restored_cycle is not None and r.restored_cycle > 0
        assert max(times) < USABLE_WITHIN_S, f"usable after {times} s"
        assert "restarting in" not in up.output()  # never a backoff
        assert up.stop() == 0


def test_a_crash_loop_at_start_up_still_backs_off(instance: str, tmp_path: Path) -> None:
    up = EngsUp(instance, tmp_path)
    bad = tmp_path / "not-a-dir"
    bad.write_text("", encoding="utf-8")
    text = up.config.read_text(encoding="utf-8")
    up.config.write_text(
        re.sub(r'state_dir = ".*"', f'state_dir = "{bad}"', text), encoding="utf-8"
    )
    with up:
        delays = ["0.25", "0.50", "1.00", "1.50", "1.50"]
        eventually(lambda: up.has_line("(restart 5)"), 30, f"five restarts; output:\n{up.output()}")
        for n, d in enumerate(delays, 1):
            assert up.has_line(
                f"[supervisor] orchestrator exited with 1 at start; restarting in {d} s "
                f"(restart {n})"
            ), up.output()
        assert up.stop() == 0


def test_a_crash_loop_keeps_what_the_orchestrator_learned(instance: str, tmp_path: Path) -> None:
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        ckpt = tmp_path / "state" / "checkpoint.json"
        restored: list[int] = []
        replay_rows: list[int] = []
        for _ in range(KILLS):
            time.sleep(4.0)  # killed every ~4 s (the crash loop: every 8 s)
            n_lines = len(up.lines)
            os.kill(up.pid("orchestrator"), signal.SIGKILL)

            def back(since: int = n_lines) -> bool:
                fresh = up.lines[since:]
                return any(RESTORED.search(x) for x in fresh) and reward_acked(up.signal_port)

            eventually(back, 15, f"the orchestrator back; output:\n{up.output()}")
            line = next(x for x in up.lines[n_lines:] if RESTORED.search(x))
            m = RESTORED.search(line)
            assert m is not None
            restored.append(int(m.group(1)))
            replay_rows.append(json.loads(ckpt.read_text(encoding="utf-8"))["replay"]["size"])
        # Every life added to what the next one started from: > 1 s of 100 Hz cycles
        # each (the first checkpoint comes 1 s in, the next 2 s later).
        gains = [b - a for a, b in zip([0, *restored], restored, strict=False)]
        assert all(g >= 100 for g in gains), f"restored cycles {restored}"
        assert replay_rows == sorted(replay_rows) and replay_rows[-1] > replay_rows[0], (
            f"replay rows restored {replay_rows}"
        )

        # A clean stop checkpoints the last cycle it ran.
        assert up.stop() == 0
        stopped = re.search(r"orchestrator stopped at cycle (\d+)", up.output())
        assert stopped is not None, up.output()
        assert json.loads(ckpt.read_text(encoding="utf-8"))["cycle"] == int(stopped.group(1))
        print(f"\nrestored cycles over {KILLS} kills every 4 s: {restored}")
