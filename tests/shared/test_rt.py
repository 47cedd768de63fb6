"""Real-time setup reports failure instead of raising."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from engs.shared.rt import freeze_gc, set_affinity, set_sched_fifo, set_timer_slack, thaw_gc


def test_timer_slack_is_set_and_readable() -> None:
    res = set_timer_slack(2_000)
    assert res.ok, res
    import ctypes

    libc = ctypes.CDLL(None)
    assert libc.prctl(30, 0, 0, 0, 0) == 2_000  # PR_GET_TIMERSLACK
    set_timer_slack(50_000)


def test_affinity_ok_and_bad_cpu_reported() -> None:
    before = os.sched_getaffinity(0)
    try:
        assert set_affinity(sorted(before)[:1]).ok
        bad = set_affinity([10_000])
        assert (
            not bad.ok and "cpus [10000]" in bad.detail and str(bad).startswith("affinity: FAILED")
        )
    finally:
        os.sched_setaffinity(0, before)


def test_sched_fifo_failure_is_reported_not_raised() -> None:
    # Without CAP_SYS_NICE the call must fail politely; run it in a child so this
    # test process never becomes a real-time task.
    code = (
        "from engs.shared.rt import set_sched_fifo; r = set_sched_fifo(10); print(r.ok, r.detail)"
    )
    cmd = [
        "setpriv",
        "--inh-caps=-sys_nice",
        "--bounding-set=-sys_nice",
        "prlimit",
        "--rtprio=0:0",
        sys.executable,
        "-c",
        code,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("False priority 10: Operation not permitted (needs CAP_SYS_NICE")
    assert set_sched_fifo(0).ok is False  # priority 0 is invalid for SCHED_FIFO


def test_gc_freeze_and_thaw() -> None:
    res = freeze_gc()
    try:
        assert res.ok and not gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        thaw_gc()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_next_deadline_skips_past_deadlines_on_the_grid() -> None:
    from engs.shared.clock import next_deadline

    assert next_deadline(1000, 100, 1050) == (1100, 0)  # on time
    assert next_deadline(1000, 100, 1100) == (1100, 0)  # exactly at the next deadline
    assert next_deadline(1000, 100, 1101) == (1200, 1)  # overran one deadline
    assert next_deadline(1000, 100, 1350) == (1400, 3)  # overran three: no burst
    nxt, _ = next_deadline(1000, 100, 98_765)
    assert (nxt - 1000) % 100 == 0 and nxt > 98_765  # same phase, in the future


def test_sleep_until_returns_lateness() -> None:
    from engs.shared.clock import monotonic_ns, sleep_until

    target = monotonic_ns() + 2_000_000
    late = sleep_until(target, spin_ns=500_000)
    assert late >= 0 and monotonic_ns() >= target
    assert sleep_until(monotonic_ns() - 5_000) >= 5_000  # already past: returns at once


def _auto_in_child(*wrap: str, pin_one_cpu: bool = False) -> str:
    """auto_sched_fifo() in a child process (so no test process becomes real-time):
    its detail and the policy the child ends with."""
    code = (
        "import os\n"
        + ("os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n" if pin_one_cpu else "")
        + "from engs.shared.rt import auto_sched_fifo\n"
        "r = auto_sched_fifo()\n"
        "print(r.ok, r.detail, '|', os.sched_getscheduler(0) == os.SCHED_FIFO)\n"
    )
    cmd = [*wrap, sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout


def test_auto_sched_fifo_never_fails() -> None:
    denied = _auto_in_child(
        "setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "prlimit", "--rtprio=0:0"
    )
    assert denied.startswith("True auto: not taken (priority 10: Operation not permitted")
    assert denied.strip().endswith("| False")
    if len(os.sched_getaffinity(0)) >= 2:
        alone = _auto_in_child(pin_one_cpu=True)
        assert alone.strip() == "True auto: not taken, only one CPU usable | False"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_auto_sched_fifo_takes_priority_10_when_allowed() -> None:
    try:
        allowed = subprocess.run(["chrt", "-f", "10", "true"], check=False).returncode == 0
    except FileNotFoundError:  # util-linux missing
        allowed = False
    if not allowed:
        pytest.skip("this process may not use SCHED_FIFO (no CAP_SYS_NICE, no rtprio limit)")
    assert _auto_in_child().strip() == "True auto: priority 10 | True"
