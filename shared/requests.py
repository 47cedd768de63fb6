"""Oracle → orchestrator requests, applied exactly once.

The oracle detects failure modes (seed 003 §9: the anhedonia trap, the mania loop) but
never writes the control state. It asks the orchestrator instead, through monotonic
counters in the ``requests`` block: the oracle increments ``requested[kind]``; the
orchestrator, once per control cycle, takes ``requested − applied`` for each kind, acts
that many times, and stores ``applied = requested``. Each counter has one writer; a
crash of either side loses nothing (counters persist in the region) and applies nothing
twice (``applied`` is stored after the cycle took the requests).
"""

from __future__ import annotations

from engs.shared.layout import REQUEST_KINDS
from engs.shared.region import Region


def _index(kind: str) -> int:
    try:
        return REQUEST_KINDS.index(kind)
    except ValueError:
        known = ", ".join(REQUEST_KINDS)
        raise KeyError(f"unknown request kind {kind!r}; known: {known}") from None


class RequestSender:
    """The oracle's side."""

    def __init__(self, region: Region) -> None:
        self._requested = [
            region.scalar(f"requests.requested.count[{i}]") for i in range(len(REQUEST_KINDS))
        ]

    def request(self, kind: str) -> int:
        """Ask for one more ``kind``; returns its new request count."""
        view = self._requested[_index(kind)]
        view[0] += 1
        return int(view[0])


class RequestReceiver:
    """The orchestrator's side."""

    def __init__(self, region: Region) -> None:
        n = len(REQUEST_KINDS)
        self._requested = [region.scalar(f"requests.requested.count[{i}]") for i in range(n)]
        self._applied = [region.scalar(f"requests.applied.count[{i}]") for i in range(n)]

    def pending(self) -> dict[str, int]:
        """Requests not yet taken, by kind (only kinds with some pending)."""
        out = {}
        for kind, req, app in zip(REQUEST_KINDS, self._requested, self._applied, strict=True):
            n = int(req[0]) - int(app[0])
            if n > 0:
                out[kind] = n
        return out

    def take(self) -> dict[str, int]:
        """Take every pending request: returns counts by kind and marks them applied.
        Call once per cycle, *after* the cycle has acted on the previous result."""
        got = {}
        for kind, req, app in zip(REQUEST_KINDS, self._requested, self._applied, strict=True):
            r = int(req[0])
            n = r - int(app[0])
            if n > 0:
                got[kind] = n
                app[0] = r
        return got
