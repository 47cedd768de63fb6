"""``engs send``: one request to a running instance's signal socket, its reply printed.

Runs in the user's process with :class:`engs.shared.client.SignalClient` (msgpack framing).
The request is built from the command line and validated by the same msgspec types the
server uses, so a bad value is refused before anything is sent, with the server's own
message (``Expected `float` <= 1.0 - at `$.value```).

Examples::

    engs send reward 0.7
    engs send stress 0.3 --id 5
    engs send dmn --coherence 0.4 --utility 0.2 --uncertainty 0.3 \\
        --safety-penalty 0 --calibration-gap 0.1
    engs send reserve --cost 5 --task ingest      # prints the lock; commit it later
    engs send commit 7
    engs send interrupt manual                    # needs ENGS_TOKEN
    engs send subscribe 10 --count 5              # five snapshots, one line each
    engs send state --json

Where it connects: ``--addr`` or ``--unix`` if given; else where the instance
(``--instance``, ``ENGS_INSTANCE``, default ``engs``) says it listens — the orchestrator
publishes its bound address in the instance's shared-memory region — else, with no
region on this machine (e.g. the service runs in another IPC namespace),
``$.signals.addr`` of the configuration (``ENGS_SIGNAL_ADDR``).

Exit codes: 0 acknowledged, 1 error reply or no connection, 2 bad usage.
The token (for ``interrupt``/``clear``, or a non-loopback address) is read from
``ENGS_TOKEN``, never from the command line (where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, cast

import msgspec

from engs.shared.config import Config, is_loopback, parse_addr
from engs.shared.endpoints import connect_addr, read_endpoints
from engs.shared.errors import EngsError, SignalConnectionError, SignalError, SignalRejected
from engs.shared.messages import (
    JSON_ENCODER,
    TAG,
    Ack,
    Clear,
    CuriosityGoal,
    Error,
    Interrupt,
    RejectReason,
    Request,
    Snapshot,
    StateSnapshot,
    Subscribe,
)
from engs.shared.region import Region
from engs.shared.stats_schema import SIGNAL_TYPES

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2

#: The field the positional ``value`` fills, per type.
POSITIONAL: dict[str, str] = {
    "reward": "value",
    "stress": "value",
    "novelty": "entropy",
    "stimulus": "amplitude",
    "reserve": "cost",
    "commit": "lock",
    "abort": "lock",
    "subscribe": "hz",
    "interrupt": "cause",
    "clear": "cause",
}

#: (option, field) pairs for every field of every request type.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("--value", "value", "reward in [-1, 1] or stress in [0, 1]"),
    ("--entropy", "entropy", "novelty: normalised entropy in [0, 1]"),
    ("--area", "area", "stimulus: target area name"),
    ("--amplitude", "amplitude", "stimulus: amplitude in [0, 10] field units"),
    ("--coherence", "coherence", "dmn: coherence in [0, 1]"),
    ("--utility", "utility", "dmn: task utility in [-1, 1]"),
    ("--uncertainty", "uncertainty", "dmn: uncertainty in [0, 1]"),
    ("--safety-penalty", "safety_penalty", "dmn: safety penalty in [0, 1]"),
    ("--calibration-gap", "calibration_gap", "dmn: calibration gap in [0, 1]"),
    ("--node", "node", "dmn: CFG node label"),
    ("--cost", "cost", "reserve: cost in NMU, (0, 1e6]"),
    ("--task", "task", "reserve: task name"),
    ("--lock", "lock", "commit/abort: lock id"),
    ("--hz", "hz", "subscribe: rate in (0, 100]"),
    ("--cause", "cause", "interrupt/clear: scram, atp_exhausted, panic, ..."),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``engs send``'s arguments to its subparser (besides --config/--instance)."""
    p.add_argument(
        "type", choices=SIGNAL_TYPES, metavar="TYPE", help="one of: " + ", ".join(SIGNAL_TYPES)
    )
    p.add_argument(
        "value",
        nargs="?",
        help="the main field: " + ", ".join(f"{t} {f}" for t, f in POSITIONAL.items()),
    )
    fields = p.add_argument_group("fields (see docs/signals.md for ranges)")
    for opt, dest, help_ in _FIELDS:
        fields.add_argument(opt, dest=f"field_{dest}", metavar="X", help=help_)
    p.add_argument("--id", help="request id, echoed in the reply (integer or string)")
    p.add_argument("--json", action="store_true", help="print the raw reply as JSON")
    p.add_argument(
        "--addr",
        metavar="HOST:PORT",
        help="signal socket (default: where the instance published it, else $.signals.addr)",
    )
    p.add_argument("--unix", metavar="PATH", help="use this Unix socket instead of TCP")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="reply timeout")
    p.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="subscribe: stop after N stream messages (default: until interrupted)",
    )


