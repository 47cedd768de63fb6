"""The sans-IO core of the signal-socket clients (:mod:`engs.shared.client`).

Everything the blocking and the asyncio client share and that never touches a socket:
their settings and error texts (:class:`ClientBase`), bytes in / replies out
(:class:`Replies`, on the one :class:`~engs.shared.messages.FrameSplitter`), the
convenience requests written once (:class:`Calls`), a granted lock (:class:`Granted`),
and the reading of replies (:func:`check_reply`). The shells in :mod:`engs.shared.client`
only move bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

import msgspec

from engs.shared.config import parse_addr
from engs.shared.errors import SignalConnectionError, SignalError, SignalRejected
from engs.shared.messages import (
    Abort,
    Ack,
    CauseName,
    Clear,
    Commit,
    Dmn,
    Error,
    FrameSplitter,
    FrameTooLarge,
    Framing,
    GoalComplete,
    Interrupt,
    Novelty,
    Reply,
    Request,
    Reward,
    SecurityAlert,
    StateSnapshot,
    Stimulus,
    Stress,
    decode_reply,
)

Id = int | str | None
R = TypeVar("R")
C = TypeVar("C")


class Lost(Exception):
    """Internal: the connection ended or broke (converted to SignalConnectionError)."""


def check_reply(reply: Reply, what: str) -> Ack:
    match reply:
        case Ack():
            return reply
        case Error(reason=reason, error=error, id=id):
            raise SignalRejected(reason, error, id)
        case _:
            raise SignalError(f"expected an ack or error reply to `{what}`, got {reply!r}")


class Replies:
    """The sans-IO core both clients read through: bytes in, replies out (the shells
    only move bytes). Raises :class:`Lost` for a stream that cannot go on."""

    __slots__ = ("_split", "framing")

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._split = FrameSplitter(framing)

    def feed(self, data: bytes) -> None:
        """Bytes received; empty: the server closed the connection."""
        if not data:
            raise Lost("")
        self._split.feed(data)

    def next(self) -> Reply | None:
        """The next complete reply, or None until more bytes are fed."""
        try:
            frame = self._split.next()
        except FrameTooLarge as exc:
            raise Lost(str(exc)) from None
        if frame is None:
            return None
        try:
            return decode_reply(frame, self.framing)
        except msgspec.DecodeError as exc:
            raise Lost(f"undecodable reply: {exc}") from None


def with_state(ack: Ack) -> StateSnapshot:
    if ack.state is None:
        raise SignalError("the server acknowledged `state` without a snapshot")
    return ack.state


def with_lock(ack: Ack) -> int:
    if ack.lock is None:
        raise SignalError("the server acknowledged `reserve` without a lock")
    return ack.lock


class Granted(Generic[C]):
    """A granted metabolic lock, as the client ``C`` that holds it sees it: its id,
    cost (NMU) and task, and whether it was committed or aborted (``done``)."""

    def __init__(self, client: C, lock: int, cost: float, task: str) -> None:
        self.client = client
        self.lock = lock
        self.cost = cost
        self.task = task
        self.done = False


class Calls(Generic[R]):
    """The convenience requests, written once: each builds its message and hands it
    to :meth:`_call` — the blocking client's returns the ack, the asyncio client's an
    awaitable of it."""

    def _call(self, msg: Request) -> R:
        raise NotImplementedError

    def reward(self, value: float, *, id: Id = None) -> R:
        return self._call(Reward(value=value, id=id))

    def stress(self, value: float, *, id: Id = None) -> R:
        return self._call(Stress(value=value, id=id))

    def novelty(self, entropy: float, *, id: Id = None) -> R:
        return self._call(Novelty(entropy=entropy, id=id))

    def stimulus(self, area: str, amplitude: float, *, id: Id = None) -> R:
        return self._call(Stimulus(area=area, amplitude=amplitude, id=id))

    def dmn(
        self,
        *,
        coherence: float,
        utility: float,
        uncertainty: float,
        safety_penalty: float,
        calibration_gap: float,
        node: str | None = None,
        id: Id = None,
    ) -> R:
        return self._call(
            Dmn(
                coherence=coherence,
                utility=utility,
                uncertainty=uncertainty,
                safety_penalty=safety_penalty,
                calibration_gap=calibration_gap,
                node=node,
                id=id,
            )
        )

    def goal_complete(self, *, id: Id = None) -> R:
        return self._call(GoalComplete(id=id))

    def security_alert(self, *, id: Id = None) -> R:
        return self._call(SecurityAlert(id=id))

    def commit(self, lock: int, *, id: Id = None) -> R:
        return self._call(Commit(lock=lock, id=id))

    def abort(self, lock: int, *, id: Id = None) -> R:
        return self._call(Abort(lock=lock, id=id))

    def interrupt(self, cause: CauseName, *, id: Id = None) -> R:
        return self._call(Interrupt(cause=cause, id=id))

    def clear(self, cause: CauseName, *, id: Id = None) -> R:
        return self._call(Clear(cause=cause, id=id))


class ClientBase:
    def __init__(
        self,
        addr: str | None = "127.0.0.1:7411",
        *,
        unix_path: str | None = None,
        token: str | None = None,
        framing: Framing = "msgpack",
        timeout: float = 5.0,
        connect_attempts: int = 5,
        backoff_s: float = 0.05,
        max_backoff_s: float = 1.0,
    ) -> None:
        if unix_path is None and addr is None:
            raise ValueError("give addr (host:port) or unix_path")
        if framing not in ("json", "msgpack"):
            raise ValueError(f"framing must be 'json' or 'msgpack', got {framing!r}")
        if connect_attempts < 1:
            raise ValueError(f"connect_attempts must be >= 1, got {connect_attempts}")
        self.unix_path = unix_path
        self.host, self.port = ("", 0) if unix_path is not None else parse_addr(str(addr))
        self.token = token
        self.framing: Framing = framing
        self.timeout = timeout
        self.connect_attempts = connect_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._init_connection()

    def _init_connection(self) -> None:
        """Set up the (unconnected) connection state of the concrete client."""

    @property
    def where(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"{self.host}:{self.port}"

    def _delays(self) -> Iterator[float]:
        """Sleeps between connection attempts: connect_attempts - 1 of them."""
        d = self.backoff_s
        for _ in range(self.connect_attempts - 1):
            yield d
            d = min(d * 2, self.max_backoff_s)

    def _unreachable(self, exc: BaseException | None) -> SignalConnectionError:
        return SignalConnectionError(
            f"cannot reach the signal socket at {self.where} after {self.connect_attempts} "
            f"attempt(s): {exc} (is the orchestrator running?)"
        )

    def _lost(self, what: str, exc: BaseException) -> SignalConnectionError:
        return SignalConnectionError(
            f"connection to the signal socket at {self.where} lost after sending `{what}` "
            f"({exc or 'closed by the server'}); it may or may not have been applied"
        )
