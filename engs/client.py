"""The signal-socket clients — the documented import for agents::

    from engs.client import SignalClient, AsyncSignalClient

The implementation lives in :mod:`engs.shared.client` (the repository's ``shared/``
folder); this module is its stable public face: the two clients, their reservations and
the errors they raise.
"""

from __future__ import annotations

from engs.shared.client import AsyncReservation, AsyncSignalClient, Reservation, SignalClient
from engs.shared.errors import EngsError, SignalConnectionError, SignalError, SignalRejected

__all__ = [
    "AsyncReservation",
    "AsyncSignalClient",
    "EngsError",
    "Reservation",
    "SignalClient",
    "SignalConnectionError",
    "SignalError",
    "SignalRejected",
]
