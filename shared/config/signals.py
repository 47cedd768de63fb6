"""``[signals]``: the signal socket (served by the orchestrator), docs/signals.md."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from engs.shared.config.base import (
    Section,
    check_addr,
)
from engs.shared.messages import MAX_FRAME


class SignalsConfig(Section, frozen=True):
    """The signal socket (served by the orchestrator)."""

    addr: str = "127.0.0.1:7411"
    """TCP address of the signal socket, host:port ([v6]:port)."""
    unix_path: str | None = None
    """Optional Unix socket path (created mode 0600)."""
    max_connections: Annotated[int, Meta(ge=1, le=100_000)] = 64
    """Open connections at once. A new connection at the limit is served: the one idle the
    longest (subscribers last) is closed to make room, so silent clients cannot hoard the
    slots (docs/signals.md, "Limits and backpressure")."""
    first_byte_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 2.0
    """A new connection that sends nothing for this long is closed."""
    idle_timeout_s: Annotated[float, Meta(gt=0, le=86_400)] = 60.0
    """A connection that sends nothing for this long is closed (not subscribers)."""
    write_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    """A connection whose output stays blocked this long is aborted."""
    max_frame: Annotated[int, Meta(ge=64, le=1 << 24)] = MAX_FRAME
    """Largest frame payload / JSON line in bytes; larger: ``too_large`` and close."""
    rate: Annotated[float, Meta(gt=0, le=1e9)] = 10_000.0
    """Token-bucket refill, requests per second per connection."""
    burst: Annotated[int, Meta(ge=1, le=1 << 30)] = 10_000
    """Token-bucket size: requests a connection may send at once."""
    output_high: Annotated[int, Meta(ge=1024, le=1 << 30)] = 256 * 1024
    """Buffered output in bytes above which the connection's input is paused."""
    max_output: Annotated[int, Meta(ge=1024, le=1 << 31)] = 1 << 20
    """Buffered output in bytes above which the connection is aborted."""
    subscriber_queue: Annotated[int, Meta(ge=1, le=1 << 16)] = 64
    """Stream messages held per subscriber while it is not reading; the oldest snapshots
    are dropped (and counted) beyond this."""
    batch: Annotated[int, Meta(ge=1, le=1 << 20)] = 512
    """Requests the server handles per event-loop iteration, over all connections."""

    def __post_init__(self) -> None:
        check_addr(self.addr)
