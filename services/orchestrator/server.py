"""The signal socket server (ARCHITECTURE §5, Contract; protocol in docs/signals.md).

Runs on the orchestrator's one event loop (uvloop), beside the 100 Hz control cycle,
and must never make that cycle wait: it is written as :class:`asyncio.Protocol`
callbacks that never await. Per loop iteration the whole server handles at most
``Limits.batch`` requests; a connection with more buffered pauses its reading and
continues in the next iteration, so a timer due for the control cycle runs in
between. Output is bounded per connection: when a client stops reading, the
transport's buffer passes ``output_high``, reading from it pauses (no new replies),
and if it stays blocked for ``write_timeout_s`` or grows past ``max_output`` the
connection is aborted. Nothing here blocks on a client.

Connection slots cannot be hoarded: a new connection must send its first bytes within
``first_byte_timeout_s``, one that then falls silent is closed after ``idle_timeout_s``,
and a new connection arriving while ``max_connections`` are open is always served — the
connection idle the longest (subscribers last) is closed to make room. ``_conns`` is
kept in order of each connection's last input, so that choice needs no sort or scan
(past any subscribers at its front).

Who calls what:

* the server puts accepted signals into the :class:`~engs.services.orchestrator.inbox.
  SignalInbox` (ack only after the put succeeded), the control cycle drains it;
* request/response messages call the orchestrator's
  :class:`~engs.services.orchestrator.inbox.SignalHandler` at once;
* the orchestrator calls :meth:`SignalServer.publish` to push events (curiosity goals)
  to subscribers; subscribers' snapshots are taken from ``handler.snapshot()`` at
  their requested rate.

By concern: this module owns the listeners, the connections (flow control, timeouts,
eviction, the per-iteration budget) and :meth:`SignalServer.publish`; frames are cut by
:class:`~engs.shared.messages.FrameSplitter` (the clients' framer too), requests are
acted on by :class:`~engs.services.orchestrator.dispatch.Dispatcher`, streams are
:class:`~engs.services.orchestrator.subscriptions.Subscription`, and the Unix listener
is bound by :mod:`~engs.services.orchestrator.unix_socket`.

Framing is decided by the first byte of a connection (``{`` → JSON lines, anything
else → 4-byte big-endian length + msgpack) and holds for the connection's life.
Security: a TCP bind on a non-loopback address needs a token (``ENGS_TOKEN``, at
least 16 characters) and every connection to it must send ``auth`` first;
``interrupt`` and ``clear`` need an authenticated connection everywhere. Tokens are
compared with :func:`hmac.compare_digest`; a wrong token closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import cast

from engs.services.orchestrator.dispatch import TOKEN_ENV, Dispatcher, ServerStats
from engs.services.orchestrator.inbox import SignalHandler, SignalInbox
from engs.services.orchestrator.inputs import AreaNames
from engs.services.orchestrator.subscriptions import Subscription
from engs.services.orchestrator.unix_socket import bind_unix, unix_bind_error
from engs.shared.config import SignalsConfig, is_loopback, parse_addr
from engs.shared.errors import ConfigError
from engs.shared.messages import Event, FrameSplitter, FrameTooLarge, Framing, encode_frame

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ENV", "Limits", "ServerStats", "SignalServer", "check_bind"]

#: Shortest token accepted for a non-loopback bind.
MIN_REMOTE_TOKEN = 16
#: How long a connection closed after a final error keeps draining its input.
LINGER_S = 1.0


Limits = SignalsConfig
"""The server's limits and timeouts are the ``[signals]`` section's (one definition, with
its constraints, in :mod:`engs.shared.config`; defaults in docs/signals.md). Tests and
benches build one with only the limits they change: ``Limits(max_connections=2)``."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse a TCP bind that is not loopback-only unless a usable token is set."""
    if is_loopback(host):
        return
    if not token:
        raise ConfigError(
            f"signal socket: binding {host!r} (not loopback) requires a token; set "
            f"{TOKEN_ENV} (at least {MIN_REMOTE_TOKEN} characters) - at `$.signals.addr`"
        )
    if len(token) < MIN_REMOTE_TOKEN:
        raise ConfigError(
            f"signal socket: {TOKEN_ENV} must be at least {MIN_REMOTE_TOKEN} characters "
            f"for a non-loopback bind ({host!r}), got {len(token)}"
        )


