"""Clients of the signal socket: :class:`SignalClient` (blocking) and
:class:`AsyncSignalClient` (asyncio). Protocol: docs/signals.md.

Both speak msgpack framing by default (``framing="json"`` for JSON lines), over TCP
(``addr="host:port"``) or a Unix socket (``unix_path=``), and authenticate every
connection they open when given a ``token``. Replies come back in request order; an
``error`` reply raises :class:`engs.shared.errors.SignalRejected` with the server's reason
and message.

Reconnection, bounded: connecting retries ``connect_attempts`` times with exponential
backoff (``backoff_s`` doubling up to ``max_backoff_s``). A connection the server has
closed while idle is noticed *before* the next request is sent and replaced. A
connection lost *after* a request was sent raises
:class:`engs.shared.errors.SignalConnectionError` saying the request may or may not have
been applied: the client never resends on its own, so nothing is applied twice.
Subscriptions reconnect and resubscribe by themselves (snapshots are idempotent).

Not thread-safe: use one client per thread (or the async client on one loop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import socket
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from types import TracebackType
from typing import Any

import msgspec

from engs.shared.config import parse_addr
from engs.shared.errors import SignalConnectionError, SignalError, SignalRejected
from engs.shared.messages import (
    TAG,
    Abort,
    Ack,
    Auth,
    CauseName,
    Clear,
    Commit,
    CuriosityGoal,
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
    Reserve,
    Reward,
    SecurityAlert,
    Snapshot,
    State,
    StateSnapshot,
    Stimulus,
    Stress,
    Subscribe,
    decode_reply,
    encode_frame,
)

StreamItem = Snapshot | CuriosityGoal
Id = int | str | None
_RECV = 65536


class _Lost(Exception):
    """Internal: the connection ended or broke (converted to SignalConnectionError)."""


def _check(reply: Reply, what: str) -> Ack:
    match reply:
        case Ack():
            return reply
        case Error(reason=reason, error=error, id=id):
            raise SignalRejected(reason, error, id)
        case _:
            raise SignalError(f"expected an ack or error reply to `{what}`, got {reply!r}")


class _Base:
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


# ---------------------------------------------------------------------------
# Blocking client


class Reservation:
    """A granted metabolic lock; as a context manager it commits on success and
    aborts on an exception (the exception propagates)."""

    def __init__(self, client: SignalClient, lock: int, cost: float, task: str) -> None:
        self.client = client
        self.lock = lock
        self.cost = cost
        self.task = task
        self.done = False

    def commit(self) -> Ack:
        self.done = True
        return self.client.commit(self.lock)

    def abort(self) -> Ack:
        self.done = True
        return self.client.abort(self.lock)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
            return
        # Abort best-effort: the task's own exception is what the caller must see; a
        # lock left open is refunded by the orchestrator when it expires.
        with contextlib.suppress(SignalError):
            self.abort()


class SignalClient(_Base):
    """Blocking client. ``with SignalClient() as c: c.reward(0.7)``."""

    def _init_connection(self) -> None:
        self._sock: socket.socket | None = None
        self._split = FrameSplitter(self.framing)

    # -- connection -----------------------------------------------------------

    def __enter__(self) -> SignalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def connect(self) -> None:
        """Connect (and authenticate) now rather than on the first request."""
        self._ensure()

    def _open(self) -> tuple[socket.socket, FrameSplitter]:
        last: BaseException | None = None
        delays = self._delays()
        while True:
            try:
                sock = self._dial()
                break
            except OSError as exc:
                last = exc
            delay = next(delays, None)
            if delay is None:
                raise self._unreachable(last)
            time.sleep(delay)
        split = FrameSplitter(self.framing)
        if self.token is not None:
            try:
                sock.sendall(encode_frame(Auth(token=self.token), self.framing))
                _check(self._read(sock, split), "auth")
            except (OSError, _Lost) as exc:
                sock.close()
                raise self._lost("auth", exc) from None
            except SignalError:
                sock.close()
                raise
        return sock, split

    def _dial(self) -> socket.socket:
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.unix_path)
            except OSError:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _ensure(self) -> socket.socket:
        sock = self._sock
        if sock is not None and _closed_by_peer(sock):
            self.close()
            sock = None
        if sock is None:
            sock, self._split = self._open()
            self._sock = sock
        return sock

    def _read(self, sock: socket.socket, split: FrameSplitter) -> Reply:
        while True:
            try:
                frame = split.next()
            except FrameTooLarge as exc:
                raise _Lost(str(exc)) from None
            if frame is not None:
                try:
                    return decode_reply(frame, self.framing)
                except msgspec.DecodeError as exc:
                    raise _Lost(f"undecodable reply: {exc}") from None
            data = sock.recv(_RECV)
            if not data:
                raise _Lost("")
            split.feed(data)

    # -- requests -------------------------------------------------------------

    def request(self, msg: Request) -> Ack:
        """Send one request and return its ack; raises SignalRejected on an error reply."""
        return _check(self.exchange(msg), TAG[type(msg)])

    def exchange(self, msg: Request) -> Reply:
        """Send one request and return its reply as it came (an error is returned)."""
        sock = self._ensure()
        try:
            sock.sendall(encode_frame(msg, self.framing))
            return self._read(sock, self._split)
        except (OSError, _Lost) as exc:
            self.close()
            raise self._lost(TAG[type(msg)], exc) from None

    def send_many(self, msgs: Sequence[Request], *, window: int = 256) -> list[Ack | Error]:
        """Pipeline ``msgs`` (``window`` in flight at a time) and return every reply in
        order; error replies are returned, not raised."""
        out: list[Ack | Error] = []
        for start in range(0, len(msgs), window):
            chunk = msgs[start : start + window]
            sock = self._ensure()
            try:
                sock.sendall(b"".join(encode_frame(m, self.framing) for m in chunk))
                for _ in chunk:
                    reply = self._read(sock, self._split)
                    if not isinstance(reply, Ack | Error):
                        raise _Lost(f"unexpected {type(reply).__name__} reply")
                    out.append(reply)
            except (OSError, _Lost) as exc:
                self.close()
                raise self._lost(f"{len(chunk)} pipelined requests", exc) from None
        return out

    def reward(self, value: float, *, id: Id = None) -> Ack:
        return self.request(Reward(value=value, id=id))

    def stress(self, value: float, *, id: Id = None) -> Ack:
        return self.request(Stress(value=value, id=id))

    def novelty(self, entropy: float, *, id: Id = None) -> Ack:
        return self.request(Novelty(entropy=entropy, id=id))

    def stimulus(self, area: str, amplitude: float, *, id: Id = None) -> Ack:
        return self.request(Stimulus(area=area, amplitude=amplitude, id=id))

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
    ) -> Ack:
        return self.request(
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

    def goal_complete(self, *, id: Id = None) -> Ack:
        return self.request(GoalComplete(id=id))

    def security_alert(self, *, id: Id = None) -> Ack:
        return self.request(SecurityAlert(id=id))

    def state(self) -> StateSnapshot:
        ack = self.request(State())
        if ack.state is None:
            raise SignalError("the server acknowledged `state` without a snapshot")
        return ack.state

    def reserve(self, cost: float, task: str, *, id: Id = None) -> Reservation:
        """Ask for a metabolic lock now. Denied → SignalRejected (``metabolic_denied``).
        ``with client.reserve(5, "ingest"): ...`` commits on success, aborts on error."""
        ack = self.request(Reserve(cost=cost, task=task, id=id))
        if ack.lock is None:
            raise SignalError("the server acknowledged `reserve` without a lock")
        return Reservation(self, ack.lock, cost, task)

    def commit(self, lock: int, *, id: Id = None) -> Ack:
        return self.request(Commit(lock=lock, id=id))

    def abort(self, lock: int, *, id: Id = None) -> Ack:
        return self.request(Abort(lock=lock, id=id))

    def interrupt(self, cause: CauseName, *, id: Id = None) -> Ack:
        return self.request(Interrupt(cause=cause, id=id))

    def clear(self, cause: CauseName, *, id: Id = None) -> Ack:
        return self.request(Clear(cause=cause, id=id))

    def subscribe(self, hz: float, *, id: Id = None) -> Generator[StreamItem, None, None]:
        """Snapshots (and events) at up to ``hz``, on a connection of its own, until the
        generator is closed. Reconnects and resubscribes on a lost connection (bounded
        by ``connect_attempts`` consecutive failures)."""
        msg = Subscribe(hz=hz, id=id)
        frame = encode_frame(msg, self.framing)
        failures = 0
        while True:
            sock, split = self._open()
            try:
                # A stream that goes quiet for several periods is taken as lost.
                sock.settimeout(max(self.timeout, 5.0 / hz))
                sock.sendall(frame)
                _check(self._read(sock, split), "subscribe")
                failures = 0
                while True:
                    item = self._read(sock, split)
                    if isinstance(item, Snapshot | CuriosityGoal):
                        yield item
            except (OSError, _Lost) as exc:
                failures += 1
                if failures >= self.connect_attempts:
                    raise self._lost("subscribe", exc) from None
                time.sleep(min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))
            finally:
                sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """True if the server has closed (or reset) this idle connection: checked before
    sending, so a request is never written into a connection already gone."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    # Readable while no request is outstanding: EOF, a reset, or unsolicited bytes;
    # none leaves a usable request/reply stream.
    return bool(readable)


