"""``engs bench cycle``: what one orchestrator control cycle costs, headless.

A real :class:`~engs.services.orchestrator.main.Orchestrator` on a private region (a
temporary state directory; no physics, no socket, no event loop), built from the
configuration (``--config``) with the host calibration fixed to the reference one (no
start-up benchmark). Every cycle one ``reward`` signal arrives through the inbox, as the
socket would hand it over; the cycle then drains it, steps the dynamics and publishes the
NeurochemicalState — :meth:`Orchestrator.cycle`, timed alone with ``perf_counter_ns``
after a warm-up. ``--session-log`` turns the session log on (its record per cycle).

Reported: p50, p99, mean and max per cycle against the 10 ms period of 100 Hz. Timings
belong here, never in pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from typing import Any

import msgspec
import numpy as np

from engs.shared.config import Config


def _bench_config(cfg: Config, state_dir: str, session_log: bool) -> Config:
    data = msgspec.to_builtins(cfg)
    oc = data["orchestrator"]
    oc["state_dir"] = state_dir
    oc["metabolism"]["calibrate"] = False
    oc["session_log"]["enabled"] = session_log
    return msgspec.convert(data, Config)


def measure(
    cfg: Config, *, cycles: int = 3000, warmup: int = 300, session_log: bool = False
) -> dict[str, Any]:
    """Time ``cycles`` control cycles after ``warmup``; the figures in seconds."""
    from engs.services.orchestrator.inbox import Accepted  # noqa: PLC0415
    from engs.services.orchestrator.main import Orchestrator  # noqa: PLC0415
    from engs.shared.messages import Reward  # noqa: PLC0415
    from engs.shared.region import Region, unlink  # noqa: PLC0415

    instance = f"bench-cycle-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="engs-bench-cycle-") as tmp:
        bcfg = _bench_config(cfg, tmp, session_log)
        region = Region.create(
            instance, bcfg.shm.max_areas, area_names=bcfg.physics.areas, lock_memory=False
        )
        try:
            orch = Orchestrator(bcfg, region)
            times = np.empty(cycles, dtype=np.int64)
            for i in range(warmup + cycles):
                reward = Reward(value=0.5 if i % 7 == 0 else -0.1)
                orch.inbox.try_put(Accepted(i + 1, time.monotonic_ns(), reward))
                t0 = time.perf_counter_ns()
                orch.cycle(0)
                if i >= warmup:
                    times[i - warmup] = time.perf_counter_ns() - t0
            orch.close()
        finally:
            region.close()
            unlink(instance)
    t = times.astype(np.float64) * 1e-9
    return {
        "cycles": cycles,
        "session_log": session_log,
        "p50_s": float(np.percentile(t, 50)),
        "p99_s": float(np.percentile(t, 99)),
        "mean_s": float(t.mean()),
        "max_s": float(t.max()),
        "period_s": bcfg.orchestrator.dt,
    }


def format_result(res: dict[str, Any]) -> str:
    """One line for humans."""
    return (
        f"orchestrator cycle ({res['cycles']} cycles, session log "
        f"{'on' if res['session_log'] else 'off'}): p50 {res['p50_s'] * 1e3:.3f} ms, "
        f"p99 {res['p99_s'] * 1e3:.3f} ms, mean {res['mean_s'] * 1e3:.3f} ms, max "
        f"{res['max_s'] * 1e3:.3f} ms (period {res['period_s'] * 1e3:.0f} ms)"
    )


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags of ``engs bench cycle``."""
    ap.add_argument("--json", action="store_true", help="print JSON instead of a line")
    ap.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")
    ap.add_argument("--cycles", type=int, default=3000, help="timed cycles (default 3000)")
    ap.add_argument("--session-log", action="store_true", help="with the session log on")


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Measure and print; 2 on a bad cycle count."""
    if args.cycles < 10:
        print("engs bench cycle: --cycles must be >= 10", file=sys.stderr)
        return 2
    cycles, warmup = (200, 50) if args.quick else (args.cycles, 300)
    res = measure(cfg, cycles=cycles, warmup=warmup, session_log=args.session_log)
    print(json.dumps(res) if args.json else format_result(res))
    return 0
