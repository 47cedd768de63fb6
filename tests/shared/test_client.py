"""The signal clients and ``engs send`` against a real server (the harness of
tests/services/orchestrator/test_server.py: a real SignalServer on a uvloop loop in a
thread, a real draining cycle, and the LedgerHandler fixture)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import pytest
import uvloop

from engs.services.cli.send import add_arguments, run
from engs.services.orchestrator.server import Limits
from engs.shared.client import AsyncSignalClient, SignalClient
from engs.shared.config import Config, SignalsConfig
from engs.shared.errors import SignalConnectionError, SignalRejected
from engs.shared.layout import Cause
from engs.shared.messages import (
    Ack,
    CuriosityGoal,
    Error,
    Framing,
    Request,
    Reward,
    Snapshot,
    Stress,
)
from tests.services.orchestrator.test_server import TOKEN, ServerThread, eventually


@pytest.fixture
def srv() -> Iterator[ServerThread]:
    with ServerThread(token=TOKEN, areas=["sensory", "motor"]) as s:
        yield s


def _closed_port() -> int:
    """A port nothing listens on (bound, never listened, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


# ---------------------------------------------------------------------------
# Blocking client


@pytest.mark.parametrize("framing", ["msgpack", "json"])
def test_every_method_is_acknowledged_and_applied_once(srv: ServerThread, framing: Framing) -> None:
    with SignalClient(srv.addr, framing=framing) as c:
        acks = [
            c.reward(0.7, id=1),
            c.stress(0.3, id="s"),
            c.novelty(0.9),
            c.stimulus("motor", 1.5),
            c.dmn(
                coherence=0.4,
                utility=-0.1,
                uncertainty=0.3,
                safety_penalty=0.0,
                calibration_gap=0.2,
                node="n7",
            ),
            c.goal_complete(),
            c.security_alert(id=7),
        ]
        assert [a.id for a in acks] == [1, "s", None, None, None, None, 7]
        seqs = [a.seq for a in acks]
        assert seqs == sorted(set(seqs))
        srv.wait_cycles()
        state = c.state()
        assert state.signal_id == seqs[-1]  # the cycle applied every one of them
        assert state.dopamine == pytest.approx(0.5 + 0.1 * 0.7)
    applied = srv.call(
        lambda: [(a.seq, msgspec.to_builtins(a.signal)["type"]) for a in srv.applied]
    )
    assert applied == list(
        zip(
            seqs,
            ["reward", "stress", "novelty", "stimulus", "dmn", "goal_complete", "security_alert"],
            strict=True,
        )
    )


def test_error_replies_raise_with_reason_message_and_id(srv: ServerThread) -> None:
    with SignalClient(srv.addr) as c:
        with pytest.raises(SignalRejected) as info:
            c.request(Reward(value=2.0, id=41))  # Structs do not validate on creation
        assert (info.value.reason, info.value.error, info.value.id) == (
            "invalid",
            "Expected `float` <= 1.0 - at `$.value`",
            41,
        )
        assert str(info.value) == "invalid: Expected `float` <= 1.0 - at `$.value`"
        with pytest.raises(SignalRejected, match="unknown area 'visual'"):
            c.stimulus("visual", 1.0)
        assert c.stress(0.1).seq > 0  # the connection is still fine
    srv.wait_cycles()
    assert srv.held() == (0, 1)


def test_reserve_commits_on_success_and_aborts_on_exception(srv: ServerThread) -> None:
    with SignalClient(srv.addr) as c:
        with c.reserve(30, "ingest") as res:
            assert res.lock == 1
            assert c.state().open_locks == 1
        assert c.state().atp_reserve == 70.0 and c.state().open_locks == 0
        with pytest.raises(RuntimeError, match="task failed"), c.reserve(20, "crawl"):
            raise RuntimeError("task failed")
        assert c.state().atp_reserve == 70.0  # refunded
        with pytest.raises(SignalRejected) as info:
            c.reserve(1000, "self_improvement")
        assert info.value.reason == "metabolic_denied"
        assert info.value.error == "not enough ATP to reserve 1000 for task 'self_improvement'"
        res = c.reserve(5, "manual")
        res.commit()
        with pytest.raises(SignalRejected) as again:
            c.commit(res.lock)
        assert again.value.reason == "unknown_lock"


def test_send_many_pipelines_and_returns_errors_in_place(srv: ServerThread) -> None:
    msgs: list[Request] = [Reward(value=0.01 * (i % 50), id=i) for i in range(1000)]
    msgs[500] = Stress(value=5.0, id=500)
    with SignalClient(srv.addr) as c:
        replies = c.send_many(msgs, window=128)
    assert [r.id for r in replies] == list(range(1000))
    assert isinstance(replies[500], Error) and replies[500].reason == "invalid"
    acked = [r.seq for r in replies if isinstance(r, Ack)]
    assert len(acked) == 999 and acked == sorted(acked)
    srv.wait_cycles()
    assert srv.held() == (0, 999)


def test_subscribe_streams_snapshots_and_events(srv: ServerThread) -> None:
    with SignalClient(srv.addr) as c:
        stream = c.subscribe(50, id="watch")
        first = next(stream)
        assert isinstance(first, Snapshot) and first.n == 1 and first.id == "watch"
        goal = CuriosityGoal(area="motor", boredom=0.87, t_ns=5)
        assert srv.call(srv.server.publish, goal) == 1
        items = [next(stream) for _ in range(10)]
        assert goal in items
        snaps = [i for i in items if isinstance(i, Snapshot)]
        assert [s.n for s in snaps] == list(range(2, 2 + len(snaps)))
        stream.close()
    eventually(lambda: srv.call(lambda: srv.server.connections) == 0)


def test_privileged_requests_need_the_token(srv: ServerThread) -> None:
    with SignalClient(srv.addr) as anon, pytest.raises(SignalRejected) as info:
        anon.interrupt("manual")
    assert info.value.reason == "unauthorized"
    with SignalClient(srv.addr, token=TOKEN) as op:
        op.interrupt("scram", id="op-1")
        assert srv.call(lambda: set(srv.handler.causes)) == {Cause.SCRAM}
        assert op.state().interrupts == ["scram"]
        op.clear("scram")
        assert srv.call(lambda: set(srv.handler.causes)) == set()
    with SignalClient(srv.addr, token="not-the-token") as bad, pytest.raises(SignalRejected) as w:
        bad.reward(0.1)
    assert (w.value.reason, w.value.error) == (
        "unauthorized",
        "wrong token; closing the connection",
    )


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "signals.sock"
    with ServerThread(unix_path=str(path)) as s, SignalClient(unix_path=str(path)) as c:
        assert c.reward(0.2).seq == 1
        s.wait_cycles()
        assert s.held() == (0, 1)


# ---------------------------------------------------------------------------
# Connections: reconnect, bounded retries, lost replies


def test_reconnects_after_the_server_closed_an_idle_connection() -> None:
    with ServerThread(limits=Limits(idle_timeout_s=0.2)) as s, SignalClient(s.addr) as c:
        first = c.reward(0.1)
        eventually(lambda: s.server.stats.idle_closed == 1)
        second = c.reward(0.2)  # noticed before sending, on a fresh connection
        assert second.seq == first.seq + 1
        assert s.server.stats.connections == 2
        s.wait_cycles()
        assert s.held() == (0, 2)


def test_connect_retries_are_bounded() -> None:
    port = _closed_port()
    c = SignalClient(f"127.0.0.1:{port}", connect_attempts=3, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(SignalConnectionError) as info:
        c.reward(0.5)
    assert time.monotonic() - t0 < 2.0
    assert str(info.value).startswith(
        f"cannot reach the signal socket at 127.0.0.1:{port} after 3 attempt(s): "
    )
    assert str(info.value).endswith("(is the orchestrator running?)")


def test_a_connection_lost_after_sending_is_reported_and_not_resent() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    received: list[bytes] = []

    def accept_read_close() -> None:
        conn, _ = listener.accept()
        received.append(conn.recv(4096))
        conn.close()  # no reply: did the server apply it? the client cannot know

    t = threading.Thread(target=accept_read_close)
    t.start()
    port = listener.getsockname()[1]
    with SignalClient(f"127.0.0.1:{port}") as c, pytest.raises(SignalConnectionError) as info:
        c.reward(0.5)
    t.join(5)
    listener.close()
    assert len(received) == 1 and received[0].endswith(msgspec.msgpack.encode(Reward(value=0.5)))
    assert "lost after sending `reward`" in str(info.value)
    assert str(info.value).endswith("it may or may not have been applied")


# ---------------------------------------------------------------------------
# asyncio client


def test_async_client(srv: ServerThread) -> None:
    async def main() -> None:
        async with AsyncSignalClient(srv.addr, token=TOKEN) as c:
            acks = await asyncio.gather(*(c.reward(0.001 * i, id=i) for i in range(200)))
            assert [a.id for a in acks] == list(range(200))
            assert len({a.seq for a in acks}) == 200
            assert (await c.novelty(0.4)).seq > max(a.seq for a in acks)
            replies = await c.send_many([Stress(value=0.2), Stress(value=-1.0)])
            assert isinstance(replies[0], Ack) and isinstance(replies[1], Error)
            with pytest.raises(SignalRejected, match=r"Expected `float` >= 0.0 - at `\$.value`"):
                await c.stress(-0.5)
            async with c.reserve(10, "ingest") as res:
                assert res.lock >= 1
            with pytest.raises(KeyError):
                async with c.reserve(10, "ingest"):
                    raise KeyError("boom")
            held = await c.reserve(25, "later")
            assert (await c.state()).open_locks == 1
            await held.abort()
            snap = await c.state()
            assert snap.atp_reserve == 90.0 and snap.open_locks == 0
            await c.interrupt("panic")
            assert "panic" in (await c.state()).interrupts
            await c.clear("panic")
            got = []
            async for item in c.subscribe(50, id=3):
                got.append(item)
                if len(got) == 3:
                    break
            assert [g.n for g in got if isinstance(g, Snapshot)] == [1, 2, 3]

    uvloop.run(main())
    srv.wait_cycles()
    assert srv.held() == (0, 202)


def test_async_client_reconnects_and_bounds_retries() -> None:
    async def main(addr: str, s: ServerThread) -> None:
        async with AsyncSignalClient(addr) as c:
            await c.reward(0.1)
            eventually(lambda: s.server.stats.idle_closed == 1)
            await asyncio.sleep(0.05)  # the reader task sees the EOF
            await c.reward(0.2)
        dead = AsyncSignalClient(f"127.0.0.1:{_closed_port()}", connect_attempts=2, backoff_s=0.01)
        with pytest.raises(SignalConnectionError, match="after 2 attempt"):
            await dead.reward(0.3)

    with ServerThread(limits=Limits(idle_timeout_s=0.2)) as s:
        uvloop.run(main(s.addr, s))
        assert s.server.stats.connections == 2
        s.wait_cycles()
        assert s.held() == (0, 2)


# ---------------------------------------------------------------------------
# engs send


def _send(cfg: Config, *argv: str) -> int:
    p = argparse.ArgumentParser(prog="engs send")
    add_arguments(p)
    return run(cfg, p.parse_args(argv))


def _send_each(cfg: Config, status: int, sends: Sequence[tuple[Sequence[str], str]]) -> list[str]:
    """``engs send`` with each (argv, line) of ``sends`` in turn, each exiting with
    ``status``; returns the lines, in order, that the sends must have printed."""
    for argv, _ in sends:
        assert _send(cfg, *argv) == status, argv
    return [line for _, line in sends]


@pytest.fixture
def cfg(srv: ServerThread) -> Config:
    return Config(signals=SignalsConfig(addr=srv.addr))


def test_engs_send_acks(cfg: Config, srv: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    dmn = ["--coherence", "0.4", "--utility", "0.2", "--uncertainty", "0.3"]
    acks = _send_each(
        cfg,
        0,
        [
            (["reward", "0.7"], "ack seq=1"),
            (["stress", "0.3", "--id", "5"], "ack seq=2 id=5"),
            (["reserve", "--cost", "5", "--task", "ingest"], "ack seq=3 lock=1"),
            (["commit", "1"], "ack seq=4"),
            (["dmn", *dmn, "--safety-penalty", "0", "--calibration-gap", "0.1"], "ack seq=5"),
            (["stimulus", "2.5", "--area", "sensory"], "ack seq=6"),
        ],
    )
    assert capsys.readouterr().out.splitlines() == acks
    srv.wait_cycles()
    assert _send(cfg, "state", "--json") == 0
    reply = msgspec.json.decode(capsys.readouterr().out)
    assert reply["type"] == "ack" and reply["state"]["signal_id"] == 6
    assert _send(cfg, "subscribe", "50", "--count", "3", "--json") == 0
    lines = [msgspec.json.decode(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["type"] for x in lines] == ["snapshot"] * 3


def test_engs_send_failures(
    cfg: Config,
    srv: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENGS_TOKEN", raising=False)
    refused = _send_each(
        cfg,
        2,
        [
            (["reward", "2"], "engs send: Expected `float` <= 1.0 - at `$.value`"),
            (["dmn", "--coherence", "0.4"], "engs send: Object missing required field `utility`"),
            (
                ["goal_complete", "3"],
                "engs send: `goal_complete` takes no positional value, got '3'",
            ),
            (
                ["interrupt", "manual"],
                "engs send: `interrupt` is privileged: set ENGS_TOKEN to the server's token",
            ),
        ],
    )
    assert capsys.readouterr().err.splitlines() == refused
    assert _send(cfg, "commit", "99", "--id", "7") == 1
    assert capsys.readouterr().err == (
        "engs send: rejected (id 7): unknown_lock: no open lock 99 (never granted, already "
        "committed or aborted, expired or revoked) - at `$.lock`\n"
    )
    assert _send(cfg, "commit", "99", "--json") == 1
    assert msgspec.json.decode(capsys.readouterr().out)["reason"] == "unknown_lock"
    dead = Config(signals=SignalsConfig(addr=f"127.0.0.1:{_closed_port()}"))
    assert _send(dead, "reward", "0.1", "--timeout", "0.5") == 1
    assert "cannot reach the signal socket" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        _send(cfg, "teleport")
    assert usage.value.code == 2
    srv.wait_cycles()
    assert srv.held() == (0, 0)


def test_engs_send_privileged_with_the_token(
    cfg: Config, srv: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGS_TOKEN", TOKEN)
    assert _send(cfg, "interrupt", "manual") == 0
    assert srv.call(lambda: set(srv.handler.causes)) == {Cause.MANUAL}
    assert _send(cfg, "clear", "--cause", "manual") == 0
    assert srv.call(lambda: set(srv.handler.causes)) == set()
    monkeypatch.setenv("ENGS_TOKEN", "wrong-token-wrong-token")
    assert _send(cfg, "interrupt", "manual") == 1
