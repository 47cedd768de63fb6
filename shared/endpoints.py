"""Where a running instance listens, published in its region.

The orchestrator publishes its signal socket as bound (TCP ``host:port`` with a port 0
resolved, and the Unix socket path if any) once it listens; the oracle publishes its
metrics address once it serves. Each record is a seqlock with one writer (the
``endpoints`` block of :mod:`engs.shared.layout`), written once per process start.

Readers — ``engs send --instance X``, ``engs status`` — find an instance by its name
alone: the region ``/engs-X`` says where X listens, whatever config it was started with.
Without a region (another machine, another IPC namespace) they fall back to the
configured addresses.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

from engs.shared.clock import monotonic_ns
from engs.shared.config import parse_addr
from engs.shared.layout import ENDPOINT_BYTES
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader, SeqlockWriter


@dataclass(frozen=True)
class Endpoints:
    """What an instance published; None where nothing was."""

    signal_tcp: str | None
    signal_unix: str | None
    signal_pid: int
    metrics: str | None
    metrics_pid: int

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics is None else f"http://{connect_addr(self.metrics)}"


def _encode(value: str, what: str) -> bytes:
    raw = value.encode()
    if len(raw) >= ENDPOINT_BYTES:
        raise ValueError(f"{what} {value!r} is longer than {ENDPOINT_BYTES - 1} bytes")
    return raw


def publish_signals(region: Region, tcp: str, unix: str | None = None) -> None:
    """The orchestrator: where its signal socket listens (after it bound)."""
    w = SeqlockWriter(region, "endpoints.signals", claim=False)
    rec = w.new_record()
    rec["pid"] = os.getpid()
    rec["t_ns"] = monotonic_ns()
    rec["tcp"] = _encode(tcp, "signal address")
    rec["unix"] = _encode(unix or "", "signal Unix socket path")
    w.publish(rec)


def publish_metrics(region: Region, http: str) -> None:
    """The oracle: where it serves /metrics and /healthz (after it bound)."""
    w = SeqlockWriter(region, "endpoints.metrics", claim=False)
    rec = w.new_record()
    rec["pid"] = os.getpid()
    rec["t_ns"] = monotonic_ns()
    rec["http"] = _encode(http, "metrics address")
    w.publish(rec)


def read_endpoints(region: Region) -> Endpoints:
    sig = SeqlockReader(region, "endpoints.signals")
    s = sig.new_record()
    sig.read_latest(s)
    met = SeqlockReader(region, "endpoints.metrics")
    m = met.new_record()
    met.read_latest(m)

    def text(v: Any) -> str | None:
        return bytes(v).rstrip(b"\0").decode(errors="replace") or None

    published_s, published_m = int(s["t_ns"]) != 0, int(m["t_ns"]) != 0
    return Endpoints(
        signal_tcp=text(s["tcp"]) if published_s else None,
        signal_unix=text(s["unix"]) if published_s else None,
        signal_pid=int(s["pid"]),
        metrics=text(m["http"]) if published_m else None,
        metrics_pid=int(m["pid"]),
    )


def connect_addr(addr: str) -> str:
    """The address a local client dials for a server bound on ``addr``: a wildcard
    bind (``0.0.0.0``, ``[::]``) is reached on loopback."""
    host, port = parse_addr(addr)
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return addr
    if not unspecified:
        return addr
    return f"[::1]:{port}" if ":" in host else f"127.0.0.1:{port}"
