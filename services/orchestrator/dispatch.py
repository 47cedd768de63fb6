"""What the signal socket does with one request (protocol in docs/signals.md).

:class:`Dispatcher` is shared by every connection of one server: it decodes a frame,
applies the connection's rate limit and authentication, and acts — a signal goes into
the :class:`~engs.services.orchestrator.inbox.SignalInbox` (acknowledged only after the
put succeeded), a request/response message is answered by the orchestrator's
:class:`~engs.services.orchestrator.inbox.SignalHandler` at once. Replies are appended
to the caller's output buffer; nothing here touches a socket or awaits.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

import msgspec

from engs.services.orchestrator.inbox import TYPE_INDEX, Accepted, SignalHandler, SignalInbox
from engs.services.orchestrator.inputs import AreaNames
from engs.shared.config import SignalsConfig
from engs.shared.layout import Cause
from engs.shared.messages import (
    REQUEST_JSON,
    REQUEST_MSGPACK,
    TAG,
    Abort,
    Ack,
    Auth,
    Clear,
    Commit,
    Dmn,
    Error,
    Framing,
    GoalComplete,
    Interrupt,
    Novelty,
    RejectReason,
    Reserve,
    Reward,
    SecurityAlert,
    State,
    Stimulus,
    Stress,
    Subscribe,
    append_frame,
    probe_id,
)

#: Environment variable holding the server's token.
TOKEN_ENV = "ENGS_TOKEN"

_Signal = Reward | Stress | Novelty | Stimulus | Dmn | GoalComplete | SecurityAlert
_Call = Reserve | Commit | Abort | State | Subscribe | Interrupt | Clear


@dataclass
class ServerStats:
    """Connection-level counts of one server (in process; the signal counters proper
    are in :class:`~engs.services.orchestrator.inbox.SignalCounters`)."""

    connections: int = 0
    evicted: int = 0
    """Closed to make room for a new connection (the longest idle, subscribers last)."""
    silent_closed: int = 0
    """Closed for sending nothing within ``first_byte_timeout_s`` of connecting."""
    idle_closed: int = 0
    slow_closed: int = 0
    """Aborted because their output stayed blocked or grew past ``max_output``."""
    oversize_closed: int = 0
    auth_closed: int = 0
    subscriber_drops: int = 0
    events_published: int = 0


class Peer(Protocol):
    """What the dispatcher needs of a connection."""

    framing: Framing
    needs_auth: bool
    authed: bool
    tokens: float
    """Rate-limit tokens left (the connection refills them)."""

    def subscribe(self, id: int | str | None, hz: float) -> None: ...


class Dispatcher:
    """Acts on requests for every connection of one server (module docstring).
    ``handler`` None: request/response messages are answered ``invalid`` (the ingest
    benchmark); ``areas``, when given, are the area names a ``stimulus`` may name."""

    def __init__(
        self,
        inbox: SignalInbox,
        handler: SignalHandler | None,
        *,
        limits: SignalsConfig,
        stats: ServerStats,
        token: str | None,
        areas: AreaNames | None,
    ) -> None:
        self.inbox = inbox
        self.counters = inbox.counters
        self.handler = handler
        self.limits = limits
        self.stats = stats
        self.token = token
        self._token_b = token.encode() if token else b""
        self.areas = areas
        self.seq = 0
        """The last sequence number acknowledged."""

    def handle(self, peer: Peer, frame: memoryview, t_rx: int, out: bytearray) -> bool:
        """Decode and act on one request, appending its reply to ``out``. True: close
        the connection after writing ``out``."""
        framing = peer.framing
        if peer.tokens < 1.0:
            lim = self.limits
            self.reject(
                peer,
                out,
                probe_id(frame, framing),
                "rate_limited",
                f"more than {lim.rate:g} requests/s on this connection (burst {lim.burst})",
            )
            return False
        peer.tokens -= 1.0
        try:
            msg = (REQUEST_JSON if framing == "json" else REQUEST_MSGPACK).decode(frame)
        except msgspec.ValidationError as exc:
            self.reject(peer, out, probe_id(frame, framing), "invalid", str(exc))
            return False
        except msgspec.DecodeError as exc:
            self.reject(peer, out, probe_id(frame, framing), "decode", str(exc))
            return False
        except RecursionError:
            self.reject(peer, out, None, "decode", "nesting too deep")
            return False
        ti = TYPE_INDEX.get(type(msg))
        if ti is not None:
            self.counters.count_received(ti)
        if peer.needs_auth and not peer.authed and not isinstance(msg, Auth):
            self.reject(
                peer,
                out,
                msg.id,
                "unauthorized",
                'this socket is not loopback: authenticate first with {"type":"auth","token":...}',
            )
            return False
        match msg:
            case Reward() | Stress() | Novelty() | Dmn() | GoalComplete() | SecurityAlert():
                self._enqueue(peer, msg, t_rx, out)
            case Stimulus(area=area):
                try:
                    if self.areas is not None:
                        self.areas.index(area, at="$.area")
                except ValueError as exc:
                    self.reject(peer, out, msg.id, "invalid", str(exc))
                else:
                    self._enqueue(peer, msg, t_rx, out)
            case Auth(token=token):
                return self._auth(peer, msg.id, token, out)
            case Reserve() | Commit() | Abort() | State() | Subscribe() | Interrupt() | Clear():
                assert ti is not None
                self._call(peer, msg, ti, out)
        return False

    def reject(
        self, peer: Peer, out: bytearray, id: int | str | None, reason: RejectReason, text: str
    ) -> None:
        """Append an ``error`` reply and count the rejection."""
        self.counters.count_rejected(reason)
        append_frame(Error(id=id, reason=reason, error=text), peer.framing, out)

    def _enqueue(self, peer: Peer, msg: _Signal, t_rx: int, out: bytearray) -> None:
        seq = self.seq + 1
        if not self.inbox.try_put(Accepted(seq, t_rx, msg)):
            self.reject(
                peer,
                out,
                msg.id,
                "overloaded",
                f"the inbox is full ({self.inbox.capacity} signals wait for the control "
                f"cycle); nothing was applied, retry later",
            )
            return
        self.seq = seq
        append_frame(Ack(id=msg.id, seq=seq), peer.framing, out)

    def _auth(self, peer: Peer, id: int | str | None, token: str, out: bytearray) -> bool:
        if self.token is None:
            self.reject(
                peer, out, id, "unauthorized", f"this server has no token ({TOKEN_ENV} is not set)"
            )
            return False
        if not hmac.compare_digest(token.encode(), self._token_b):
            self.reject(peer, out, id, "unauthorized", "wrong token; closing the connection")
            self.stats.auth_closed += 1
            return True
        peer.authed = True
        self.seq += 1
        append_frame(Ack(id=id, seq=self.seq), peer.framing, out)
        return False

    def _call(self, peer: Peer, msg: _Call, ti: int, out: bytearray) -> None:
        """Request/response messages: answered by the orchestrator's handler now."""
        h = self.handler
        tag = TAG[type(msg)]
        if isinstance(msg, Interrupt | Clear) and not peer.authed:
            why = (
                'send {"type":"auth","token":...} first'
                if self.token is not None
                else f"this server has no token ({TOKEN_ENV} is not set)"
            )
            self.reject(peer, out, msg.id, "unauthorized", f"`{tag}` is privileged: {why}")
            return
        if h is None:
            self.reject(
                peer, out, msg.id, "invalid", f"`{tag}` needs the orchestrator; none is attached"
            )
            return
        lock: int | None = None
        state = None
        match msg:
            case Reserve(cost=cost, task=task):
                lock = h.try_reserve(cost, task)
                if lock is None:
                    self.reject(
                        peer,
                        out,
                        msg.id,
                        "metabolic_denied",
                        f"not enough ATP to reserve {cost:g} for task {task!r}",
                    )
                    return
            case Commit(lock=lk) | Abort(lock=lk):
                done = h.commit(lk) if isinstance(msg, Commit) else h.abort(lk)
                if not done:
                    self.reject(
                        peer,
                        out,
                        msg.id,
                        "unknown_lock",
                        f"no open lock {lk} (never granted, already committed or "
                        f"aborted, expired or revoked) - at `$.lock`",
                    )
                    return
            case State():
                state = h.snapshot()
            case Subscribe(hz=hz):
                peer.subscribe(msg.id, hz)
            case Interrupt(cause=cause):
                h.raise_interrupt(Cause[cause.upper()])
            case Clear(cause=cause):
                h.clear_interrupt(Cause[cause.upper()])
        self.counters.count_applied(ti)
        self.seq += 1
        append_frame(Ack(id=msg.id, seq=self.seq, lock=lock, state=state), peer.framing, out)
