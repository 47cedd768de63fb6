"""The ``engs`` command line (ARCHITECTURE §5, Contract).

``engs up | physics | orchestrator | oracle | send | status | bench | validate``; every
command takes ``--config FILE`` (``ENGS_CONFIG``) and ``--instance NAME``
(``ENGS_INSTANCE``). Runs in the user's process; each service it starts owns its own
package under ``services/``.

Exit codes: 0 success, 1 a runtime failure (e.g. no running instance, a failed
validation prediction), 2 bad usage or configuration, 3 a service that lost its physics
(``exit_when_physics_lost_s``), 69 something this machine cannot provide (e.g.
``ENGS_BACKEND=cupy`` without a usable GPU; ``engs up`` does not restart such a child).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import msgspec

from engs.shared.config import Config, load_config
from engs.shared.errors import ConfigError, EngsError, NotAvailable

EX_USAGE = 2
EX_UNAVAILABLE = 69  # something this machine cannot provide (e.g. backend = "cupy", no GPU)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration (default: ENGS_CONFIG, else built-in defaults)",
    )
    p.add_argument(
        "--instance", metavar="NAME", help="instance name (default: ENGS_INSTANCE, else 'engs')"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engs",
        description="ENGS: real-time neurochemical gating service.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p)
        return p

    add("up", "run physics, orchestrator and oracle under one supervisor")
    add("physics", "run the 1 kHz physics engine")
    add("orchestrator", "run the 100 Hz ENGS orchestrator and the signal socket")
    add("oracle", "run the watchdog and the Prometheus exporter")
    p = add("send", "send one signal to a running instance")
    from engs.services.cli.send import add_arguments as send_arguments  # noqa: PLC0415

    send_arguments(p)
    p = add("status", "show a running instance's state, heartbeats and interrupts")
    p.add_argument("--json", action="store_true", help="print JSON (one object per refresh)")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=1.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 1) until interrupted",
    )
    p = add("bench", "measure performance (see docs/benchmarks.md)")
    targets = p.add_subparsers(dest="target", required=True, metavar="TARGET")
    t = targets.add_parser("seqlock", help="shared-memory state path vs Lock/Queue/MessageQueue")
    _common(t)
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")
    t = targets.add_parser("signals", help="signal ingest throughput (msgpack and JSON lines)")
    _common(t)
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")
    t = targets.add_parser("oracle", help="the watchdog's poll cost and CPU use")
    _common(t)
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")
    t = targets.add_parser("area", help="area neurochemistry cycle cost by projection count")
    _common(t)
    from engs.services.orchestrator.areas.bench import add_arguments as area_arguments  # noqa: PLC0415

    area_arguments(t)
    t = targets.add_parser("physics", help="field step throughput vs a memory-bandwidth bound")
    _common(t)
    from engs.services.physics.bench import add_arguments  # noqa: PLC0415

    add_arguments(t)
    t = targets.add_parser("bandit", help="ENGS-gated agent vs ε-greedy, nonstationary bandit")
    _common(t)
    t.add_argument("--runs", type=int, default=200, help="paired runs (default 200)")
    t.add_argument("--steps", type=int, default=10_000, help="steps per run (default 10000)")
    t.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    t.add_argument("--plot", default=None, metavar="PNG", help="write a PNG plot here")
    t.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p = add("validate", "run the neuro-psychometric validation assays")
    from engs.services.validate.main import add_arguments as validate_arguments  # noqa: PLC0415

    validate_arguments(p)
    p = add("replay", "re-run a recorded session log headless and check it bit for bit")
    p.add_argument("log", help="a session log segment (session-<instance>-NNNNNN.log)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _config(args: argparse.Namespace) -> Config:
    overrides = {}
    if args.instance:
        overrides["--instance"] = (("instance",), args.instance)
    return load_config(args.config, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    service = args.command in ("up", "physics", "orchestrator", "oracle")
    logging.basicConfig(
        level=(logging.INFO if service else logging.WARNING) - 10 * min(args.verbose, 2),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = _config(args)
        return _HANDLERS[args.command](cfg, args)
    except ConfigError as exc:
        print(f"engs {args.command}: {exc}", file=sys.stderr)
        return EX_USAGE
    except NotAvailable as exc:
        print(f"engs {args.command}: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except EngsError as exc:
        print(f"engs {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _status(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.cli.status import run  # noqa: PLC0415 - keep `engs --help` fast

    return run(cfg, json_out=args.json, watch=args.watch)


def _physics(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.physics.main import run  # noqa: PLC0415

    return run(cfg)


def _up(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.supervisor import run  # noqa: PLC0415

    return run(cfg, args.config)


def _orchestrator(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.orchestrator.main import run  # noqa: PLC0415

    return run(cfg)


def _oracle(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.oracle.main import run  # noqa: PLC0415

    return run(cfg)


def _send(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.cli.send import run  # noqa: PLC0415

    return run(cfg, args)


def _validate(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.validate.main import run_args  # noqa: PLC0415

    return run_args(cfg, args)


def _replay(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.cli.replay import run  # noqa: PLC0415

    return run(args.log, json_out=args.json)


def _bench(cfg: Config, args: argparse.Namespace) -> int:
    if args.target == "area":
        from engs.services.orchestrator.areas.bench import run_args as run_area  # noqa: PLC0415

        return run_area(args, cfg)
    if args.target == "oracle":
        from engs.services.oracle.bench import format_result  # noqa: PLC0415
        from engs.services.oracle.bench import run as run_oracle  # noqa: PLC0415

        res = run_oracle(cfg, duration_s=2.0 if args.quick else 10.0)
        print(msgspec.json.encode(res).decode() if args.json else format_result(res))
        return 0
    if args.target == "signals":
        from engs.services.orchestrator.bench_signals import run as run_signals  # noqa: PLC0415

        return run_signals(cfg, json_out=args.json, quick=args.quick)
    if args.target == "bandit":
        from engs.services.cli.bench_bandit import run_args as run_bandit  # noqa: PLC0415

        return run_bandit(args)
    if args.target == "physics":
        from engs.services.physics.bench import run_args  # noqa: PLC0415

        return run_args(args)
    from engs.services.cli.bench_seqlock import run  # noqa: PLC0415

    return run(cfg, json_out=args.json, quick=args.quick)


_HANDLERS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "up": _up,
    "physics": _physics,
    "orchestrator": _orchestrator,
    "oracle": _oracle,
    "send": _send,
    "replay": _replay,
    "validate": _validate,
    "status": _status,
    "bench": _bench,
}


if __name__ == "__main__":
    sys.exit(main())
