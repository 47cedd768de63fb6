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

Framing is decided by the first byte of a connection (``{`` → JSON lines, anything
else → 4-byte big-endian length + msgpack) and holds for the connection's life.
Security: a TCP bind on a non-loopback address needs a token (``ENGS_TOKEN``, at
least 16 characters) and every connection to it must send ``auth`` first;
``interrupt`` and ``clear`` need an authenticated connection everywhere. Tokens are
compared with :func:`hmac.compare_digest`; a wrong token closes the connection.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import msgspec

from engs.services.orchestrator.inbox import TYPE_INDEX, Accepted, SignalHandler, SignalInbox
from engs.services.orchestrator.inputs import AreaNames
from engs.shared.config import SignalsConfig, is_loopback, parse_addr
from engs.shared.errors import ConfigError
from engs.shared.layout import Cause
from engs.shared.messages import (
    HEADER,
    HEADER_BYTES,
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
    Event,
    Framing,
    GoalComplete,
    Interrupt,
    Novelty,
    RejectReason,
    Reserve,
    Reward,
    SecurityAlert,
    Snapshot,
    State,
    Stimulus,
    Stress,
    Subscribe,
    append_frame,
    encode_frame,
    probe_id,
)

log = logging.getLogger(__name__)

#: Environment variable holding the server's token.
TOKEN_ENV = "ENGS_TOKEN"
#: Shortest token accepted for a non-loopback bind.
MIN_REMOTE_TOKEN = 16
_CR = 0x0D
unpack_header = HEADER.unpack_from
#: How long a connection closed after a final error keeps draining its input.
LINGER_S = 1.0


Limits = SignalsConfig
"""The server's limits and timeouts are the ``[signals]`` section's (one definition, with
its constraints, in :mod:`engs.shared.config`; defaults in docs/signals.md). Tests and
benches build one with only the limits they change: ``Limits(max_connections=2)``."""


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


class _Subscription:
    __slots__ = ("dropped", "handle", "id", "n", "next_t", "period", "queue")

    def __init__(self, id: int | str | None, hz: float, now: float) -> None:
        self.id = id
        self.period = 1.0 / hz
        self.next_t = now
        self.n = 0
        self.dropped = 0
        self.handle: asyncio.Handle | None = None
        self.queue: deque[tuple[bool, bytes]] = deque()


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
        self.inbox = inbox
        self.counters = inbox.counters
        self.handler = handler
        self.limits = limits if limits is not None else Limits()
        self.stats = ServerStats()
        self.unix_path = unix_path
        self._token = token or None
        self._token_b = token.encode() if token else b""
        self._tcp_needs_auth = not is_loopback(self._host) if require_auth is None else require_auth
        self._areas = AreaNames(areas) if areas is not None else None
        self._seq = 0
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
        _clear_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The socket file takes its mode from the umask at bind(); 0177 makes it
            # 0600 from birth (no window where others could connect), chmod confirms.
            old = os.umask(0o177)
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            self._unix_ino = os.stat(path).st_ino
            return await loop.create_unix_server(
                lambda: _Conn(self, False),
                sock=sock,
                backlog=min(self.limits.max_connections * 2, 4096),
            )
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot bind the signal Unix socket {path}: {exc.strerror or exc} "
                f"- at `$.signals.unix_path`"
            ) from None

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
            if c.sub is None or c.closing or c.framing is None:
                continue
            frame = frames.get(c.framing)
            if frame is None:
                frame = frames[c.framing] = encode_frame(event, c.framing)
            c.push_stream(frame, snapshot=False)
            n += 1
        self.stats.events_published += 1
        return n

    # -- internals ------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

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
            if c.framing is None and now - c.last_rx > first:
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


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(
            f"signal Unix socket path {path} exists and is not a socket; refusing to "
            f"replace it - at `$.signals.unix_path`"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale signal socket %s (no server behind it)", path)
        os.unlink(path)
        return
    except OSError as exc:
        raise ConfigError(
            f"signal Unix socket {path} exists and cannot be probed: {exc.strerror or exc}"
        ) from None
    finally:
        probe.close()
    raise ConfigError(
        f"signal Unix socket {path} is in use by a running server - at `$.signals.unix_path`"
    )


class _Conn(asyncio.Protocol):
    """One client connection. Every method runs on the loop and returns promptly."""

    def __init__(self, srv: SignalServer, needs_auth: bool) -> None:
        self.srv = srv
        self.needs_auth = needs_auth
        self.authed = False
        self.t: asyncio.Transport | None = None
        self.framing: Framing | None = None
        self.closing = False
        self.sub: _Subscription | None = None
        self.last_rx = 0.0
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._t_rx = 0
        self._tokens = float(srv.limits.burst)
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
        srv = self.srv
        assert srv._loop is not None
        self.last_rx = self._t_bucket = srv._loop.time()
        t.set_write_buffer_limits(high=srv.limits.output_high)
        while srv._conns and len(srv._conns) >= srv.limits.max_connections:
            srv._make_room()
        srv._conns[self] = None
        srv.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        srv = self.srv
        assert srv._loop is not None
        self.last_rx = srv._loop.time()
        srv._conns.move_to_end(self)  # now the most recently heard from
        self._t_rx = time.monotonic_ns()
        if self.framing is None:
            self.framing = "json" if data[:1] == b"{" else "msgpack"
        self._buf = self._buf[self._pos :] + data if self._pos < len(self._buf) else data
        self._pos = 0
        if not self._deferred:
            self._process()

    def eof_received(self) -> bool:
        # Keep the transport half-open until every buffered request is answered. A
        # JSON line without its final newline still counts (``echo -n ... | nc``).
        self._eof = True
        if self.closing:
            return False
        if self.framing == "json" and self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + b"\n"
            self._pos = 0
        if not self._deferred and not self.closing:
            self._process()
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()
        if self._stall is None and self.srv._loop is not None:
            self._stall = self.srv._loop.call_later(self.srv.limits.write_timeout_s, self._stalled)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self._update_reading()
        self._flush_stream()
        if not self._deferred and not self.closing and self._has_frame():
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.srv._conns.pop(self, None)
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._end_subscription()
        self._buf = b""

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
        self.srv._conns.pop(self, None)
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
        log.debug("signal client not reading for %.1f s: aborted", self.srv.limits.write_timeout_s)
        self.abort()

    def _end_subscription(self) -> None:
        if self.sub is not None:
            if self.sub.handle is not None:
                self.sub.handle.cancel()
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
        if self.closing or self._write_paused:
            return  # resume_writing() comes back here: no new replies while blocked
        srv = self.srv
        lim = srv.limits
        assert srv._loop is not None
        budget = srv._take_budget()
        now = srv._loop.time()
        self._tokens = min(float(lim.burst), self._tokens + (now - self._t_bucket) * lim.rate)
        self._t_bucket = now
        t_rx = self._t_rx
        buf, pos, end = self._buf, self._pos, len(self._buf)
        view = memoryview(buf)
        json_lines = self.framing == "json"
        max_frame = lim.max_frame
        out = bytearray()
        n = 0
        close = False
        while n < budget:
            if json_lines:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if end - pos > max_frame + 1:  # + 1: a "\r" may end a full line
                        self._too_large(out, f"line longer than {max_frame} bytes")
                        close = True
                    break
                start = pos
                stop = nl - 1 if nl > start and buf[nl - 1] == _CR else nl
                if stop - start > max_frame:
                    self._too_large(out, f"line of {stop - start} bytes exceeds {max_frame}")
                    close = True
                    break
                pos = nl + 1
                n += 1
                if stop == start:
                    continue  # a blank line is not a request
                frame = view[start:stop]
            else:
                if end - pos < HEADER_BYTES:
                    break
                (size,) = unpack_header(buf, pos)
                if size > max_frame:
                    # Announced, not received: nothing of it is buffered or allocated.
                    self._too_large(out, f"frame of {size} bytes exceeds {max_frame}")
                    close = True
                    break
                if end - pos - HEADER_BYTES < size:
                    break
                frame = view[pos + HEADER_BYTES : pos + HEADER_BYTES + size]
                pos += HEADER_BYTES + size
                n += 1
            if self._handle(frame, t_rx, out):
                close = True
                break
        if pos == end:
            self._buf, self._pos = b"", 0
        else:
            self._pos = pos
        srv._budget -= n
        if out:
            self._write(out)
        if close:
            self.close_after_reply()
            return
        if self.closing:
            return
        if n >= budget and self._has_frame():
            self._deferred = True
            srv._loop.call_soon(self._process)
        elif self._eof:
            self.close()
            return
        self._update_reading()

    def _has_frame(self) -> bool:
        buf, pos = self._buf, self._pos
        if self.framing == "json":
            return buf.find(b"\n", pos) >= 0 or len(buf) - pos > self.srv.limits.max_frame + 1
        return len(buf) - pos >= HEADER_BYTES

    def _handle(self, frame: memoryview, t_rx: int, out: bytearray) -> bool:
        """Decode and act on one request, appending its reply to ``out``. True: close
        the connection after writing ``out``."""
        srv = self.srv
        framing: Framing = "json" if self.framing == "json" else "msgpack"
        if self._tokens < 1.0:
            lim = srv.limits
            self._error(
                out,
                probe_id(frame, framing),
                "rate_limited",
                f"more than {lim.rate:g} requests/s on this connection (burst {lim.burst})",
            )
            return False
        self._tokens -= 1.0
        try:
            msg = (REQUEST_JSON if framing == "json" else REQUEST_MSGPACK).decode(frame)
        except msgspec.ValidationError as exc:
            self._error(out, probe_id(frame, framing), "invalid", str(exc))
            return False
        except msgspec.DecodeError as exc:
            self._error(out, probe_id(frame, framing), "decode", str(exc))
            return False
        except RecursionError:
            self._error(out, None, "decode", "nesting too deep")
            return False
        ti = TYPE_INDEX.get(type(msg))
        if ti is not None:
            srv.counters.count_received(ti)
        if self.needs_auth and not self.authed and not isinstance(msg, Auth):
            self._error(
                out,
                msg.id,
                "unauthorized",
                'this socket is not loopback: authenticate first with {"type":"auth","token":...}',
            )
            return False
        match msg:
            case Reward() | Stress() | Novelty() | Dmn() | GoalComplete() | SecurityAlert():
                assert ti is not None
                self._enqueue(msg, t_rx, out)
            case Stimulus(area=area):
                assert ti is not None
                try:
                    if srv._areas is not None:
                        srv._areas.index(area, at="$.area")
                except ValueError as exc:
                    self._error(out, msg.id, "invalid", str(exc))
                else:
                    self._enqueue(msg, t_rx, out)
            case Auth(token=token):
                return self._auth(msg.id, token, out)
            case Reserve() | Commit() | Abort() | State() | Subscribe() | Interrupt() | Clear():
                self._request(msg, ti, out)
        return False

    def _enqueue(
        self,
        msg: Reward | Stress | Novelty | Stimulus | Dmn | GoalComplete | SecurityAlert,
        t_rx: int,
        out: bytearray,
    ) -> None:
        srv = self.srv
        seq = srv._seq + 1
        if not srv.inbox.try_put(Accepted(seq, t_rx, msg)):
            self._error(
                out,
                msg.id,
                "overloaded",
                f"the inbox is full ({srv.inbox.capacity} signals wait for the control "
                f"cycle); nothing was applied, retry later",
            )
            return
        srv._seq = seq
        assert self.framing is not None
        append_frame(Ack(id=msg.id, seq=seq), self.framing, out)

    def _auth(self, id: int | str | None, token: str, out: bytearray) -> bool:
        srv = self.srv
        if srv._token is None:
            self._error(
                out, id, "unauthorized", f"this server has no token ({TOKEN_ENV} is not set)"
            )
            return False
        if not hmac.compare_digest(token.encode(), srv._token_b):
            self._error(out, id, "unauthorized", "wrong token; closing the connection")
            srv.stats.auth_closed += 1
            return True
        self.authed = True
        assert self.framing is not None
        append_frame(Ack(id=id, seq=srv._next_seq()), self.framing, out)
        return False

    def _request(
        self,
        msg: Reserve | Commit | Abort | State | Subscribe | Interrupt | Clear,
        ti: int | None,
        out: bytearray,
    ) -> None:
        """Request/response messages: answered by the orchestrator's handler now."""
        srv = self.srv
        h = srv.handler
        tag = TAG[type(msg)]
        assert ti is not None and self.framing is not None
        if isinstance(msg, Interrupt | Clear) and not self.authed:
            why = (
                'send {"type":"auth","token":...} first'
                if srv._token is not None
                else f"this server has no token ({TOKEN_ENV} is not set)"
            )
            self._error(out, msg.id, "unauthorized", f"`{tag}` is privileged: {why}")
            return
        if h is None:
            self._error(out, msg.id, "invalid", f"`{tag}` needs the orchestrator; none is attached")
            return
        lock: int | None = None
        state = None
        match msg:
            case Reserve(cost=cost, task=task):
                lock = h.try_reserve(cost, task)
                if lock is None:
                    self._error(
                        out,
                        msg.id,
                        "metabolic_denied",
                        f"not enough ATP to reserve {cost:g} for task {task!r}",
                    )
                    return
            case Commit(lock=lk) | Abort(lock=lk):
                done = h.commit(lk) if isinstance(msg, Commit) else h.abort(lk)
                if not done:
                    self._error(
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
                self._subscribe(msg.id, hz)
            case Interrupt(cause=cause):
                h.raise_interrupt(Cause[cause.upper()])
            case Clear(cause=cause):
                h.clear_interrupt(Cause[cause.upper()])
        srv.counters.count_applied(ti)
        append_frame(Ack(id=msg.id, seq=srv._next_seq(), lock=lock, state=state), self.framing, out)

    def _error(self, out: bytearray, id: int | str | None, reason: RejectReason, text: str) -> None:
        self.srv.counters.count_rejected(reason)
        append_frame(Error(id=id, reason=reason, error=text), self.framing or "msgpack", out)

    def _too_large(self, out: bytearray, text: str) -> None:
        self.srv.stats.oversize_closed += 1
        self._error(out, None, "too_large", f"{text}; closing the connection")

    # -- output ---------------------------------------------------------------

    def _write(self, data: bytes | bytearray) -> None:
        t = self.t
        if t is None or t.is_closing():
            return
        t.write(data)
        if t.get_write_buffer_size() > self.srv.limits.max_output:
            self.srv.stats.slow_closed += 1
            self.abort()

    # -- subscriptions --------------------------------------------------------

    def _subscribe(self, id: int | str | None, hz: float) -> None:
        loop = self.srv._loop
        assert loop is not None
        if self.sub is not None:  # a second subscribe changes the rate
            self.sub.id = id
            self.sub.period = 1.0 / hz
            return
        self.sub = _Subscription(id, hz, loop.time())
        # The first snapshot goes out in the next iteration, after this ack.
        self.sub.handle = loop.call_soon(self._sub_tick)

    def _sub_tick(self) -> None:
        sub, srv = self.sub, self.srv
        if sub is None or self.closing or srv.handler is None or self.framing is None:
            return
        loop = srv._loop
        assert loop is not None
        sub.n += 1
        snap = Snapshot(id=sub.id, n=sub.n, dropped=sub.dropped, state=srv.handler.snapshot())
        self.push_stream(encode_frame(snap, self.framing), snapshot=True)
        if self.sub is not sub:  # aborted while pushing
            return
        sub.next_t += sub.period
        now = loop.time()
        if sub.next_t <= now:  # fell behind (or the loop was busy): skip, never burst
            sub.next_t = now + sub.period
        sub.handle = loop.call_at(sub.next_t, self._sub_tick)

    def push_stream(self, frame: bytes, *, snapshot: bool) -> None:
        """Queue one stream message; drop the oldest snapshot when the queue is full."""
        sub = self.sub
        if sub is None:
            return
        q = sub.queue
        if len(q) >= self.srv.limits.subscriber_queue:
            for i, (is_snap, _) in enumerate(q):
                if is_snap:
                    del q[i]
                    break
            else:
                q.popleft()
            sub.dropped += 1
            self.srv.stats.subscriber_drops += 1
        q.append((snapshot, frame))
        self._flush_stream()

    def _flush_stream(self) -> None:
        sub = self.sub
        while sub is not None and sub.queue and not self._write_paused and not self.closing:
            self._write(sub.queue.popleft()[1])
            sub = self.sub
