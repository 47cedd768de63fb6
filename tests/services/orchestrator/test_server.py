"""The signal socket server against real sockets: a real SignalServer on a uvloop loop
in a background thread, a real inbox drained by a 100 Hz cycle, and a small real
handler (``LedgerHandler``: an ATP ledger with locks, a test fixture standing in for
the orchestrator). Hostile input must get an error or an orderly close, leave the
server up, and put nothing in the inbox."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engs.services.orchestrator.inbox import Accepted, SignalCounters, SignalInbox
from engs.services.orchestrator.server import Limits, SignalServer, check_bind
from engs.shared.errors import ConfigError
from engs.shared.layout import Cause, Process
from engs.shared.messages import (
    REQUEST_JSON,
    REQUEST_MSGPACK,
    SIGNAL_CLASSES,
    Ack,
    Auth,
    CuriosityGoal,
    FrameSplitter,
    Interrupt,
    Reward,
    StateSnapshot,
)
from engs.shared.region import Region
from engs.shared.stats import StatsWriter, read_stats
from engs.shared.stats_schema import SIGNAL_TYPES

T = TypeVar("T")
TOKEN = "test-token-0123456789"


class LedgerHandler:
    """Test fixture implementing SignalHandler: an ATP ledger with escrowed locks, the
    interrupt causes raised, and levels the drain cycle updates."""

    def __init__(self, reserve: float = 100.0) -> None:
        self.reserve = reserve
        self.locks: dict[int, float] = {}
        self.last_lock = 0
        self.causes: set[Cause] = set()
        self.dopamine = 0.5
        self.signal_id = 0
        self.cycles = 0

    def try_reserve(self, cost: float, task: str) -> int | None:
        if cost > self.reserve:
            return None
        self.reserve -= cost
        self.last_lock += 1
        self.locks[self.last_lock] = cost
        return self.last_lock

    def commit(self, lock: int) -> bool:
        return self.locks.pop(lock, None) is not None

    def abort(self, lock: int) -> bool:
        cost = self.locks.pop(lock, None)
        if cost is None:
            return False
        self.reserve += cost
        return True

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            seq=self.cycles,
            t_calc_ns=time.monotonic_ns(),
            signal_id=self.signal_id,
            dopamine=self.dopamine,
            serotonin=0.5,
            norepinephrine=0.2,
            atp_ratio=self.reserve / 100.0,
            atp_reserve=self.reserve,
            cortisol=0.1,
            boredom=0.3,
            interrupts=sorted(c.name.lower() for c in self.causes if c.name),
            open_locks=len(self.locks),
        )

    def raise_interrupt(self, cause: Cause) -> None:
        self.causes.add(cause)

    def clear_interrupt(self, cause: Cause) -> None:
        self.causes.discard(cause)


class ServerThread:
    """A real server on its own uvloop loop in a thread, with a draining cycle."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        token: str | None = None,
        unix_path: str | None = None,
        areas: list[str] | None = None,
        capacity: int = 16384,
        counters: SignalCounters | None = None,
        cycle_hz: float | None = 100.0,
        require_auth: bool | None = None,
        handler: bool = True,
    ) -> None:
        self.handler = LedgerHandler()
        self.inbox = SignalInbox(capacity, counters)
        self.server = SignalServer(
            self.inbox,
            self.handler if handler else None,
            addr=("127.0.0.1", 0),
            unix_path=unix_path,
            token=token,
            limits=limits,
            areas=areas,
            require_auth=require_auth,
        )
        self.cycle_hz = cycle_hz
        self.applied: list[Accepted] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="signal-server", daemon=True)
        self._cycle: asyncio.Handle | None = None

    def _run(self) -> None:
        loop = self.loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        if self.cycle_hz:
            self._cycle = loop.call_soon(self._tick, loop.time())
        self._ready.set()
        loop.run_forever()
        if self._cycle is not None:
            self._cycle.cancel()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def _tick(self, deadline: float) -> None:
        items = self.inbox.drain()
        for item in items:
            if isinstance(item.signal, Reward):
                self.handler.dopamine = min(
                    1.0, max(0.0, self.handler.dopamine + 0.1 * item.signal.value)
                )
            self.handler.signal_id = item.seq
        self.applied.extend(items)
        self.handler.cycles += 1
        assert self.loop is not None and self.cycle_hz
        nxt = deadline + 1.0 / self.cycle_hz
        self._cycle = self.loop.call_at(nxt, self._tick, nxt)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        assert not self._thread.is_alive()

    @property
    def port(self) -> int:
        return self.server.tcp_address[1]

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop and return its result."""
        assert self.loop is not None
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(10)

    def wait_cycles(self, n: int = 2) -> None:
        start = self.call(lambda: self.handler.cycles)
        deadline = time.monotonic() + 5
        while self.call(lambda: self.handler.cycles) < start + n:
            assert time.monotonic() < deadline, "the drain cycle stopped"
            time.sleep(0.005)

    def held(self) -> tuple[int, int]:
        """(signals in the inbox, signals applied so far), read on the loop."""
        return self.call(lambda: (len(self.inbox), len(self.applied)))

    def counts(self) -> dict[str, dict[str, int]]:
        return self.call(self.inbox.counters.as_dict)


class Raw:
    """A raw client socket speaking one framing, replies decoded to builtins."""

    def __init__(
        self, port: int, framing: str = "json", *, rcvbuf: int | None = None, timeout: float = 5
    ) -> None:
        self.framing = framing
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.split = FrameSplitter(framing)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_docs(self, *docs: Any) -> None:
        if self.framing == "json":
            self.send(b"".join(msgspec.json.encode(d) + b"\n" for d in docs))
        else:
            self.send(b"".join(_mp_frame(msgspec.msgpack.encode(d)) for d in docs))

    def replies(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:
            frame = self.split.next()
            if frame is not None:
                dec = msgspec.json.decode if self.framing == "json" else msgspec.msgpack.decode
                out.append(dec(frame))
                continue
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"connection closed after {len(out)} of {n} replies")
            self.split.feed(data)
        return out

    def closed_by_server(self, within: float = 5.0) -> bool:
        """True once the server has closed this connection (EOF or reset)."""
        self.sock.settimeout(within)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.split.feed(data)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def _mp_frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@pytest.fixture
def srv() -> Iterator[ServerThread]:
    with ServerThread(token=TOKEN, areas=["sensory", "motor", "limbic"]) as s:
        yield s


def eventually(cond: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def assert_alive(s: ServerThread) -> None:
    """The server still answers a fresh connection."""
    r = Raw(s.port)
    try:
        r.send(b'{"type":"state","id":"alive"}\n')
        (reply,) = r.replies(1)
        assert reply["type"] == "ack" and reply["id"] == "alive"
    finally:
        r.close()


# ---------------------------------------------------------------------------
# Every message type, both framings


ALL_REQUESTS: list[dict[str, Any]] = [
    {"type": "reward", "value": 0.7, "id": 1},
    {"type": "stress", "value": 0.3, "id": "two"},
    {"type": "novelty", "entropy": 0.9},
    {"type": "stimulus", "area": "motor", "amplitude": 2.0},
    {
        "type": "dmn",
        "coherence": 0.4,
        "utility": 0.2,
        "uncertainty": 0.3,
        "safety_penalty": 0.0,
        "calibration_gap": 0.1,
        "node": "n1",
    },
    {"type": "goal_complete"},
    {"type": "security_alert"},
    {"type": "reserve", "cost": 5, "task": "ingest", "id": 8},
    {"type": "commit", "lock": 1},
    {"type": "reserve", "cost": 7, "task": "ingest"},
    {"type": "abort", "lock": 2},
    {"type": "state"},
    {"type": "auth", "token": TOKEN},
    {"type": "interrupt", "cause": "manual"},
    {"type": "clear", "cause": "manual"},
    {"type": "interrupt", "cause": "panic"},
]


@pytest.mark.parametrize("framing", ["json", "msgpack"])
def test_every_request_type_is_acknowledged_in_order(srv: ServerThread, framing: str) -> None:
    r = Raw(srv.port, framing)
    r.send_docs(*ALL_REQUESTS)
    replies = r.replies(len(ALL_REQUESTS))
    assert [x["type"] for x in replies] == ["ack"] * len(ALL_REQUESTS)
    assert [x["id"] for x in replies] == [d.get("id") for d in ALL_REQUESTS]
    seqs = [x["seq"] for x in replies]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 1
    assert replies[7]["lock"] == 1 and replies[9]["lock"] == 2
    state = replies[11]["state"]
    assert state["atp_reserve"] == 100.0 - 5 and state["open_locks"] == 0  # 7 refunded
    # Subscribe on its own connection: ack, then snapshots.
    sub = Raw(srv.port, framing)
    sub.send_docs({"type": "subscribe", "hz": 50, "id": "s"})
    ack, *snaps = sub.replies(4)
    assert ack["type"] == "ack" and ack["id"] == "s"
    assert [x["type"] for x in snaps] == ["snapshot"] * 3
    assert [x["n"] for x in snaps] == [1, 2, 3] and all(x["id"] == "s" for x in snaps)
    assert snaps[0]["state"]["interrupts"] == ["panic"]
    sub.close()
    r.close()
    srv.wait_cycles()
    applied = srv.call(lambda: list(srv.applied))
    assert [a.seq for a in applied] == seqs[:7]
    assert [msgspec.to_builtins(a.signal) for a in applied] == ALL_REQUESTS[:7]
    assert srv.handler.causes == {Cause.PANIC}
    counts = srv.counts()
    assert counts["applied"]["reward"] == 1 and counts["applied"]["reserve"] == 2
    assert counts["applied"]["subscribe"] == 1 and counts["applied"]["interrupt"] == 2
    assert "rejected" not in counts or not counts["rejected"]


def test_receipt_time_and_ids_reach_the_cycle(srv: ServerThread) -> None:
    r = Raw(srv.port)
    before = time.monotonic_ns()
    r.send(b'{"type":"reward","value":0.5}\n')
    (ack,) = r.replies(1)
    after = time.monotonic_ns()
    srv.wait_cycles()
    (item,) = srv.call(lambda: list(srv.applied))
    assert item.seq == ack["seq"] and before <= item.t_rx_ns <= after
    assert srv.handler.signal_id == ack["seq"]
    r.close()


# ---------------------------------------------------------------------------
# Errors: exact messages, the id echoed, nothing applied

ERRORS = [
    (
        {"type": "reward", "value": "high", "id": 3},
        "invalid",
        "Expected `float`, got `str` - at `$.value`",
    ),
    ({"type": "reward", "id": 4}, "invalid", "Object missing required field `value`"),
    (
        {"type": "reward", "value": 0.1, "bonus": 1, "id": 5},
        "invalid",
        "Object contains unknown field `bonus`",
    ),
    ({"type": "reward", "value": 3, "id": 6}, "invalid", "Expected `float` <= 1.0 - at `$.value`"),
    ({"type": "teleport", "id": 7}, "invalid", "Invalid value 'teleport' - at `$.type`"),
    (
        {"type": "stimulus", "area": "visual", "amplitude": 1, "id": 8},
        "invalid",
        "unknown area 'visual', expected one of: limbic, motor, sensory - at `$.area`",
    ),
    (
        {"type": "commit", "lock": 99, "id": 9},
        "unknown_lock",
        "no open lock 99 (never granted, already committed or aborted, expired or revoked) "
        "- at `$.lock`",
    ),
    (
        {"type": "reserve", "cost": 500, "task": "big", "id": 10},
        "metabolic_denied",
        "not enough ATP to reserve 500 for task 'big'",
    ),
    (
        {"type": "interrupt", "cause": "scram", "id": 11},
        "unauthorized",
        '`interrupt` is privileged: send {"type":"auth","token":...} first',
    ),
    (
        {"type": "clear", "cause": "scram", "id": 12},
        "unauthorized",
        '`clear` is privileged: send {"type":"auth","token":...} first',
    ),
]


@pytest.mark.parametrize("framing", ["json", "msgpack"])
def test_bad_requests_get_exact_errors_and_apply_nothing(srv: ServerThread, framing: str) -> None:
    r = Raw(srv.port, framing)
    r.send_docs(*(doc for doc, _, _ in ERRORS))
    replies = r.replies(len(ERRORS))
    for (doc, reason, message), reply in zip(ERRORS, replies, strict=True):
        assert reply == {"type": "error", "id": doc["id"], "reason": reason, "error": message}
    # The connection is still usable after all of them.
    r.send_docs({"type": "state", "id": "ok"})
    assert r.replies(1)[0]["type"] == "ack"
    srv.wait_cycles()
    assert srv.held() == (0, 0)
    assert srv.handler.causes == set() and srv.handler.reserve == 100.0
    rejected = srv.counts()["rejected"]
    assert rejected == {"invalid": 6, "unknown_lock": 1, "metabolic_denied": 1, "unauthorized": 2}
    r.close()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"type":"reward","value":NaN}', "JSON is malformed: invalid character (byte 25)"),
        (b'{"type":"reward","value":Infinity}', "JSON is malformed: invalid character (byte 25)"),
        (b'{"type":"reward","value":-Infinity}', "JSON is malformed: invalid character (byte 26)"),
        (b'{"type":"reward","value":1e400}', "Number out of range - at `$.value`"),
        (b'{"type":"reward","value":-1e400}', "Number out of range - at `$.value`"),
        (b'{"type":"reward","value":0.5', "Input data was truncated"),
        (b'{"type":"reward","value":0.5}}', "JSON is malformed: trailing characters (byte 30)"),
        (b"{\xff\xfe garbage \x00\x01}", "JSON is malformed: object keys must be strings (byte 1)"),
    ],
)
def test_non_finite_and_malformed_json(srv: ServerThread, line: bytes, error: str) -> None:
    r = Raw(srv.port)
    r.send(line + b"\n")
    (reply,) = r.replies(1)
    assert reply["type"] == "error" and reply["error"] == error
    assert reply["reason"] == ("invalid" if "range" in error else "decode")
    srv.wait_cycles()
    assert srv.held() == (0, 0)
    r.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_msgpack_values_are_rejected(srv: ServerThread, bad: float) -> None:
    r = Raw(srv.port, "msgpack")
    r.send_docs(
        {"type": "stress", "value": bad, "id": 1},
        {"type": "stimulus", "area": "motor", "amplitude": bad, "id": 2},
        {"type": "reserve", "cost": bad, "task": "t", "id": 3},
        {"type": "subscribe", "hz": bad, "id": 4},
    )
    errors = [x["error"] for x in r.replies(4)]
    if bad > 0:
        assert errors == [
            "Expected `float` <= 1.0 - at `$.value`",
            "Expected `float` <= 10.0 - at `$.amplitude`",
            "Expected `float` <= 1000000.0 - at `$.cost`",
            "Expected `float` <= 100.0 - at `$.hz`",
        ]
    else:  # -Infinity and NaN both fail the lower bound (every comparison with NaN fails)
        assert errors == [
            "Expected `float` >= 0.0 - at `$.value`",
            "Expected `float` >= 0.0 - at `$.amplitude`",
            "Expected `float` > 0.0 - at `$.cost`",
            "Expected `float` > 0.0 - at `$.hz`",
        ]
    srv.wait_cycles()
    assert srv.held() == (0, 0)
    r.close()


def test_deep_nesting_is_refused_with_a_message(srv: ServerThread) -> None:
    depth = 20_000
    nested = b"[" * depth + b"]" * depth
    r = Raw(srv.port)
    r.send(b'{"type":"reward","value":' + nested + b',"id":1}\n')
    r.send(b'{"junk":' + nested + b',"type":"reward","value":0.5,"id":2}\n')
    r.send(b'{"id":3,"junk":' + b"{" * 30_000 + b"\n")
    a, b, c = r.replies(3)
    assert a == {
        "type": "error",
        "id": None,
        "reason": "invalid",
        "error": "Expected `float`, got `array` - at `$.value`",
    }
    # The tag comes after the junk, so msgspec must skip it, and runs out of depth.
    assert b == {"type": "error", "id": None, "reason": "decode", "error": "nesting too deep"}
    assert c["reason"] in ("decode", "invalid")
    m = Raw(srv.port, "msgpack")
    deep = b"\x81\xa4junk" + b"\x91" * 40_000 + b"\x90"
    m.send(_mp_frame(deep))
    (d,) = m.replies(1)
    assert d == {"type": "error", "id": None, "reason": "decode", "error": "nesting too deep"}
    srv.wait_cycles()
    assert srv.held() == (0, 0)
    assert_alive(srv)
    r.close()
    m.close()


# ---------------------------------------------------------------------------
# Framing attacks: oversize, garbage, truncation


def test_a_2gib_length_prefix_is_refused_at_once(srv: ServerThread) -> None:
    r = Raw(srv.port, "msgpack")
    r.send((1 << 31).to_bytes(4, "big"))  # announces 2 GiB, sends nothing more
    (reply,) = r.replies(1)
    assert reply == {
        "type": "error",
        "id": None,
        "reason": "too_large",
        "error": "frame of 2147483648 bytes exceeds 65536; closing the connection",
    }
    assert r.closed_by_server()
    assert srv.server.stats.oversize_closed == 1
    assert_alive(srv)
    r.close()


def test_a_1mb_line_is_refused_and_closed(srv: ServerThread) -> None:
    r = Raw(srv.port)
    sender = threading.Thread(target=_send_ignoring_errors, args=(r.sock, b"{" + b"a" * (1 << 20)))
    sender.start()
    (reply,) = r.replies(1)
    assert reply["reason"] == "too_large"
    assert reply["error"] == "line longer than 65536 bytes; closing the connection"
    assert r.closed_by_server()
    sender.join(10)
    assert_alive(srv)
    assert srv.held() == (0, 0)
    r.close()


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def test_a_line_at_the_limit_is_read(srv: ServerThread) -> None:
    pad = 65536 - len(b'{"type":"state","id":""}')
    line = b'{"type":"state","id":"' + b"x" * pad + b'"}'
    assert len(line) == 65536
    r = Raw(srv.port)
    r.send(line + b"\r\n")  # \r\n endings are accepted
    (reply,) = r.replies(1)
    assert reply["error"] == "Expected `str` of length <= 64 - at `$.id`"
    r.close()


def test_garbage_bytes_get_a_framed_error_and_a_close(srv: ServerThread) -> None:
    r = Raw(srv.port, "msgpack")  # "GET " is not "{": msgpack framing, 1.2 GB announced
    r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    (reply,) = r.replies(1)
    assert reply["reason"] == "too_large"
    assert r.closed_by_server()
    # Garbage inside a well-framed msgpack frame is answered and the stream goes on.
    g = Raw(srv.port, "msgpack")
    g.send(_mp_frame(b"\xc1\xc1\xc1") + _mp_frame(b"") + _mp_frame(b"\x93\x01\x02\x03"))
    assert [x["error"] for x in g.replies(3)] == [
        "MessagePack data is malformed: invalid opcode '\\xc1' (byte 0)",
        "Input data was truncated",
        "Expected `object`, got `array`",
    ]
    srv.wait_cycles()
    assert srv.held() == (0, 0)
    assert_alive(srv)
    r.close()
    g.close()


def test_truncated_frames_are_dropped_with_the_connection() -> None:
    with ServerThread(limits=Limits(idle_timeout_s=0.3)) as s:
        whole = msgspec.msgpack.encode({"type": "reward", "value": 0.5})
        # The client goes away mid-frame: nothing of it is applied.
        a = Raw(s.port, "msgpack")
        a.send(_mp_frame(whole)[:-3])
        a.close()
        # The client stalls mid-frame: closed by the idle timeout, without a reply.
        b = Raw(s.port, "msgpack")
        b.send(_mp_frame(whole)[:6])
        assert b.closed_by_server(within=3)
        assert b.split.next() is None
        c = Raw(s.port)  # a JSON line cut short at EOF is still answered (echo -n | nc)
        c.send(b'{"type":"reward","value":0.25}')
        c.sock.shutdown(socket.SHUT_WR)
        (reply,) = c.replies(1)
        assert reply["type"] == "ack"
        assert c.closed_by_server()
        s.wait_cycles()
        applied = s.call(lambda: [msgspec.to_builtins(x.signal) for x in s.applied])
        assert applied == [{"type": "reward", "value": 0.25}]
        assert s.server.stats.idle_closed >= 1
        b.close()
        c.close()


def _hostile_doc() -> st.SearchStrategy[dict[str, Any]]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
    )
    values = st.one_of(scalars, st.lists(scalars, max_size=3))
    keys = st.sampled_from(
        ["value", "entropy", "area", "amplitude", "cost", "task", "lock", "hz", "cause",
         "id", "coherence", "utility", "uncertainty", "safety_penalty", "calibration_gap",
         "node", "extra"]
    )  # fmt: skip
    tags = st.sampled_from([t for t in SIGNAL_TYPES if t not in ("interrupt", "clear")] + ["x"])
    return st.builds(
        lambda tag, rest: {"type": tag, **rest} if tag != "x" else rest,
        tags,
        st.dictionaries(keys, values, max_size=5),
    )


def _local_verdicts(
    decoder: msgspec.json.Decoder[Any] | msgspec.msgpack.Decoder[Any],
    payloads: list[bytes],
    replies: list[dict[str, Any]],
) -> list[Any]:
    """Check each reply against what ``decoder`` makes of its payload locally (a
    rejection carries the decoder's own message); returns the signals that decode,
    which the server must have queued, in order."""
    expected_signals = []
    for payload, reply in zip(payloads, replies, strict=True):
        try:
            msg = decoder.decode(payload)
        except RecursionError:
            assert reply["error"] == "nesting too deep"
            continue
        except msgspec.ValidationError as exc:
            assert (reply["type"], reply["reason"], reply["error"]) == (
                "error",
                "invalid",
                str(exc),
            )
            continue
        except msgspec.DecodeError as exc:
            assert (reply["type"], reply["reason"], reply["error"]) == ("error", "decode", str(exc))
            continue
        if isinstance(msg, Auth | Interrupt):
            assert reply["type"] == "error"
        elif type(msg) in SIGNAL_CLASSES:
            assert reply["type"] == "ack"
            expected_signals.append(msg)
        else:
            assert reply["type"] in ("ack", "error")
            assert reply.get("reason") in (None, "metabolic_denied", "unknown_lock")
    return expected_signals


def _payloads(
    encode: Callable[[Any], bytes], junk: st.SearchStrategy[bytes]
) -> st.SearchStrategy[list[bytes]]:
    """One to six payloads, each a hostile document encoded by ``encode`` or ``junk``."""
    return st.lists(st.one_of(_hostile_doc().map(encode), junk), min_size=1, max_size=6)


#: The fuzz tests' settings: they share the module's ``fuzz_server``.
_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerThread]:
    with ServerThread(limits=Limits(rate=1e6, burst=1_000_000), cycle_hz=None) as s:
        yield s


@_FUZZ
@given(frames=_payloads(msgspec.msgpack.encode, st.binary(max_size=64)))
def test_fuzzed_frames_get_exactly_the_local_verdict(
    fuzz_server: ServerThread, frames: list[bytes]
) -> None:
    """Every framed payload gets one reply; acked signals are exactly those that
    decode locally, with the same value; rejected ones carry msgspec's own message."""
    s = fuzz_server
    before = s.call(lambda: len(s.inbox))
    r = Raw(s.port, "msgpack")
    r.send(b"".join(_mp_frame(f) for f in frames))
    replies = r.replies(len(frames))
    r.close()
    expected_signals = _local_verdicts(REQUEST_MSGPACK, frames, replies)
    queued = s.call(lambda: [x.signal for x in s.inbox.drain()])
    assert before == 0 and queued == expected_signals


@_FUZZ
@given(
    lines=_payloads(
        msgspec.json.encode, st.binary(max_size=64).map(lambda b: b.replace(b"\n", b""))
    )
)
def test_fuzzed_json_lines_get_exactly_the_local_verdict(
    fuzz_server: ServerThread, lines: list[bytes]
) -> None:
    """JSON lines: one reply per non-blank line (a trailing \\r is dropped), decided
    exactly as the local decoder decides."""
    s = fuzz_server
    r = Raw(s.port, "json")
    r.send(b'{"type":"state"}\n' + b"".join(line + b"\n" for line in lines))
    payloads = [line.removesuffix(b"\r") for line in lines]
    payloads = [p for p in payloads if p]
    replies = r.replies(1 + len(payloads))[1:]
    r.close()
    expected_signals = _local_verdicts(REQUEST_JSON, payloads, replies)
    queued = s.call(lambda: [x.signal for x in s.inbox.drain()])
    assert queued == expected_signals


# ---------------------------------------------------------------------------
# Limits: connections, rate, inbox, idle, slow readers and subscribers


def test_at_the_limit_the_connection_idle_the_longest_makes_room() -> None:
    with ServerThread(limits=Limits(max_connections=3)) as s:
        a, b, c = Raw(s.port), Raw(s.port), Raw(s.port)
        for i, x in enumerate((a, b, c)):  # heard from in the order a, b, c ...
            x.send(b'{"type":"state","id":%d}\n' % i)
            x.replies(1)
        a.send(b'{"type":"state","id":9}\n')  # ... then a again: b is now idle the longest
        a.replies(1)
        d = Raw(s.port)
        d.send(b'{"type":"reward","value":0.5,"id":"d"}\n')
        (reply,) = d.replies(1)
        assert reply["type"] == "ack" and reply["id"] == "d"  # served, not refused
        assert b.closed_by_server()  # quietly: EOF, no reply
        assert b.split.next() is None
        for x, i in ((a, 10), (c, 11), (d, 12)):  # the others are unaffected
            x.send(b'{"type":"state","id":%d}\n' % i)
            assert x.replies(1)[0]["id"] == i
        assert s.server.stats.evicted == 1
        assert s.call(lambda: s.server.connections) == 3
        for x in (a, b, c, d):
            x.close()


def test_subscribers_are_evicted_only_when_nothing_else_is_open() -> None:
    with ServerThread(limits=Limits(max_connections=2)) as s:
        sub = Raw(s.port)
        sub.send(b'{"type":"subscribe","hz":5}\n')
        sub.replies(2)  # ack and the first snapshot
        quiet = Raw(s.port)
        quiet.send(b'{"type":"state"}\n')
        quiet.replies(1)
        new = Raw(s.port)  # the subscriber is idle longer, but `quiet` goes first
        new.send(b'{"type":"state","id":1}\n')
        assert new.replies(1)[0]["id"] == 1
        assert quiet.closed_by_server()
        other = Raw(s.port)  # now only a subscriber and a fresher client are left
        other.send(b'{"type":"state","id":2}\n')
        assert other.replies(1)[0]["id"] == 2
        assert new.closed_by_server()
        assert sub.replies(1)[0]["type"] == "snapshot"  # still streaming
        assert s.server.stats.evicted == 2
        for x in (sub, quiet, new, other):
            x.close()


def test_a_connection_silent_from_the_start_is_closed_at_the_first_byte_deadline() -> None:
    with ServerThread(limits=Limits(first_byte_timeout_s=0.2)) as s:
        silent = Raw(s.port)
        talker = Raw(s.port)
        talker.send(b'{"type":"state"}\n')
        talker.replies(1)
        assert silent.closed_by_server(within=3)
        assert s.server.stats.silent_closed == 1
        time.sleep(0.3)  # well past the deadline: a connection that spoke stays open
        talker.send(b'{"type":"state","id":1}\n')
        assert talker.replies(1)[0]["id"] == 1
        silent.close()
        talker.close()


def test_rate_limit_answers_the_excess_with_errors() -> None:
    with ServerThread(limits=Limits(rate=1.0, burst=5)) as s:
        r = Raw(s.port)
        r.send(b"".join(b'{"type":"reward","value":0.1,"id":%d}\n' % i for i in range(20)))
        replies = r.replies(20)
        acked = [x for x in replies if x["type"] == "ack"]
        limited = [x for x in replies if x["type"] == "error"]
        assert len(acked) == 5 and [x["id"] for x in acked] == [0, 1, 2, 3, 4]
        assert {x["reason"] for x in limited} == {"rate_limited"}
        assert limited[0]["error"] == "more than 1 requests/s on this connection (burst 5)"
        assert limited[0]["id"] == 5  # the id is still echoed
        s.wait_cycles()
        assert s.held() == (0, 5)
        r.close()


def test_a_full_inbox_answers_overloaded_and_never_acks_a_drop() -> None:
    with ServerThread(capacity=3, cycle_hz=None) as s:
        r = Raw(s.port)
        r.send(b"".join(b'{"type":"stress","value":0.5,"id":%d}\n' % i for i in range(5)))
        replies = r.replies(5)
        assert [x["type"] for x in replies] == ["ack"] * 3 + ["error"] * 2
        assert replies[3]["reason"] == "overloaded"
        assert replies[3]["error"] == (
            "the inbox is full (3 signals wait for the control cycle); nothing was applied, "
            "retry later"
        )
        drained = s.call(s.inbox.drain)
        assert [x.seq for x in drained] == [x["seq"] for x in replies[:3]]
        r.send(b'{"type":"stress","value":0.5,"id":9}\n')  # room again
        assert r.replies(1)[0]["type"] == "ack"
        r.close()


def test_idle_connections_are_closed_but_subscribers_are_not() -> None:
    with ServerThread(limits=Limits(idle_timeout_s=0.2)) as s:
        idle = Raw(s.port)
        sub = Raw(s.port)
        sub.send(b'{"type":"subscribe","hz":20}\n')
        assert idle.closed_by_server(within=3)
        assert sub.replies(12)[-1]["type"] == "snapshot"  # > 0.5 s of stream later
        assert s.server.stats.idle_closed == 1
        idle.close()
        sub.close()


def test_a_client_that_never_reads_is_disconnected_without_stalling_anything() -> None:
    limits = Limits(write_timeout_s=0.3, output_high=4096, max_output=1 << 22)
    with ServerThread(limits=limits) as s:
        hog = Raw(s.port, rcvbuf=4096)
        hog.sock.settimeout(0.05)
        burst = b'{"type":"state"}\n' * 500
        cycles0 = s.call(lambda: s.handler.cycles)
        deadline = time.monotonic() + 15
        reset = False
        while time.monotonic() < deadline and not reset:
            try:
                hog.sock.sendall(burst)
            except TimeoutError:
                continue  # its buffers are full: the server stopped reading from it
            except (ConnectionResetError, BrokenPipeError):
                reset = True
            if s.server.stats.slow_closed:
                # Meanwhile another client is served and the cycle kept running.
                assert_alive(s)
        assert s.server.stats.slow_closed == 1
        assert s.call(lambda: s.handler.cycles) > cycles0
        eventually(lambda: s.call(lambda: s.server.connections) == 0)
        assert_alive(s)
        hog.close()


def test_slow_subscribers_drop_oldest_and_publish_never_blocks() -> None:
    limits = Limits(subscriber_queue=4, output_high=1024, write_timeout_s=30)
    with ServerThread(limits=limits) as s:
        sub = Raw(s.port, rcvbuf=4096)
        sub.send(b'{"type":"subscribe","hz":100,"id":"slow"}\n')
        assert sub.replies(1)[0]["type"] == "ack"
        event = CuriosityGoal(area="motor", boredom=0.9, t_ns=1)
        reached = s.call(lambda: [s.server.publish(event) for _ in range(50_000)])
        assert reached == [1] * 50_000
        drops = s.server.stats.subscriber_drops
        assert drops > 0
        # The subscriber is still served once it reads, and learns what it missed.
        deadline = time.monotonic() + 10
        seen_dropped = 0
        while seen_dropped == 0:
            assert time.monotonic() < deadline
            (item,) = sub.replies(1)
            if item["type"] == "snapshot":
                seen_dropped = item["dropped"]
        assert 0 < seen_dropped <= s.server.stats.subscriber_drops
        sub.close()


# ---------------------------------------------------------------------------
# Tokens and privileged messages


def test_non_loopback_bind_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)
    with pytest.raises(ConfigError) as info:
        check_bind("0.0.0.0", None)
    assert str(info.value) == (
        "signal socket: binding '0.0.0.0' (not loopback) requires a token; set ENGS_TOKEN "
        "(at least 16 characters) - at `$.signals.addr`"
    )
    with pytest.raises(ConfigError, match="must be at least 16 characters"):
        check_bind("192.0.2.1", "short")
    check_bind("0.0.0.0", TOKEN)


