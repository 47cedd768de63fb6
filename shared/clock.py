"""Clocks shared by every process.

All durations and deadlines are ``time.monotonic_ns()`` (CLOCK_MONOTONIC): it is one
clock for every process on the host (containers share the kernel's), never steps, and
its ns integers compare exactly across processes through shared memory. Wall-clock
time (``time.time_ns()``) is only a label for humans.
"""

from __future__ import annotations

import time

monotonic_ns = time.monotonic_ns
wall_ns = time.time_ns

NS_PER_S = 1_000_000_000


def next_deadline(deadline_ns: int, period_ns: int, now_ns: int) -> tuple[int, int]:
    """The deadline after ``deadline_ns`` on its fixed grid, skipping any already past.

    Returns ``(next deadline, deadlines missed)``. The catch-up policy of both real-time
    loops: an overrun never causes a burst of back-to-back iterations and never shifts
    the grid's phase; each skipped deadline is counted as a miss.
    """
    nxt = deadline_ns + period_ns
    if now_ns <= nxt:
        return nxt, 0
    missed = (now_ns - nxt) // period_ns + 1
    return nxt + missed * period_ns, missed


def sleep_until(deadline_ns: int, spin_ns: int = 200_000) -> int:
    """Block until ``monotonic_ns() >= deadline_ns``; return the lateness in ns (>= 0).

    Sleeps while more than ``spin_ns`` remain (the kernel's wake-up jitter is larger
    than a tick's tolerance), then spins the last stretch. Allocates nothing per call
    beyond Python ints.
    """
    now = time.monotonic_ns()
    remaining = deadline_ns - now
    if remaining > spin_ns:
        time.sleep((remaining - spin_ns) / NS_PER_S)
    now = time.monotonic_ns()
    while now < deadline_ns:
        now = time.monotonic_ns()
    return now - deadline_ns