# ---------------------------------------------------------------------------
# asyncio client


class AsyncReservation:
    """A granted metabolic lock (asyncio). ``async with`` commits or aborts."""

    def __init__(self, client: AsyncSignalClient, lock: int, cost: float, task: str) -> None:
        self.client = client
        self.lock = lock
        self.cost = cost
        self.task = task
        self.done = False

    async def commit(self) -> Ack:
        self.done = True
        return await self.client.commit(self.lock)

    async def abort(self) -> Ack:
        self.done = True
        return await self.client.abort(self.lock)


class _ReserveCall:
    """What ``AsyncSignalClient.reserve`` returns: await it for the reservation, or
    ``async with`` it to commit on success and abort on an exception."""

    def __init__(self, client: AsyncSignalClient, msg: Reserve) -> None:
        self._client = client
        self._msg = msg
        self._res: AsyncReservation | None = None

    async def _get(self) -> AsyncReservation:
        ack = await self._client.request(self._msg)
        if ack.lock is None:
            raise SignalError("the server acknowledged `reserve` without a lock")
        return AsyncReservation(self._client, ack.lock, self._msg.cost, self._msg.task)

    def __await__(self) -> Generator[Any, None, AsyncReservation]:
        return self._get().__await__()

    async def __aenter__(self) -> AsyncReservation:
        self._res = await self._get()
        return self._res

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        res = self._res
        if res is None or res.done:
            return
        if exc_type is None:
            await res.commit()
            return
        with contextlib.suppress(SignalError):
            await res.abort()