def test_server_refuses_to_start_on_a_wildcard_without_a_token_before_binding() -> None:
    server = SignalServer(SignalInbox(), LedgerHandler(), addr=("0.0.0.0", 0))
    loop = uvloop.new_event_loop()
    try:
        with pytest.raises(ConfigError, match="requires a token"):
            loop.run_until_complete(server.start())
    finally:
        loop.close()
    assert server.addresses() == []  # nothing was bound


def test_from_config_reads_the_token_from_the_environment() -> None:
    from engs.shared.config import SignalsConfig

    cfg = SignalsConfig(addr="0.0.0.0:7411")
    server = SignalServer.from_config(cfg, SignalInbox(), env={"ENGS_TOKEN": TOKEN})
    assert server._token == TOKEN
    bare = SignalServer.from_config(cfg, SignalInbox(), env={})
    loop = uvloop.new_event_loop()
    try:
        with pytest.raises(ConfigError, match="requires a token"):
            loop.run_until_complete(bare.start())
    finally:
        loop.close()


def test_authentication_when_required() -> None:
    with ServerThread(token=TOKEN, require_auth=True) as s:
        r = Raw(s.port)
        r.send(b'{"type":"reward","value":0.5,"id":1}\n')
        assert r.replies(1)[0] == {
            "type": "error",
            "id": 1,
            "reason": "unauthorized",
            "error": 'this socket is not loopback: authenticate first with {"type":"auth",'
            '"token":...}',
        }
        r.send(b'{"type":"auth","token":"%s","id":2}\n' % TOKEN.encode())
        assert r.replies(1)[0]["type"] == "ack"
        r.send(b'{"type":"reward","value":0.5,"id":3}\n')
        assert r.replies(1)[0]["type"] == "ack"
        wrong = Raw(s.port)
        wrong.send(b'{"type":"auth","token":"guess-guess-guess","id":4}\n')
        wrong.send(b'{"type":"reward","value":0.5}\n')  # never read: the server hung up
        assert wrong.replies(1)[0] == {
            "type": "error",
            "id": 4,
            "reason": "unauthorized",
            "error": "wrong token; closing the connection",
        }
        assert wrong.closed_by_server()
        s.wait_cycles()
        assert s.held() == (0, 1)
        r.close()
        wrong.close()


