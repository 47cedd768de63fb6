"""``engs bench signals`` (ingest part): how many signals per second the signal socket
accepts, end to end, into a control cycle that drains them.

Set-up, per framing (msgpack and JSON lines): a real :class:`SignalServer` on
127.0.0.1 (port 0) on a uvloop loop in this process, a real :class:`SignalInbox`
drained by a real control cycle at ``cycle_hz`` (``loop.call_at`` on absolute
deadlines; it checks that signal ids arrive strictly increasing and sums the reward
values, as the dynamics would), and ``clients`` forked client processes, each
pipelining ``per_client`` ``reward`` signals in windows of ``window`` requests (send a
window, read its replies, repeat) over its own connection.

Reported: signals/s (acknowledged signals over the clients' wall time, first send
to last ack), the server's CPU time per signal (this process's CPU time, which holds
the server and the cycle but not the clients), and the control cycle's lateness
(start minus deadline) while it ran beside the flood, max and p99. The run fails
(exit 1) unless received == acknowledged == applied and no signal was lost.

Per-connection rate limits are lifted for the run (they would measure the limit,
not the server); every other limit is the default. Timings belong here, never in
pass/fail tests.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import socket
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import uvloop

from engs.services.orchestrator.inbox import SignalInbox
from engs.services.orchestrator.server import Limits, SignalServer
from engs.shared.config import Config
from engs.shared.messages import Ack, FrameSplitter, Framing, Reward, decode_reply, encode_frame
from engs.shared.stats_schema import SIGNAL_TYPES

_ctx = mp.get_context("fork")
_REWARD = SIGNAL_TYPES.index("reward")


@dataclass(frozen=True)
class IngestResult:
    framing: str
    clients: int
    window: int
    signals: int
    """Signals sent (clients x per_client)."""
    acked: int
    received: int
    applied: int
    rejected: int
    seconds: float
    """Clients' wall time: first send to last ack."""
    signals_per_s: float
    server_cpu_us_per_signal: float
    drained: int
    """Signals the control cycle took from the inbox."""
    out_of_order: int
    """Signals drained with an id not above the previous one (must be 0)."""
    cycles: int
    cycle_lateness_max_ms: float
    cycle_lateness_p99_ms: float

    @property
    def exact(self) -> bool:
        counts = (self.acked, self.received, self.applied, self.drained)
        return (
            all(n == self.signals for n in counts) and not self.rejected and not self.out_of_order
        )