class AsyncSignalClient(_Base):
    """asyncio client; requests may be issued concurrently from many tasks (they are
    pipelined on one connection, replies matched in order)."""

    def _init_connection(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self._read_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncSignalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        await self._ensure()

    async def close(self) -> None:
        w, task = self._writer, self._read_task
        self._writer = self._reader = None
        self._read_task = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if w is not None:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        self._fail_pending(SignalConnectionError(f"client to {self.where} closed"))

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            coro = asyncio.open_unix_connection(self.unix_path, limit=_RECV)
        else:
            coro = asyncio.open_connection(self.host, self.port, limit=_RECV)
        return await asyncio.wait_for(coro, self.timeout)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameSplitter]:
        last: BaseException | None = None
        delays = self._delays()
        while True:
            try:
                reader, writer = await self._dial()
                break
            except (OSError, TimeoutError) as exc:
                last = exc
            delay = next(delays, None)
            if delay is None:
                raise self._unreachable(last)
            await asyncio.sleep(delay)
        split = FrameSplitter(self.framing)
        if self.token is not None:
            try:
                writer.write(encode_frame(Auth(token=self.token), self.framing))
                reply = await asyncio.wait_for(self._read(reader, split), self.timeout)
                _check(reply, "auth")
            except (OSError, TimeoutError, _Lost) as exc:
                writer.close()
                raise self._lost("auth", exc) from None
            except SignalError:
                writer.close()
                raise
        return reader, writer, split

    async def _read(self, reader: asyncio.StreamReader, split: FrameSplitter) -> Reply:
        while True:
            try:
                frame = split.next()
            except FrameTooLarge as exc:
                raise _Lost(str(exc)) from None
            if frame is not None:
                try:
                    return decode_reply(frame, self.framing)
                except msgspec.DecodeError as exc:
                    raise _Lost(f"undecodable reply: {exc}") from None
            data = await reader.read(_RECV)
            if not data:
                raise _Lost("")
            split.feed(data)

    async def _ensure(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is None or self._read_task is None or self._read_task.done():
                await self.close()
                reader, writer, split = await self._open()
                self._reader, self._writer = reader, writer
                self._read_task = asyncio.get_running_loop().create_task(
                    self._read_loop(reader, split)
                )
            return self._writer

    async def _read_loop(self, reader: asyncio.StreamReader, split: FrameSplitter) -> None:
        why: BaseException = _Lost("")
        try:
            while True:
                reply = await self._read(reader, split)
                if not self._pending:
                    why = _Lost(f"unsolicited {type(reply).__name__} reply")
                    break
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (OSError, _Lost) as exc:
            why = exc
        finally:
            if self._reader is reader and self._writer is not None:
                self._writer.close()
                self._writer = None
            self._fail_pending(why)

    def _fail_pending(self, why: BaseException) -> None:
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(
                    why if isinstance(why, SignalError) else _Lost(str(why) or "closed")
                )

    async def exchange(self, msg: Request) -> Reply:
        """Send one request and return its reply as it came (an error is returned)."""
        writer = await self._ensure()
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append(fut)
        try:
            writer.write(encode_frame(msg, self.framing))
            await asyncio.wait_for(writer.drain(), self.timeout)
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except (OSError, TimeoutError, _Lost) as exc:
            # The stream is in an unknown state: drop it (fails the other requests
            # in flight the same way) rather than risk matching replies wrongly.
            await self.close()
            raise self._lost(TAG[type(msg)], exc) from None

    async def request(self, msg: Request) -> Ack:
        return _check(await self.exchange(msg), TAG[type(msg)])

    async def send_many(self, msgs: Sequence[Request]) -> list[Ack | Error]:
        """Pipeline ``msgs`` and return every reply in order (errors returned)."""
        replies = await asyncio.gather(*(self.exchange(m) for m in msgs))
        out: list[Ack | Error] = []
        for r in replies:
            if not isinstance(r, Ack | Error):
                raise SignalError(f"unexpected {type(r).__name__} reply")
            out.append(r)
        return out

    async def reward(self, value: float, *, id: Id = None) -> Ack:
        return await self.request(Reward(value=value, id=id))

    async def stress(self, value: float, *, id: Id = None) -> Ack:
        return await self.request(Stress(value=value, id=id))

    async def novelty(self, entropy: float, *, id: Id = None) -> Ack:
        return await self.request(Novelty(entropy=entropy, id=id))

    async def stimulus(self, area: str, amplitude: float, *, id: Id = None) -> Ack:
        return await self.request(Stimulus(area=area, amplitude=amplitude, id=id))

    async def dmn(
        self,
        *,
        coherence: float,
        utility: float,
        uncertainty: float,
        safety_penalty: float,
        calibration_gap: float,
        node: str | None = None,
        id: Id = None,
    ) -> Ack:
        return await self.request(
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

    async def goal_complete(self, *, id: Id = None) -> Ack:
        return await self.request(GoalComplete(id=id))

    async def security_alert(self, *, id: Id = None) -> Ack:
        return await self.request(SecurityAlert(id=id))

    async def state(self) -> StateSnapshot:
        ack = await self.request(State())
        if ack.state is None:
            raise SignalError("the server acknowledged `state` without a snapshot")
        return ack.state

    def reserve(self, cost: float, task: str, *, id: Id = None) -> _ReserveCall:
        """``res = await client.reserve(5, "ingest")`` or
        ``async with client.reserve(5, "ingest") as res: ...`` (commit / abort)."""
        return _ReserveCall(self, Reserve(cost=cost, task=task, id=id))

    async def commit(self, lock: int, *, id: Id = None) -> Ack:
        return await self.request(Commit(lock=lock, id=id))

    async def abort(self, lock: int, *, id: Id = None) -> Ack:
        return await self.request(Abort(lock=lock, id=id))

    async def interrupt(self, cause: CauseName, *, id: Id = None) -> Ack:
        return await self.request(Interrupt(cause=cause, id=id))

    async def clear(self, cause: CauseName, *, id: Id = None) -> Ack:
        return await self.request(Clear(cause=cause, id=id))

    async def subscribe(self, hz: float, *, id: Id = None) -> AsyncIterator[StreamItem]:
        """Async iterator of snapshots (and events) at up to ``hz`` on a connection of
        its own; reconnects and resubscribes like :meth:`SignalClient.subscribe`."""
        frame = encode_frame(Subscribe(hz=hz, id=id), self.framing)
        quiet = max(self.timeout, 5.0 / hz)
        failures = 0
        while True:
            reader, writer, split = await self._open()
            try:
                writer.write(frame)
                _check(await asyncio.wait_for(self._read(reader, split), quiet), "subscribe")
                failures = 0
                while True:
                    item = await asyncio.wait_for(self._read(reader, split), quiet)
                    if isinstance(item, Snapshot | CuriosityGoal):
                        yield item
            except (OSError, TimeoutError, _Lost) as exc:
                failures += 1
                if failures >= self.connect_attempts:
                    raise self._lost("subscribe", exc) from None
                await asyncio.sleep(min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))
            finally:
                writer.close()