def test_privileged_messages_need_the_token_even_on_loopback(srv: ServerThread) -> None:
    r = Raw(srv.port)
    r.send(b'{"type":"interrupt","cause":"manual"}\n')
    assert r.replies(1)[0]["reason"] == "unauthorized"
    assert srv.handler.causes == set()
    r.send(
        b'{"type":"auth","token":"%s"}\n{"type":"interrupt","cause":"manual"}\n' % TOKEN.encode()
    )
    assert [x["type"] for x in r.replies(2)] == ["ack", "ack"]
    assert srv.call(lambda: set(srv.handler.causes)) == {Cause.MANUAL}
    r.send(b'{"type":"clear","cause":"manual"}\n')
    assert r.replies(1)[0]["type"] == "ack"
    assert srv.call(lambda: set(srv.handler.causes)) == set()
    r.close()


def test_without_a_token_privileged_messages_are_always_refused() -> None:
    with ServerThread() as s:
        r = Raw(s.port)
        r.send(b'{"type":"auth","token":"anything"}\n{"type":"clear","cause":"panic"}\n')
        assert [x["error"] for x in r.replies(2)] == [
            "this server has no token (ENGS_TOKEN is not set)",
            "`clear` is privileged: this server has no token (ENGS_TOKEN is not set)",
        ]
        r.close()


