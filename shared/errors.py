"""The one exception hierarchy of ENGS.

Messages say what was expected and what was found, and name the thing (field path,
region name, process) that was wrong, so that an operator can act on them without
reading the source.
"""

from __future__ import annotations


class EngsError(Exception):
    """Base class of every error ENGS raises on purpose."""


class ConfigError(EngsError):
    """A configuration file, environment variable or flag holds a bad value.

    The message names the field path (``$.physics.tick_hz``) and, where the value
    came from the environment or the command line, the variable or flag.
    """


class ShmError(EngsError):
    """Base class of shared-memory region errors."""


class RegionMissing(ShmError):
    """Attach was asked for a region that does not exist."""


class RegionExists(ShmError):
    """Create was asked for a region that already exists."""


class LayoutMismatch(ShmError):
    """The region's header does not match the layout this process was built with."""


class RegionNotReady(ShmError):
    """The region exists but its creator never finished initialising it."""


class WriterBusy(ShmError):
    """A single-writer block already has a live writer."""


class NotAvailable(EngsError):
    """A command or backend that this build or machine cannot provide."""


class SignalError(EngsError):
    """Base class of signal-socket client errors (:mod:`engs.shared.client`)."""


class SignalRejected(SignalError):
    """The signal server answered ``{"type":"error",...}``.

    ``reason`` is one of :data:`engs.shared.messages.RejectReason` (``invalid``,
    ``metabolic_denied``, ...); ``error`` is the server's message, naming the field path
    where one was wrong; ``id`` is the request's echoed id (None if it had none or the
    server could not read it).
    """

    def __init__(self, reason: str, error: str, id: int | str | None = None) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error
        self.id = id


class SignalConnectionError(SignalError):
    """The signal socket could not be reached, or the connection was lost.

    A request whose connection was lost after it was sent may or may not have been
    applied: the message says so, and the client never resends it on its own.
    """