def _client(framing: Framing, port: int, n: int, window: int, go: Any, conn: Connection) -> None:
    """One client process: pipeline ``n`` rewards in windows; report acks and times."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frames = [encode_frame(Reward(value=((i % 200) - 100) / 100), framing) for i in range(window)]
    full = b"".join(frames)
    split = FrameSplitter(framing)
    acked = errors = sent = 0
    go.wait()
    t0 = time.perf_counter_ns()
    while sent < n:
        k = min(window, n - sent)
        sock.sendall(full if k == window else b"".join(frames[:k]))
        got = 0
        while got < k:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the server closed the connection")
            split.feed(data)
            while (frame := split.next()) is not None:
                got += 1
                if isinstance(decode_reply(frame, framing), Ack):
                    acked += 1
                else:
                    errors += 1
        sent += k
    t1 = time.perf_counter_ns()
    sock.close()
    conn.send((acked, errors, t0, t1))
    conn.close()


class _DrainCycle:
    """A control cycle reduced to its signal handling: drain, check order, apply."""

    def __init__(self, loop: asyncio.AbstractEventLoop, inbox: SignalInbox, hz: float) -> None:
        self.loop = loop
        self.inbox = inbox
        self.period_ns = int(1e9 / hz)
        self.next_ns = time.monotonic_ns() + self.period_ns
        self.lateness_ns: list[int] = []
        self.last_seq = 0
        self.reward_sum = 0.0
        self.drained = 0
        self.out_of_order = 0
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        delay = (self.next_ns - time.monotonic_ns()) / 1e9
        self.handle = self.loop.call_at(self.loop.time() + max(delay, 0.0), self._cycle)

    def _cycle(self) -> None:
        self.lateness_ns.append(time.monotonic_ns() - self.next_ns)
        self._apply()
        self.next_ns += self.period_ns
        self._schedule()

    def _apply(self) -> None:
        for item in self.inbox.drain():
            if item.seq <= self.last_seq:
                self.out_of_order += 1
            self.last_seq = item.seq
            if isinstance(item.signal, Reward):
                self.reward_sum += item.signal.value
            self.drained += 1

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self._apply()


def measure_ingest(
    framing: Framing,
    *,
    clients: int = 4,
    per_client: int = 50_000,
    window: int = 256,
    cycle_hz: float = 100.0,
) -> IngestResult:
    """One ingest run (see the module docstring). Runs its own uvloop loop here."""
    loop = uvloop.new_event_loop()
    inbox = SignalInbox(capacity=1 << 20)
    limits = Limits(rate=1e9, burst=1 << 30, max_connections=max(64, clients))
    server = SignalServer(inbox, None, addr=("127.0.0.1", 0), limits=limits)
    procs: list[Any] = []
    try:
        loop.run_until_complete(server.start())
        port = server.tcp_address[1]
        go = _ctx.Event()
        pipes = []
        for _ in range(clients):
            parent, child = _ctx.Pipe(duplex=False)
            p = _ctx.Process(
                target=_client, args=(framing, port, per_client, window, go, child), daemon=True
            )
            p.start()
            child.close()
            procs.append(p)
            pipes.append(parent)
        cycle = _DrainCycle(loop, inbox, cycle_hz)
        results: list[tuple[int, int, int, int]] = []

        async def drive() -> None:
            cycle.start()
            go.set()
            waiting = list(pipes)
            while waiting:
                for c in list(waiting):
                    if c.poll():
                        results.append(c.recv())
                        waiting.remove(c)
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a bench client failed")
                await asyncio.sleep(0.01)
            # One more cycle so everything acknowledged has been applied.
            await asyncio.sleep(2 * cycle.period_ns / 1e9)
            cycle.stop()

        cpu0 = time.process_time()
        loop.run_until_complete(drive())
        cpu = time.process_time() - cpu0
        loop.run_until_complete(server.stop())
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        loop.close()
    acked = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    t0 = min(r[2] for r in results)
    t1 = max(r[3] for r in results)
    seconds = (t1 - t0) / 1e9
    late = sorted(cycle.lateness_ns)
    c = inbox.counters
    return IngestResult(
        framing=framing,
        clients=clients,
        window=window,
        signals=clients * per_client,
        acked=acked,
        received=c.received[_REWARD],
        applied=c.applied[_REWARD],
        rejected=sum(c.rejected) + errors,
        seconds=seconds,
        signals_per_s=acked / seconds if seconds > 0 else 0.0,
        server_cpu_us_per_signal=cpu / max(acked, 1) * 1e6,
        drained=cycle.drained,
        out_of_order=cycle.out_of_order,
        cycles=len(late),
        cycle_lateness_max_ms=late[-1] / 1e6 if late else 0.0,
        cycle_lateness_p99_ms=late[min(len(late) - 1, int(len(late) * 0.99))] / 1e6
        if late
        else 0.0,
    )


def measure_all(*, quick: bool = False) -> list[IngestResult]:
    """Both framings with the standard settings (``quick``: a short run)."""
    per_client = 5_000 if quick else 100_000
    return [measure_ingest(f, clients=4, per_client=per_client) for f in ("msgpack", "json")]


def format_table(results: list[IngestResult]) -> str:
    head = (
        f"{'framing':<8} {'clients':>7} {'signals':>8} {'signals/s':>10} "
        f"{'srv µs/sig':>10} {'cycle late max':>14} {'p99':>7}  exact"
    )
    rows = [
        f"{r.framing:<8} {r.clients:>7} {r.signals:>8} {r.signals_per_s:>10.0f} "
        f"{r.server_cpu_us_per_signal:>10.2f} {r.cycle_lateness_max_ms:>11.2f} ms "
        f"{r.cycle_lateness_p99_ms:>4.2f} ms  {'yes' if r.exact else 'NO'}"
        for r in results
    ]
    return "\n".join([head, *rows])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags of ``engs bench signals``."""
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Print the ingest and live results; 1 if any run lost or rejected a signal."""
    from engs.services.bench.signals_live import measure_live  # noqa: PLC0415

    json_out, quick = args.json, args.quick
    results = measure_all(quick=quick)
    live = measure_live(seconds=1.0 if quick else 10.0, rate_hz=500.0)
    if json_out:
        doc = {
            "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                     "machine": platform.machine()},
            "ingest": [asdict(r) | {"exact": r.exact} for r in results],
            "live": live,
        }  # fmt: skip
        print(msgspec.json.encode(doc).decode())
    else:
        print(f"signal ingest, {os.cpu_count()} CPUs, window {results[0].window} per client")
        print(format_table(results))
        lat = live["latency_ms"]
        print(
            f"live signal -> physics-applied latency ({live['measured']} of "
            f"{live['signals']} signals at {live['rate_hz']:.0f}/s, real physics and "
            f"orchestrator): p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
            f"max {lat['max']:.2f} ms (target p99 <= 12 ms: "
            f"{'met' if lat['p99'] <= 12 else 'MISSED'})"
        )
        best = max(r.signals_per_s for r in results)
        print(f"ingest target >= 100000 signals/s: {'met' if best >= 1e5 else 'MISSED'}")
    return 0 if all(r.exact for r in results) and live["measured"] == live["signals"] else 1
