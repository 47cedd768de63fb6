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

Both are thin shells over one sans-IO core (:mod:`engs.shared.client_core`: replies
from bytes, the convenience requests written once); they only dial, send and receive.

Not thread-safe: use one client per thread (or the async client on one loop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import socket
import time
from collections.abc import AsyncIterator, Coroutine, Generator, Sequence
from types import TracebackType
from typing import Any

from engs.shared.client_core import (
    Calls,
    ClientBase,
    Granted,
    Id,
    Lost,
    Replies,
    check_reply,
    with_lock,
    with_state,
)
from engs.shared.errors import SignalConnectionError, SignalError
from engs.shared.messages import (
    TAG,
    Ack,
    Auth,
    CuriosityGoal,
    Error,
    Reply,
    Request,
    Reserve,
    Snapshot,
    State,
    StateSnapshot,
    Subscribe,
    encode_frame,
)

StreamItem = Snapshot | CuriosityGoal
_RECV = 65536


# ---------------------------------------------------------------------------
# Blocking client


class Reservation(Granted["SignalClient"]):
    """A granted metabolic lock; as a context manager it commits on success and
    aborts on an exception (the exception propagates)."""

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


class SignalClient(ClientBase, Calls[Ack]):
    """Blocking client. ``with SignalClient() as c: c.reward(0.7)``."""

    def _init_connection(self) -> None:
        self._sock: socket.socket | None = None
        self._replies = Replies(self.framing)

    def _call(self, msg: Request) -> Ack:
        return self.request(msg)

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

    def _open(self) -> tuple[socket.socket, Replies]:
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
        split = Replies(self.framing)
        if self.token is not None:
            try:
                sock.sendall(encode_frame(Auth(token=self.token), self.framing))
                check_reply(self._read(sock, split), "auth")
            except (OSError, Lost) as exc:
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
            sock, self._replies = self._open()
            self._sock = sock
        return sock

    def _read(self, sock: socket.socket, replies: Replies) -> Reply:
        while (reply := replies.next()) is None:
            replies.feed(sock.recv(_RECV))
        return reply

    # -- requests -------------------------------------------------------------

    def request(self, msg: Request) -> Ack:
        """Send one request and return its ack; raises SignalRejected on an error reply."""
        return check_reply(self.exchange(msg), TAG[type(msg)])

    def exchange(self, msg: Request) -> Reply:
        """Send one request and return its reply as it came (an error is returned)."""
        sock = self._ensure()
        try:
            sock.sendall(encode_frame(msg, self.framing))
            return self._read(sock, self._replies)
        except (OSError, Lost) as exc:
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
                    reply = self._read(sock, self._replies)
                    if not isinstance(reply, Ack | Error):
                        raise Lost(f"unexpected {type(reply).__name__} reply")
                    out.append(reply)
            except (OSError, Lost) as exc:
                self.close()
                raise self._lost(f"{len(chunk)} pipelined requests", exc) from None
        return out

    def state(self) -> StateSnapshot:
        return with_state(self.request(State()))

    def reserve(self, cost: float, task: str, *, id: Id = None) -> Reservation:
        """Ask for a metabolic lock now. Denied → SignalRejected (``metabolic_denied``).
        ``with client.reserve(5, "ingest"): ...`` commits on success, aborts on error."""
        lock = with_lock(self.request(Reserve(cost=cost, task=task, id=id)))
        return Reservation(self, lock, cost, task)

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
                check_reply(self._read(sock, split), "subscribe")
                failures = 0
                while True:
                    item = self._read(sock, split)
                    if isinstance(item, Snapshot | CuriosityGoal):
                        yield item
            except (OSError, Lost) as exc:
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


class AsyncReservation(Granted["AsyncSignalClient"]):
    """A granted metabolic lock (asyncio). ``async with`` commits or aborts."""

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
        lock = with_lock(await self._client.request(self._msg))
        return AsyncReservation(self._client, lock, self._msg.cost, self._msg.task)

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


class AsyncSignalClient(ClientBase, Calls[Coroutine[Any, Any, Ack]]):
    """asyncio client; requests may be issued concurrently from many tasks (they are
    pipelined on one connection, replies matched in order)."""

    def _init_connection(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self._read_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()

    def _call(self, msg: Request) -> Coroutine[Any, Any, Ack]:
        return self.request(msg)

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

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Replies]:
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
        split = Replies(self.framing)
        if self.token is not None:
            try:
                writer.write(encode_frame(Auth(token=self.token), self.framing))
                reply = await asyncio.wait_for(self._read(reader, split), self.timeout)
                check_reply(reply, "auth")
            except (OSError, TimeoutError, Lost) as exc:
                writer.close()
                raise self._lost("auth", exc) from None
            except SignalError:
                writer.close()
                raise
        return reader, writer, split

    async def _read(self, reader: asyncio.StreamReader, replies: Replies) -> Reply:
        while (reply := replies.next()) is None:
            replies.feed(await reader.read(_RECV))
        return reply

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

    async def _read_loop(self, reader: asyncio.StreamReader, split: Replies) -> None:
        why: BaseException = Lost("")
        try:
            while True:
                reply = await self._read(reader, split)
                if not self._pending:
                    why = Lost(f"unsolicited {type(reply).__name__} reply")
                    break
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (OSError, Lost) as exc:
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
                    why if isinstance(why, SignalError) else Lost(str(why) or "closed")
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
        except (OSError, TimeoutError, Lost) as exc:
            # The stream is in an unknown state: drop it (fails the other requests
            # in flight the same way) rather than risk matching replies wrongly.
            await self.close()
            raise self._lost(TAG[type(msg)], exc) from None

    async def request(self, msg: Request) -> Ack:
        return check_reply(await self.exchange(msg), TAG[type(msg)])

    async def send_many(self, msgs: Sequence[Request]) -> list[Ack | Error]:
        """Pipeline ``msgs`` and return every reply in order (errors returned)."""
        replies = await asyncio.gather(*(self.exchange(m) for m in msgs))
        out: list[Ack | Error] = []
        for r in replies:
            if not isinstance(r, Ack | Error):
                raise SignalError(f"unexpected {type(r).__name__} reply")
            out.append(r)
        return out

    async def state(self) -> StateSnapshot:
        return with_state(await self.request(State()))

    def reserve(self, cost: float, task: str, *, id: Id = None) -> _ReserveCall:
        """``res = await client.reserve(5, "ingest")`` or
        ``async with client.reserve(5, "ingest") as res: ...`` (commit / abort)."""
        return _ReserveCall(self, Reserve(cost=cost, task=task, id=id))

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
                check_reply(await asyncio.wait_for(self._read(reader, split), quiet), "subscribe")
                failures = 0
                while True:
                    item = await asyncio.wait_for(self._read(reader, split), quiet)
                    if isinstance(item, Snapshot | CuriosityGoal):
                        yield item
            except (OSError, TimeoutError, Lost) as exc:
                failures += 1
                if failures >= self.connect_attempts:
                    raise self._lost("subscribe", exc) from None
                await asyncio.sleep(min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))
            finally:
                writer.close()
