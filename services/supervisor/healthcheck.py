"""Container healthcheck of one ENGS process, judged from shared memory alone.

Under docker compose there is no ``engs up``: Docker's restart policies and healthchecks
take the supervisor's place, one container per service. The oracle answers ``/healthz``
over HTTP; the physics and the orchestrator serve no HTTP (the physics must not), so
their containers run this instead::

    python -m engs.services.supervisor.healthcheck physics|orchestrator [--config F] [--instance N]

It attaches to the instance's region read-only in effect (no pinning, no writes), applies
the one health rule :func:`engs.shared.liveness.judge_process` — the rule ``engs
up``'s supervisor restarts on, with the liveness limits of the ``[oracle]`` section — and
exits 0 iff the status is ``ok`` or ``degraded``: the process beats *and* its published
record is fresh (physics telemetry, orchestrator state). A physics that misses its
deadlines is ``degraded``: the check passes (a restart would not make it faster) and the
line says why. Anything else — no region, never started, still starting, dead, frozen,
failed, stopped — exits 1. One line on stdout says why (Docker keeps it in ``docker
inspect``'s health log). A bad configuration exits 2, like every ``engs`` command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engs.shared.config import load_config
from engs.shared.errors import ConfigError, EngsError
from engs.shared.layout import Process
from engs.shared.liveness import Status, judge_region
from engs.shared.region import Region

CHECKED = (Process.PHYSICS, Process.ORCHESTRATOR)


def check(process: Process, *, config: str | None = None, instance: str | None = None) -> str:
    """The verdict line for ``process``; raises :class:`Unhealthy` unless it is alive."""
    overrides = {"--instance": (("instance",), instance)} if instance else {}
    cfg = load_config(config, overrides=overrides)
    try:
        region = Region.attach(cfg.instance, lock_memory=False, ready_timeout_s=1.0)
    except EngsError as exc:
        raise Unhealthy(str(exc)) from None
    try:
        health = judge_region(region, cfg.oracle)[process]
    finally:
        region.close()
    if not health.serving:
        raise Unhealthy(f"{health.liveness.verdict.value}: {health.detail}")
    tag = "alive" if health.status is Status.OK else f"alive, {health.status.value}"
    return f"{tag}: {health.detail}"


class Unhealthy(Exception):
    """The process is not doing its job; the message says why."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engs.services.supervisor.healthcheck",
        description="Exit 0 iff the ENGS process is alive (heartbeat and output fresh), "
        "even if degraded (the physics missing deadlines: the line says so).",
    )
    parser.add_argument("process", choices=[p.name.lower() for p in CHECKED])
    parser.add_argument("--config", help="TOML file (default: ENGS_CONFIG, else built-ins)")
    parser.add_argument("--instance", help="instance name (default: ENGS_INSTANCE or engs)")
    args = parser.parse_args(argv)
    try:
        print(check(Process[args.process.upper()], config=args.config, instance=args.instance))
    except ConfigError as exc:
        print(f"healthcheck {args.process}: {exc}", file=sys.stderr)
        return 2
    except Unhealthy as exc:
        print(f"unhealthy: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