def build_request(args: argparse.Namespace) -> Request:
    """The request the arguments describe; ValueError naming the field if invalid."""
    data: dict[str, Any] = {"type": args.type}
    if args.value is not None:
        field = POSITIONAL.get(args.type)
        if field is None:
            raise ValueError(f"`{args.type}` takes no positional value, got {args.value!r}")
        data[field] = args.value
    for _, dest, _ in _FIELDS:
        v = getattr(args, f"field_{dest}", None)
        if v is not None:
            if dest in data and data[dest] != v:
                raise ValueError(f"`{dest}` given twice ({data[dest]!r} and {v!r})")
            data[dest] = v
    if args.id is not None:
        data["id"] = int(args.id) if args.id.isdigit() else args.id
    try:
        # Lax mode parses "0.7" as a float; every constraint still applies.
        return msgspec.convert(data, Request, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def run(cfg: Config, args: argparse.Namespace) -> int:
    """``engs send``: 0 on an ack, 1 on an error reply or no connection, 2 on bad usage."""
    try:
        msg = build_request(args)
    except ValueError as exc:
        print(f"engs send: {exc}", file=sys.stderr)
        return EX_USAGE
    unix = args.unix
    addr, bound, origin = resolve_addr(cfg, args.addr)
    if unix is not None:
        origin = "given by --unix"
    try:
        parse_addr(addr)
        # The server asks for a token when it is *bound* beyond loopback, even when we
        # reach a wildcard bind through 127.0.0.1.
        host, _ = parse_addr(bound)
    except ValueError as exc:
        print(f"engs send: --addr: {exc}", file=sys.stderr)
        return EX_USAGE
    from engs.shared.client import SignalClient  # noqa: PLC0415 - keep `engs --help` fast

    privileged = isinstance(msg, Interrupt | Clear)
    needs_token = privileged or (unix is None and not is_loopback(host))
    token = os.environ.get("ENGS_TOKEN") or None
    if needs_token and token is None:
        why = f"`{TAG[type(msg)]}` is privileged" if privileged else f"{bound} is not loopback"
        print(f"engs send: {why}: set ENGS_TOKEN to the server's token", file=sys.stderr)
        return EX_USAGE
    client = SignalClient(
        addr if unix is None else None,
        unix_path=unix,
        token=token if needs_token else None,
        timeout=args.timeout,
        connect_attempts=3,
    )
    try:
        with client:
            if isinstance(msg, Subscribe):
                return _stream(client.subscribe(msg.hz, id=msg.id), args)
            reply = client.exchange(msg)
    except SignalRejected as exc:  # authentication refused
        reason = cast(RejectReason, exc.reason)
        return _print_error(Error(id=exc.id, reason=reason, error=exc.error), args)
    except SignalConnectionError as exc:
        print(f"engs send: {exc} (the address {origin})", file=sys.stderr)
        return EX_FAILED
    except SignalError as exc:
        print(f"engs send: {exc}", file=sys.stderr)
        return EX_FAILED
    if isinstance(reply, Error):
        return _print_error(reply, args)
    if args.json:
        print(JSON_ENCODER.encode(reply).decode())
    elif isinstance(reply, Ack):
        print(_describe_ack(reply))
    else:
        print(f"engs send: unexpected reply {reply!r}", file=sys.stderr)
        return EX_FAILED
    return EX_OK


def resolve_addr(cfg: Config, addr: str | None) -> tuple[str, str, str]:
    """(address to dial, address the server is bound on, where it came from) — see the
    module docstring."""
    if addr:
        return addr, addr, "given by --addr"
    try:
        region = Region.attach(cfg.instance, lock_memory=False, ready_timeout_s=0.5)
    except EngsError:
        return (
            cfg.signals.addr,
            cfg.signals.addr,
            (
                f"from $.signals.addr: no running instance {cfg.instance!r} on this machine "
                "published one"
            ),
        )
    try:
        published = read_endpoints(region).signal_tcp
    finally:
        region.close()
    if published is None:
        return (
            cfg.signals.addr,
            cfg.signals.addr,
            (
                f"from $.signals.addr: instance {cfg.instance!r} has not published its socket "
                "(orchestrator not listening yet)"
            ),
        )
    return connect_addr(published), published, f"instance {cfg.instance!r} published"


def _print_error(reply: Error, args: argparse.Namespace) -> int:
    if args.json:
        print(JSON_ENCODER.encode(reply).decode())
    else:
        ident = f" (id {reply.id})" if reply.id is not None else ""
        print(f"engs send: rejected{ident}: {reply.reason}: {reply.error}", file=sys.stderr)
    return EX_FAILED


def _describe_ack(ack: Ack) -> str:
    parts = [f"ack seq={ack.seq}"]
    if ack.id is not None:
        parts.append(f"id={ack.id}")
    if ack.lock is not None:
        parts.append(f"lock={ack.lock}")
    line = " ".join(parts)
    if ack.state is not None:
        line += "\n" + _describe_state(ack.state)
    return line


def _describe_state(s: StateSnapshot) -> str:
    rows = [
        ("seq", str(s.seq)),
        ("signal_id", str(s.signal_id)),
        ("dopamine", f"{s.dopamine:.4f}"),
        ("serotonin", f"{s.serotonin:.4f}"),
        ("norepinephrine", f"{s.norepinephrine:.4f}"),
        ("atp_ratio", f"{s.atp_ratio:.4f}"),
        ("atp_reserve", f"{s.atp_reserve:.2f}"),
        ("cortisol", f"{s.cortisol:.4f}"),
        ("boredom", f"{s.boredom:.4f}"),
        ("mode", ",".join(s.mode) or "-"),
        ("interrupts", ",".join(s.interrupts) or "-"),
        ("open_locks", str(s.open_locks)),
    ]
    return "\n".join(f"  {k:<15} {v}" for k, v in rows)


def _stream(items: Any, args: argparse.Namespace) -> int:
    n = 0
    try:
        for item in items:
            if args.json:
                print(JSON_ENCODER.encode(item).decode(), flush=True)
            elif isinstance(item, Snapshot):
                s = item.state
                print(
                    f"snapshot n={item.n} dropped={item.dropped} seq={s.seq} "
                    f"D={s.dopamine:.4f} S={s.serotonin:.4f} N={s.norepinephrine:.4f} "
                    f"ATP={s.atp_ratio:.4f} boredom={s.boredom:.4f}",
                    flush=True,
                )
            elif isinstance(item, CuriosityGoal):
                print(f"curiosity_goal area={item.area} boredom={item.boredom:.4f}", flush=True)
            n += 1
            if args.count is not None and n >= args.count:
                break
    finally:
        items.close()
    return EX_OK