class SignalServer:
    """The signal socket: TCP (and optionally a Unix socket) on the running loop.

    ``addr`` is ``"host:port"`` or a ``(host, port)`` tuple (port 0: any free port,
    see :attr:`tcp_address`); ``inbox`` receives accepted signals; ``handler``
    answers request/response messages (None: they are answered ``invalid``, as in the
    ingest benchmark); ``token`` authenticates (module docstring); ``require_auth``
    makes every TCP connection authenticate first (default: only when ``addr`` is not
    loopback); ``areas``, when given, are the area names a ``stimulus`` may name.
    """

    def __init__(
        self,
        inbox: SignalInbox,
        handler: SignalHandler | None = None,
        *,
        addr: str | tuple[str, int] = "127.0.0.1:7411",
        unix_path: str | None = None,
        token: str | None = None,
        limits: Limits | None = None,
        areas: Iterable[str] | None = None,
        require_auth: bool | None = None,
    ) -> None:
        if isinstance(addr, tuple):  # (host, port); port 0 picks a free port
            self._host, self._port = addr
        else:
            try:
                self._host, self._port = parse_addr(addr)
            except ValueError as exc:
                raise ConfigError(f"signal socket address: {exc} - at `$.signals.addr`") from None
        self.limits = limits if limits is not None else Limits()
        self.stats = ServerStats()
        self.unix_path = unix_path
        self._token = token or None
        self._tcp_needs_auth = not is_loopback(self._host) if require_auth is None else require_auth
        self._dispatch = Dispatcher(
            inbox,
            handler,
            limits=self.limits,
            stats=self.stats,
            token=self._token,
            areas=AreaNames(areas) if areas is not None else None,
        )
        # Every open connection, least recently heard from first (the eviction order).
        self._conns: OrderedDict[_Conn, None] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tcp: asyncio.Server | None = None
        self._unix: asyncio.Server | None = None
        self._unix_ino: int | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._budget = self.limits.batch
        self._budget_reset_pending = False

    @classmethod
    def from_config(
        cls,
        cfg: SignalsConfig,
        inbox: SignalInbox,
        handler: SignalHandler | None = None,
        *,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        areas: Iterable[str] | None = None,
    ) -> SignalServer:
        """A server for ``cfg`` (``$.signals``, limits included unless ``limits`` is
        given), its token from ``ENGS_TOKEN``."""
        env = os.environ if env is None else env
        return cls(
            inbox,
            handler,
            addr=cfg.addr,
            unix_path=cfg.unix_path,
            token=env.get(TOKEN_ENV) or None,
            limits=cfg if limits is None else limits,
            areas=areas,
        )

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving. Refuses (ConfigError) before binding when the
        address is not loopback and no usable token is set, when the port cannot be
        bound, or when the Unix path is taken by a live server or a non-socket."""
        check_bind(self._host, self._token)
        if self._tcp_needs_auth and self._token is None:
            raise ConfigError(f"signal socket: require_auth needs a token ({TOKEN_ENV})")
        loop = asyncio.get_running_loop()
        self._loop = loop
        try:
            self._tcp = await loop.create_server(
                lambda: _Conn(self, self._tcp_needs_auth),
                self._host,
                self._port,
                reuse_address=True,
                backlog=min(self.limits.max_connections * 2, 4096),
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot bind the signal socket on {self._host}:{self._port}: "
                f"{exc.strerror or exc} - at `$.signals.addr`"
            ) from None
        if self.unix_path is not None:
            try:
                self._unix = await self._start_unix(loop, self.unix_path)
            except BaseException:
                self._tcp.close()
                raise
        self._sweeper = loop.call_later(self._sweep_period(), self._sweep)
        log.info("signal socket listening on %s", ", ".join(self.addresses()))

    async def _start_unix(self, loop: asyncio.AbstractEventLoop, path: str) -> asyncio.Server:
        sock, self._unix_ino = bind_unix(path)
        try:
            return await loop.create_unix_server(
                lambda: _Conn(self, False),
                sock=sock,
                backlog=min(self.limits.max_connections * 2, 4096),
            )
        except OSError as exc:
            sock.close()
            raise unix_bind_error(path, exc) from None

    def addresses(self) -> list[str]:
        """Where the server listens, e.g. ``["127.0.0.1:40211", "unix:/run/engs.sock"]``."""
        out = []
        if self._tcp is not None:
            for s in self._tcp.sockets:
                host, port = s.getsockname()[:2]
                out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        if self._unix is not None and self.unix_path is not None:
            out.append(f"unix:{self.unix_path}")
        return out

    @property
    def tcp_address(self) -> tuple[str, int]:
        """The bound TCP (host, port), with the real port when configured as 0."""
        if self._tcp is None:
            raise RuntimeError("the signal server is not started")
        host, port = self._tcp.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._conns)

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop listening, close every connection (flushing output for up to
        ``grace_s``, then aborting), and unlink the Unix socket if it is still ours."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for srv in (self._tcp, self._unix):
            if srv is not None:
                srv.close()
        for c in list(self._conns):
            c.close()
        deadline = time.monotonic() + grace_s
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for c in list(self._conns):
            c.abort()
        for srv in (self._tcp, self._unix):
            if srv is not None:
                await srv.wait_closed()
        self._tcp = self._unix = None
        if self.unix_path is not None and self._unix_ino is not None:
            try:
                if os.stat(self.unix_path).st_ino == self._unix_ino:
                    os.unlink(self.unix_path)
            except FileNotFoundError:
                pass
            self._unix_ino = None

    # -- orchestrator side ----------------------------------------------------

    def publish(self, event: Event) -> int:
        """Push an event to every subscriber; never blocks (a full subscriber queue
        drops its oldest snapshot). Call on the loop. Returns the subscribers reached."""
        frames: dict[Framing, bytes] = {}
        n = 0
        for c in self._conns:
            if c.sub is None or c.closing:
                continue
            frame = frames.get(c.framing)
            if frame is None:
                frame = frames[c.framing] = encode_frame(event, c.framing)
            c.sub.push(frame, snapshot=False)
            n += 1
        self.stats.events_published += 1
        return n

    # -- for the connections -------------------------------------------------

    def _loop_time(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _call_soon(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.call_soon(callback)

    def _admit(self, conn: _Conn) -> None:
        """A new connection: make room at the limit, then count it."""
        while self._conns and len(self._conns) >= self.limits.max_connections:
            self._make_room()
        self._conns[conn] = None
        self.stats.connections += 1

    def _heard_from(self, conn: _Conn) -> float:
        """``conn`` sent something: it is now the most recently heard from. Returns now."""
        self._conns.move_to_end(conn)
        return self._loop_time()

    def _forget(self, conn: _Conn) -> None:
        """``conn`` no longer counts against ``max_connections``."""
        self._conns.pop(conn, None)

    def _spend_budget(self, n: int) -> None:
        self._budget -= n

    def _take_budget(self) -> int:
        """Requests still allowed in this loop iteration (reset at the next one)."""
        if not self._budget_reset_pending:
            self._budget_reset_pending = True
            assert self._loop is not None
            self._loop.call_soon(self._reset_budget)
        return self._budget

    def _reset_budget(self) -> None:
        self._budget = self.limits.batch
        self._budget_reset_pending = False

    def _sweep_period(self) -> float:
        lim = self.limits
        return max(0.01, min(1.0, lim.idle_timeout_s / 4, lim.first_byte_timeout_s / 4))

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        idle = self.limits.idle_timeout_s
        first = self.limits.first_byte_timeout_s
        for c in list(self._conns):
            if c.closing:
                continue
            if c.split is None and now - c.last_rx > first:
                self.stats.silent_closed += 1
                c.drop()
            elif c.sub is None and now - c.last_rx > idle:
                self.stats.idle_closed += 1
                c.drop()
        self._sweeper = self._loop.call_later(self._sweep_period(), self._sweep)

    def _make_room(self) -> None:
        """At the connection limit: close the connection idle the longest, preferring
        one that is not a subscriber (``_conns`` is in order of last input)."""
        victim = next((c for c in self._conns if c.sub is None), None)
        if victim is None:
            victim = next(iter(self._conns))
        self.stats.evicted += 1
        log.debug("signal connection limit reached: closing the one idle the longest")
        victim.drop()


class _Conn(asyncio.Protocol):
    """One client connection: transport callbacks, flow control, closing. Frames come
    from a :class:`~engs.shared.messages.FrameSplitter`, requests go to the server's
    :class:`~engs.services.orchestrator.dispatch.Dispatcher`. Every method runs on the
    loop and returns promptly."""

    def __init__(self, srv: SignalServer, needs_auth: bool) -> None:
        self.srv = srv
        self.limits = srv.limits
        self.needs_auth = needs_auth
        self.authed = False
        self.t: asyncio.Transport | None = None
        self.framing: Framing = "msgpack"
        self.split: FrameSplitter | None = None
        """None until the first bytes decide the framing."""
        self.closing = False
        self.sub: Subscription | None = None
        self.last_rx = 0.0
        self.tokens = float(self.limits.burst)
        self._eof = False
        self._t_rx = 0
        self._t_bucket = 0.0
        self._deferred = False
        self._write_paused = False
        self._read_paused = False
        self._stall: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    # -- transport callbacks --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        t = self.t = cast(asyncio.Transport, transport)
        self.last_rx = self._t_bucket = self.srv._loop_time()
        t.set_write_buffer_limits(high=self.limits.output_high)
        self.srv._admit(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_rx = self.srv._heard_from(self)
        self._t_rx = time.monotonic_ns()
        split = self.split
        if split is None:
            self.framing = "json" if data[:1] == b"{" else "msgpack"
            split = self.split = FrameSplitter(self.framing, self.limits.max_frame)
        split.feed(data)
        if not self._deferred:
            self._process()

    def eof_received(self) -> bool:
        # Keep the transport half-open until every buffered request is answered. A
        # JSON line without its final newline still counts (``echo -n ... | nc``).
        self._eof = True
        if self.closing:
            return False
        if self.split is not None:
            self.split.end()
        if not self._deferred and not self.closing:
            self._process()
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()
        if self._stall is None and self.srv._loop is not None:
            self._stall = self.srv._loop.call_later(self.limits.write_timeout_s, self._stalled)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self._update_reading()
        if self.sub is not None:
            self.sub.flush()
        split = self.split
        if not self._deferred and not self.closing and split is not None and split.pending():
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.srv._forget(self)
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._end_subscription()
        self.split = None

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Orderly close: pending output is flushed, then FIN."""
        if self.t is not None and not self.closing:
            self.closing = True
            self._end_subscription()
            self.t.close()

    def close_after_reply(self) -> None:
        """Close after a final error reply, without a reset that could destroy it.

        Closing a socket with unread input makes the kernel send RST, and a client
        may then lose the reply still in flight. So: send FIN after the reply, keep
        reading and discarding for up to ``LINGER_S``, close when the client does.
        """
        t, loop = self.t, self.srv._loop
        if t is None or loop is None or self.closing:
            return
        self.closing = True
        self._end_subscription()
        if t.can_write_eof():
            t.write_eof()
        if self._read_paused:
            self._read_paused = False
            t.resume_reading()
        self._linger = loop.call_later(LINGER_S, self.abort)

    def drop(self) -> None:
        """Close a connection the server gives up on (silent, idle, or evicted to make
        room): it stops counting against ``max_connections`` at once; pending output is
        flushed if there is any room for it, else discarded."""
        self.srv._forget(self)
        t = self.t
        if t is not None and t.get_write_buffer_size() > 0:
            self.abort()
        else:
            self.close()

    def abort(self) -> None:
        """Immediate close, discarding pending output."""
        if self.t is not None:
            self.closing = True
            self._end_subscription()
            self.t.abort()

    def _stalled(self) -> None:
        self._stall = None
        self.srv.stats.slow_closed += 1
        log.debug("signal client not reading for %.1f s: aborted", self.limits.write_timeout_s)
        self.abort()

    def _end_subscription(self) -> None:
        if self.sub is not None:
            self.sub.cancel()
            self.sub = None

    # -- input ----------------------------------------------------------------

    def _update_reading(self) -> None:
        want = self._write_paused or self._deferred
        if want == self._read_paused or self.closing or self.t is None:
            return
        self._read_paused = want
        if want:
            self.t.pause_reading()
        else:
            self.t.resume_reading()

    def _process(self) -> None:
        """Handle the complete frames buffered, within this iteration's budget."""
        self._deferred = False
        split = self.split
        if self.closing or self._write_paused or split is None:
            return  # resume_writing() comes back here: no new replies while blocked
        srv, lim = self.srv, self.limits
        budget = srv._take_budget()
        now = srv._loop_time()
        self.tokens = min(float(lim.burst), self.tokens + (now - self._t_bucket) * lim.rate)
        self._t_bucket = now
        t_rx = self._t_rx
        dispatch = srv._dispatch
        json_lines = self.framing == "json"
        out = bytearray()
        n = 0
        close = False
        while n < budget:
            try:
                frame = split.next()
            except FrameTooLarge as exc:
                srv.stats.oversize_closed += 1
                dispatch.reject(self, out, None, "too_large", f"{exc}; closing the connection")
                close = True
                break
            if frame is None:
                break
            n += 1
            if json_lines and not frame:
                continue  # a blank line is not a request
            if dispatch.handle(self, frame, t_rx, out):
                close = True
                break
        srv._spend_budget(n)
        if out:
            self._write(out)
        if close:
            self.close_after_reply()
            return
        if self.closing:
            return
        if n >= budget and split.pending():
            self._deferred = True
            srv._call_soon(self._process)
        elif self._eof:
            self.close()
            return
        self._update_reading()

    # -- output ---------------------------------------------------------------

    def _write(self, data: bytes | bytearray) -> None:
        t = self.t
        if t is None or t.is_closing():
            return
        t.write(data)
        if t.get_write_buffer_size() > self.limits.max_output:
            self.srv.stats.slow_closed += 1
            self.abort()

    def _writable(self) -> bool:
        return not self._write_paused and not self.closing

    def subscribe(self, id: int | str | None, hz: float) -> None:
        """Start (or re-rate) this connection's stream (the dispatcher's ``subscribe``)."""
        srv = self.srv
        if self.sub is None:
            handler = srv._dispatch.handler
            assert srv._loop is not None and handler is not None
            self.sub = Subscription(
                srv._loop,
                self.framing,
                handler.snapshot,
                self._write,
                self._writable,
                max_queue=self.limits.subscriber_queue,
                stats=srv.stats,
            )
        self.sub.start(id, hz)