# ---------------------------------------------------------------------------
# Unix socket


def test_unix_socket_is_private_and_cleaned_up(tmp_path: Path) -> None:
    path = tmp_path / "engs.sock"
    with ServerThread(unix_path=str(path)) as s:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect(str(path))
        c.sendall(b'{"type":"reward","value":0.5,"id":"u"}\n')
        assert msgspec.json.decode(c.recv(4096).split(b"\n")[0])["type"] == "ack"
        c.close()
        assert f"unix:{path}" in s.server.addresses()
        # A second server on the same path is refused: the first one is alive.
        with pytest.raises(ConfigError, match="is in use by a running server"):
            ServerThread(unix_path=str(path)).__enter__()
    assert not path.exists()


def test_stale_unix_socket_is_replaced_but_other_files_are_not(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nothing listens: what a killed server leaves
    with ServerThread(unix_path=str(path)):
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        ServerThread(unix_path=str(path)).__enter__()
    assert path.read_text() == "not a socket"


# ---------------------------------------------------------------------------
# Counters in the orchestrator's stats block


def test_counters_are_written_to_the_orchestrator_stats_block(region: Region) -> None:
    counters = SignalCounters(StatsWriter(region, Process.ORCHESTRATOR))
    with ServerThread(counters=counters) as s:
        r = Raw(s.port)
        r.send(
            b'{"type":"reward","value":0.5}\n{"type":"reward","value":0.25}\n'
            b'{"type":"reward","value":9}\n{"type":"state"}\n{nope\n'
        )
        r.replies(5)
        s.wait_cycles()
        r.close()
    snap = read_stats(region, Process.ORCHESTRATOR)
    assert snap.counter("engs_signals_total", type="reward") == 2  # decoded ones
    assert snap.counter("engs_signals_applied_total", type="reward") == 2
    assert snap.counter("engs_signals_total", type="state") == 1
    assert snap.counter("engs_signals_applied_total", type="state") == 1
    assert snap.counter("engs_signals_rejected_total", reason="invalid") == 1
    assert snap.counter("engs_signals_rejected_total", reason="decode") == 1
    with pytest.raises(ValueError, match="got a writer for physics"):
        SignalCounters(StatsWriter(region, Process.PHYSICS))


# ---------------------------------------------------------------------------
# Load: 10 000 signals/s for 10 s, nothing lost


@pytest.mark.slow
def test_load_10k_signals_per_second_for_10s_loses_nothing() -> None:
    from engs.shared.client import SignalClient

    clients, per_window, windows, period = 4, 25, 1000, 0.01  # 4 x 2500/s x 10 s
    with ServerThread() as s:
        acks: list[list[int]] = [[] for _ in range(clients)]
        failures: list[BaseException] = []

        def produce(k: int) -> None:
            try:
                with SignalClient(s.addr) as c:
                    msgs = [Reward(value=0.001 * k, id=k) for _ in range(per_window)]
                    nxt = time.monotonic()
                    for _ in range(windows):
                        for reply in c.send_many(msgs, window=per_window):
                            assert isinstance(reply, Ack), reply
                            acks[k].append(reply.seq)
                        nxt += period
                        delay = nxt - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures, failures
        s.wait_cycles()
        applied = s.call(lambda: list(s.applied))
        counts = s.counts()
    total = clients * per_window * windows
    acked = sorted(seq for per in acks for seq in per)
    assert len(acked) == total == len(set(acked))
    assert [a.seq for a in applied] == acked  # every ack applied once, in order
    assert counts["received"] == {"reward": total}
    assert counts["applied"] == {"reward": total}
    assert counts.get("rejected", {}) == {}
    per_client = {k: sum(1 for a in applied if a.signal.id == k) for k in range(clients)}
    assert per_client == dict.fromkeys(range(clients), per_window * windows)
