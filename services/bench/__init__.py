"""``engs bench <target>``: every benchmark, one module per target, one calling convention.

Each target is a module ``engs.services.bench.<target>`` (:data:`TARGETS`, with its
one-line help) that defines

* ``add_arguments(ap)``: its flags (``--json`` on every target);
* ``run_args(cfg, args) -> int``: the run, with the effective configuration (``--config``,
  ``ENGS_*``) and the parsed flags; returns the exit code (0 ok, 1 a failed run, 2 bad
  arguments).

A target's module is imported only when that target is asked for (``engs send`` should
not pay for uvloop, prometheus_client and the physics). ``python -m engs.services.bench
<target> [flags]`` runs one alone (:func:`main`: the built-in defaults and the
environment, no ``--config``). Figures are recorded in
docs/benchmarks.md; timings belong here, never in pass/fail tests.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from types import ModuleType

from engs.shared.config import load_config

TARGETS = {
    "seqlock": "shared-memory state path vs Lock/Queue/MessageQueue",
    "physics": "field step throughput vs a memory-bandwidth bound",
    "signals": "signal ingest throughput (msgpack and JSON lines), then live latency",
    "oracle": "the watchdog's poll cost and CPU use",
    "area": "area neurochemistry cycle cost by projection count",
    "bandit": "ENGS-gated agent vs ε-greedy, nonstationary bandit",
    "cycle": "the orchestrator's control cycle, headless (p50/p99 per cycle)",
}
"""Target name → one-line help; ``signals`` also runs :mod:`.signals_live`."""


def load(target: str) -> ModuleType:
    """The module of ``target`` (one of :data:`TARGETS`)."""
    if target not in TARGETS:
        raise ValueError(f"unknown bench target {target!r}; one of {', '.join(TARGETS)}")
    return importlib.import_module(f"engs.services.bench.{target}")


class _TargetParser(argparse.ArgumentParser):
    """A target's parser; its module adds the flags the first time it parses."""

    target = ""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.target:
            load(self.target).add_arguments(self)
            self.target = ""
        return super().parse_known_args(args, namespace)


def add_parsers(
    bench: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    """The targets under ``engs bench`` (``args.target``); ``common`` adds the global flags."""
    targets = bench.add_subparsers(
        dest="target", required=True, metavar="TARGET", parser_class=_TargetParser
    )
    for target, help_ in TARGETS.items():
        p = targets.add_parser(target, help=help_, description=help_)
        common(p)
        p.target = target


def main(target: str, argv: Sequence[str] | None = None) -> int:
    """``python -m engs.services.bench <target> [flags]``."""
    ap = argparse.ArgumentParser(prog=f"engs bench {target}", description=TARGETS[target])
    load(target).add_arguments(ap)
    args = ap.parse_args(list(argv) if argv is not None else None)
    code: int = load(target).run_args(load_config(), args)
    return code
