"""What every section of the configuration is built from: the Struct base, shared
value types, address helpers and the checks several sections use."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from msgspec import Meta, Struct

PosFloat = Annotated[float, Meta(gt=0)]
Instance = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")]


def parse_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port, validated."""
    host, sep, port_s = addr.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port must be an integer, got {port_s!r} in {addr!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port} in {addr!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; wildcard binds are not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Section(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The base of every section: unknown fields refused, frozen, keyword-only."""


Level = Annotated[float, Meta(ge=0.0, le=1.0)]  # floats: equal to messages.Unit, cached as one
NonNeg = Annotated[float, Meta(ge=0)]


def check_order(lo_name: str, lo: float, hi_name: str, hi: float, *, strict: bool = True) -> None:
    """A section's two thresholds must be ordered (hysteresis bands, ranges)."""
    if not (lo < hi if strict else lo <= hi):
        op = "<" if strict else "<="
        raise ValueError(f"`{lo_name}` {op} `{hi_name}` expected, got {lo} and {hi}")


def check_addr(addr: str) -> None:
    """A section's ``addr`` must be host:port (ValueError naming the field)."""
    try:
        parse_addr(addr)
    except ValueError as exc:
        raise ValueError(f"`addr`: {exc}") from None
