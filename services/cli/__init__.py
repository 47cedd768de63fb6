"""The ``engs`` command line (ARCHITECTURE §5, Contract).

``engs up | physics | orchestrator | oracle | send | status | bench | validate | config``;
every command takes ``--config FILE`` (``ENGS_CONFIG``), ``--instance NAME``
(``ENGS_INSTANCE``) and the log flags ``-v``/``-q``/``--log-level LEVEL``, before or after
the command name (``engs --instance a send reward 1`` = ``engs send reward 1 --instance
a``). ``engs --version`` prints the installed version. Runs in the user's process; each
service it starts owns its own package under ``services/``.

Log level: ``--log-level`` if given, else INFO for the services (WARNING for the other
commands), one step more verbose per ``-v`` and one quieter per ``-q``. ``engs up``
passes the level it resolved on to its children.

Signals: SIGINT ends a command with exit 130. ``engs status --watch`` and ``engs send
subscribe`` also end cleanly on SIGTERM (exit 143), which matters where SIGINT is
ignored, as it is for a job started in the background by a non-interactive shell or a
CI runner; the services stop cleanly on either.

Exit codes: 0 success, 1 a runtime failure (e.g. no running instance, a failed
validation prediction), 2 bad usage or configuration, 3 a service that lost its physics
(``exit_when_physics_lost_s``), 69 something this machine cannot provide (e.g.
``ENGS_BACKEND=cupy`` without a usable GPU; ``engs up`` does not restart such a child).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from engs import __version__
from engs.shared.config import Config, load_config
from engs.shared.errors import ConfigError, EngsError, NotAvailable

EX_USAGE = 2
EX_UNAVAILABLE = 69  # something this machine cannot provide (e.g. backend = "cupy", no GPU)
EX_INTERRUPTED = 128 + signal.SIGINT
EX_TERMINATED = 128 + signal.SIGTERM
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SERVICES = ("up", "physics", "orchestrator", "oracle")
UNTIL_INTERRUPTED = ("status", "send")  # `status --watch`, `send subscribe`


def _add_global_flags(p: argparse.ArgumentParser, *, top: bool) -> None:
    """The flags every command takes, on the top-level parser (``top``: with their
    defaults) and on each command's (defaults suppressed, so a flag given before the
    command is not reset by the command's parser)."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--config",
        metavar="FILE",
        default=default(None),
        help="TOML configuration (default: ENGS_CONFIG, else built-in defaults)",
    )
    p.add_argument(
        "--instance",
        metavar="NAME",
        default=default(None),
        help="instance name (default: ENGS_INSTANCE, else 'engs')",
    )
    p.add_argument("-v", "--verbose", action="count", default=default(0), help="more log output")
    p.add_argument("-q", "--quiet", action="count", default=default(0), help="less log output")
    p.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        default=default(None),
        help="log level: " + ", ".join(LOG_LEVELS) + " (overrides -v/-q)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    _add_global_flags(p, top=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engs",
        description="ENGS: real-time neurochemical gating service.",
    )
    parser.add_argument("--version", action="version", version=f"engs {__version__}")
    _add_global_flags(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p)
        return p

    p = add("up", "run physics, orchestrator and oracle under one supervisor")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start from the built-in initial state: move the last checkpoint aside "
        "(to checkpoint.json.bak) instead of restoring it",
    )
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
    from engs.services.bench import add_parsers  # noqa: PLC0415

    add_parsers(p, _common)
    p = add("validate", "run the neuro-psychometric validation assays")
    from engs.services.validate.main import add_arguments as validate_arguments  # noqa: PLC0415

    validate_arguments(p)
    p = add("config", "print the effective configuration and where each value comes from")
    p.add_argument("--json", action="store_true", help="print JSON: {key: {value, source}}")
    p = add("replay", "re-run a recorded session log headless and check it bit for bit")
    p.add_argument("log", help="a session log segment (session-<instance>-NNNNNN.log)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, tuple[tuple[str, ...], object]]:
    """Command-line flags that set config fields: label → (field path, value)."""
    overrides: dict[str, tuple[tuple[str, ...], object]] = {}
    if args.instance:
        overrides["--instance"] = (("instance",), args.instance)
    return overrides


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, overrides=_overrides(args))


def log_level(args: argparse.Namespace) -> int:
    """The level the flags ask for (module docstring)."""
    if args.log_level:
        return int(getattr(logging, args.log_level.upper()))
    base = logging.INFO if args.command in SERVICES else logging.WARNING
    return max(logging.DEBUG, min(logging.CRITICAL, base - 10 * args.verbose + 10 * args.quiet))


def child_log_args(args: argparse.Namespace) -> tuple[str, ...]:
    """What ``engs up`` passes on to its children: the level it resolved, if any log
    flag was given (none: each child applies its own default)."""
    if args.log_level is None and not args.verbose and not args.quiet:
        return ()
    return ("--log-level", logging.getLevelName(log_level(args)).lower())


class _Terminated(Exception):
    """SIGTERM arrived: unwind (finally blocks run) and exit 143."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _exit_status(exc: EngsError) -> int:
    """The exit status of a command that failed with ``exc``."""
    if isinstance(exc, ConfigError):
        return EX_USAGE
    if isinstance(exc, NotAvailable):
        return EX_UNAVAILABLE
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = log_level(args)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command in UNTIL_INTERRUPTED:
        # Ends a watch or a stream cleanly even where SIGINT is ignored (a background
        # job). The services install their own handlers; bench and validate keep the
        # default (their worker processes are stopped with SIGTERM).
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cfg = _config(args)
        return _HANDLERS[args.command](cfg, args)
    except _Terminated:
        return EX_TERMINATED
    except EngsError as exc:
        print(f"engs {args.command}: {exc}", file=sys.stderr)
        return _exit_status(exc)
    except KeyboardInterrupt:
        return EX_INTERRUPTED


def _status(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.cli.status import run  # noqa: PLC0415 - keep `engs --help` fast

    return run(cfg, json_out=args.json, watch=args.watch)


def _physics(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.physics.main import run  # noqa: PLC0415

    return run(cfg)


def _up(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.supervisor.main import run  # noqa: PLC0415

    return run(cfg, args.config, fresh=args.fresh, child_args=child_log_args(args))


def _show_config(cfg: Config, args: argparse.Namespace) -> int:
    from engs.services.cli.config import run  # noqa: PLC0415

    return run(cfg, args.config, _overrides(args), json_out=args.json)


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
    from engs.services.bench import load  # noqa: PLC0415

    code: int = load(args.target).run_args(cfg, args)
    return code


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
    "config": _show_config,
}


if __name__ == "__main__":
    sys.exit(main())
