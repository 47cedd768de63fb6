"""What ``/healthz`` answers: is this oracle doing its job?

Healthy (200) iff both hold:

1. **the region is attached**: the name ``/dev/shm/engs-<instance>`` still exists and is
   the same object this oracle mapped (same inode). A supervisor that unlinked it, or a
   new instance that replaced it, leaves this oracle watching memory nobody writes;
2. **the poll loop is alive**: the watchdog completed a poll within ``max_poll_age_ns``
   (``oracle.heartbeat_timeout_s``, the same limit the supervisor applies to the
   oracle's heartbeat).

Otherwise 503. The JSON body always carries the checks and, for the operator, the
active interrupt causes and each process's liveness verdict — which do *not* affect
the status: a dead physics is the supervisor's to restart, not a reason to restart the
oracle (the Docker healthcheck restarts the container it runs in).

When both hold but the physics misses its deadlines or falls behind (the one rule,
:func:`engs.shared.liveness.judge_process`: over 1 % of the last 10 s'
deadlines missed, or below 95 % of the target rate), the status is ``degraded`` — still
200, since the oracle does its job — and ``degraded`` lists the reasons; ``deadlines``
carries the figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engs.services.oracle.watchdog import Watchdog
from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.deadlines import judge, read_report
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, Process
from engs.shared.liveness import Verdict
from engs.shared.region import Region

SHM_DIR = Path("/dev/shm")


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class Health:
    def __init__(self, region: Region, watchdog: Watchdog, *, max_poll_age_ns: int) -> None:
        self.region = region
        self.watchdog = watchdog
        self.max_poll_age_ns = max_poll_age_ns
        self._path = SHM_DIR / region.name.lstrip("/")
        self._inode = _inode(self._path) if SHM_DIR.is_dir() else None
        self._irq = InterruptWord(region)

    def check(self) -> tuple[bool, dict[str, Any]]:
        problems = []
        if self._inode is not None:
            ino = _inode(self._path)
            if ino is None:
                problems.append(f"region {self.region.name} was unlinked")
            elif ino != self._inode:
                problems.append(f"region {self.region.name} was replaced by a new one")
        last = self.watchdog.last_poll_ns
        age = (monotonic_ns() - last) if last else None
        if age is None:
            problems.append("the poll loop has not completed a poll yet")
        elif age > self.max_poll_age_ns:
            problems.append(f"the poll loop last completed a poll {age / NS_PER_S:.3g} s ago")
        causes = int(self._irq.causes())
        physics = self.watchdog.liveness.get(Process.PHYSICS)
        deadlines = judge(
            read_report(self.region),
            running=physics is not None and physics.verdict is Verdict.ALIVE,
        )
        degraded = list(deadlines.reasons) if deadlines.degraded else []
        r = deadlines.report
        body = {
            "status": "unhealthy" if problems else "degraded" if degraded else "ok",
            "problems": problems,
            "degraded": degraded,
            "deadlines": {
                "status": deadlines.status.value,
                "reasons": list(deadlines.reasons),
                **(
                    {}
                    if r is None
                    else {
                        "target_hz": r.target_hz,
                        "achieved_hz": r.achieved_hz,
                        "window_s": r.window_s,
                        "misses_window": r.misses_window,
                        "misses_total": r.misses_total,
                        "miss_ratio": r.miss_ratio,
                        "tick_p99_s": r.tick_p99_s,
                        "staleness_p99_s": r.staleness_p99_s,
                    }
                ),
            },
            "instance": self.region.instance,
            "region": self.region.name,
            "polls": self.watchdog.polls,
            "last_poll_age_s": None if age is None else age / NS_PER_S,
            "interrupts": [str(c.name).lower() for c in Cause if causes & int(c)],
            "processes": {
                str(p.name).lower(): lv.verdict.value for p, lv in self.watchdog.liveness.items()
            },
        }
        return not problems, body
