"""``engs bench seqlock``: the control-state path against the usual alternatives.

Measured in one run, on one payload (a NeurochemicalState record of the configured
``max_areas``), each operation timed individually with ``perf_counter_ns``:

* seqlock read (``SeqlockReader.read_latest(out=)``) with a writer in another process
  publishing at full speed (worst case) and at 100 Hz (the orchestrator's rate);
* seqlock write (``SeqlockWriter.publish``), timed inside the writer process;
* the same payload in a ``multiprocessing.Array`` guarded by its ``multiprocessing.Lock``
  (read and write under the lock, writer at full speed / 100 Hz);
* a ``multiprocessing.Queue`` round trip and a ``posix_ipc.MessageQueue`` round trip
  (payload to an echo process and back).

Ratios are against the seqlock read p50 measured in the same run under the same
writer load. Targets (issue #2): read p50 ≤ 1 µs and ≥ 10x faster than the
Lock-guarded Array. Timings belong here, never in pass/fail tests.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import multiprocessing as mp
import os
import platform
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import posix_ipc

from engs.shared.config import Config
from engs.shared.region import Region, unlink
from engs.shared.seqlock import SeqlockReader, SeqlockWriter

_ctx = mp.get_context("fork")
_pn = time.perf_counter_ns


def _percentiles(samples: array[int]) -> tuple[float, float]:
    s = sorted(samples)
    n = len(s)
    return s[n // 2] / 1e3, s[min(n - 1, int(n * 0.99))] / 1e3


def _pace(hz: float) -> Callable[[], None]:
    """A pacing function: no-op at full speed, else sleep to the next 1/hz deadline."""
    if hz <= 0:
        return lambda: None
    period = int(1e9 / hz)
    nxt = [time.monotonic_ns()]

    def wait() -> None:
        nxt[0] += period
        delay = nxt[0] - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)

    return wait


# -- child processes -----------------------------------------------------------


def _write_until_stopped(
    stamp: Callable[[int], None],
    write: Callable[[], Any],
    hz: float,
    stop: Any,
    ready: Any,
    conn: Connection,
    max_samples: int,
) -> None:
    """The writer loop: ``stamp(n)`` marks the payload of write ``n`` untimed, then
    ``write()`` is timed, paced at ``hz``; when ``stop`` is set, sends (writes, the
    first ``max_samples`` latencies in ns as bytes of an ``array("q")``) on ``conn``."""
    lat = array("q", bytes(8 * max_samples))
    pace = _pace(hz)
    n = 0
    ready.set()
    while not stop.value:
        stamp(n)
        t0 = _pn()
        write()
        t1 = _pn()
        if n < max_samples:
            lat[n] = t1 - t0
        n += 1
        pace()
    conn.send((n, lat[: min(n, max_samples)].tobytes()))
    conn.close()


def _seqlock_writer(
    instance: str, hz: float, stop: Any, ready: Any, conn: Connection, max_samples: int
) -> None:
    region = Region.attach(instance, lock_memory=False)
    w = SeqlockWriter(region, "control")
    rec = w.new_record()
    seq_field = rec.reshape(-1).view("u8")  # first field of the record is seq

    def stamp(n: int) -> None:
        seq_field[0] = n

    _write_until_stopped(stamp, lambda: w.publish(rec), hz, stop, ready, conn, max_samples)
    w.release()


def _array_writer(
    arr: Any, nbytes: int, hz: float, stop: Any, ready: Any, conn: Connection, max_samples: int
) -> None:
    lock = arr.get_lock()
    dst = memoryview(arr.get_obj()).cast("B")
    src = bytearray(nbytes)

    def stamp(n: int) -> None:
        src[0] = n & 0xFF

    def write() -> None:
        with lock:
            dst[:] = src

    _write_until_stopped(stamp, write, hz, stop, ready, conn, max_samples)


def _queue_echo(req: Any, resp: Any) -> None:
    while True:
        item = req.get()
        if item is None:
            return
        resp.put(item)


def _mq_echo(req_name: str, resp_name: str) -> None:
    req = posix_ipc.MessageQueue(req_name)
    resp = posix_ipc.MessageQueue(resp_name)
    while True:
        msg, _ = req.receive()
        if not msg:
            return
        resp.send(msg)


# -- scenarios -------------------------------------------------------------------


@contextlib.contextmanager
def _writer(
    target: Callable[..., None], *args: Any, max_samples: int
) -> Iterator[Callable[[], tuple[int, array[int]]]]:
    """Run a writer child; yields a function that stops it and returns (count, samples)."""
    stop = _ctx.RawValue(ctypes.c_int, 0)
    ready = _ctx.Event()
    parent, child = _ctx.Pipe(duplex=False)
    proc = _ctx.Process(target=target, args=(*args, stop, ready, child, max_samples))
    proc.start()
    child.close()
    result: list[tuple[int, array[int]]] = []

    def finish() -> tuple[int, array[int]]:
        stop.value = 1
        n, raw = parent.recv()
        samples = array("q")
        samples.frombytes(raw)
        result.append((n, samples))
        return result[0]

    try:
        if not ready.wait(10):
            raise RuntimeError("bench writer did not start within 10 s")
        yield finish
    finally:
        stop.value = 1
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _time_loop(op: Callable[[], Any], n: int) -> array[int]:
    lat = array("q", bytes(8 * n))
    for i in range(n):
        t0 = _pn()
        op()
        lat[i] = _pn() - t0
    return lat


def _bench_seqlock(instance: str, hz: float, n: int) -> dict[str, Any]:
    region = Region.attach(instance, lock_memory=False)
    reader = SeqlockReader(region, "control")
    out = reader.new_record()
    with _writer(_seqlock_writer, instance, hz, max_samples=n) as finish:
        _time_loop(lambda: reader.read_latest(out), n // 10)  # warm-up
        reader.reads = reader.retried = reader.stale = 0
        seq0 = int(out["seq"])
        lat = _time_loop(lambda: reader.read_latest(out), n)
        seq1 = int(out["seq"])
        writes, wlat = finish()
    return {
        "read": _percentiles(lat),
        "write": _percentiles(wlat),
        "reads": reader.reads,
        "retried": reader.retried,
        "stale": reader.stale,
        "writes": writes,
        "publications_seen": seq1 - seq0,
        "payload_bytes": out.nbytes,
    }


def _bench_locked_array(nbytes: int, hz: float, n: int) -> dict[str, Any]:
    arr = _ctx.Array(ctypes.c_char, nbytes, lock=True)
    lock = arr.get_lock()
    src = memoryview(arr.get_obj()).cast("B")
    out = bytearray(nbytes)
    dst = memoryview(out)

    def read() -> None:
        with lock:
            dst[:] = src

    with _writer(_array_writer, arr, nbytes, hz, max_samples=n) as finish:
        _time_loop(read, n // 10)
        lat = _time_loop(read, n)
        _, wlat = finish()
    return {"read": _percentiles(lat), "write": _percentiles(wlat)}


def _round_trips(rtt: Callable[[], None], n: int) -> dict[str, Any]:
    """Percentiles of ``n`` timed round trips, after a tenth as many untimed."""
    _time_loop(rtt, max(10, n // 10))
    return {"rtt": _percentiles(_time_loop(rtt, n))}


def _echo_round_trips(
    echo: Callable[..., None],
    args: tuple[Any, ...],
    send: Callable[[Any], Any],
    receive: Callable[[], Any],
    payload: bytes,
    end: Any,
    n: int,
) -> dict[str, Any]:
    """:func:`_round_trips` of ``payload`` through an ``echo(*args)`` child process:
    ``send`` it there, ``receive`` it back; sending ``end`` stops the child."""
    proc = _ctx.Process(target=echo, args=args)
    proc.start()

    def rtt() -> None:
        send(payload)
        receive()

    try:
        return _round_trips(rtt, n)
    finally:
        send(end)
        proc.join(10)


def _bench_queue(nbytes: int, n: int) -> dict[str, Any]:
    req, resp = _ctx.Queue(), _ctx.Queue()
    return _echo_round_trips(_queue_echo, (req, resp), req.put, resp.get, bytes(nbytes), None, n)


def _bench_mq(nbytes: int, n: int) -> dict[str, Any]:
    tag = f"/engs-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    names = (tag + "-req", tag + "-resp")
    try:
        queues = [
            posix_ipc.MessageQueue(
                nm, posix_ipc.O_CREX, mode=0o600, max_messages=4, max_message_size=max(nbytes, 64)
            )
            for nm in names
        ]
    except (posix_ipc.Error, OSError, ValueError) as exc:
        return {"unavailable": f"{type(exc).__name__}: {exc}"}
    req, resp = queues
    try:
        return _echo_round_trips(_mq_echo, names, req.send, resp.receive, b"\x01" * nbytes, b"", n)
    finally:
        for q in queues:
            q.close()
            q.unlink()


def measure(max_areas: int, *, quick: bool) -> dict[str, Any]:
    """Run every scenario; returns a JSON-ready dict (all times in µs)."""
    n = 20_000 if quick else 200_000
    n_rtt = 2_000 if quick else 20_000
    instance = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    region = Region.create(instance, max_areas, lock_memory=False)
    try:
        timer = _percentiles(_time_loop(lambda: None, n))
        scen: dict[str, Any] = {}
        for label, hz in (("full_speed", 0.0), ("100hz", 100.0)):
            sl = _bench_seqlock(instance, hz, n)
            la = _bench_locked_array(sl["payload_bytes"], hz, n)
            scen[label] = {"seqlock": sl, "locked_array": la}
        payload = scen["full_speed"]["seqlock"]["payload_bytes"]
        queue = _bench_queue(payload, n_rtt)
        mq = _bench_mq(payload, n_rtt)
    finally:
        region.close()
        unlink(instance)
    return {
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "max_areas": max_areas,
        "payload_bytes": payload,
        "ops": n,
        "round_trips": n_rtt,
        "timer_overhead_us": timer,
        "scenarios": scen,
        "mp_queue": queue,
        "posix_mq": mq,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


Row = tuple[str, str, float, float, float, float]


def rows(res: dict[str, Any]) -> list[Row]:
    """(path, writer load, p50 µs, p99 µs, p50 and p99 as multiples of the seqlock
    read's under the same writer load) rows of the table."""
    out: list[Row] = []
    for label, sc in res["scenarios"].items():
        b50, b99 = sc["seqlock"]["read"]
        load = "full speed" if label == "full_speed" else "100 Hz"
        for name, (p50, p99) in (
            ("seqlock read", sc["seqlock"]["read"]),
            ("seqlock write (publish)", sc["seqlock"]["write"]),
            ("mp.Array + mp.Lock read", sc["locked_array"]["read"]),
            ("mp.Array + mp.Lock write", sc["locked_array"]["write"]),
        ):
            out.append((name, load, p50, p99, p50 / b50, p99 / b99))
    b50, b99 = res["scenarios"]["100hz"]["seqlock"]["read"]
    for name, key in (
        ("mp.Queue round trip", "mp_queue"),
        ("posix_ipc.MessageQueue round trip", "posix_mq"),
    ):
        if "rtt" in res[key]:
            p50, p99 = res[key]["rtt"]
            out.append((name, "-", p50, p99, p50 / b50, p99 / b99))
    return out


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"engs bench seqlock — payload {res['payload_bytes']} B (NeurochemicalState, "
        f"max_areas {res['max_areas']}), {res['ops']} ops per path, "
        f"{res['round_trips']} round trips",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; timer overhead "
        f"p50 {res['timer_overhead_us'][0]:.3f} µs (included in every figure)",
        "",
        f"{'path':<36}{'writer':<12}{'p50 µs':>9}{'p99 µs':>9}{'p50 ratio':>11}{'p99 ratio':>11}",
    ]
    for name, load, p50, p99, r50, r99 in rows(res):
        lines.append(f"{name:<36}{load:<12}{p50:>9.3f}{p99:>9.3f}{r50:>10.1f}x{r99:>10.1f}x")
    if "unavailable" in res["posix_mq"]:
        lines.append(f"posix_ipc.MessageQueue: unavailable ({res['posix_mq']['unavailable']})")
    lines.append("")
    for label, sc in res["scenarios"].items():
        s = sc["seqlock"]
        lines.append(
            f"seqlock, writer {label}: {s['writes']} publications, "
            f"{s['publications_seen']} seen by the reader, {s['retried']} retries and "
            f"{s['stale']} stale in {s['reads']} reads"
        )
    lines.append(
        "ratios: the path's figure over the seqlock read's under the same writer "
        "load (round trips: over the 100 Hz read)"
    )
    for label, sc in res["scenarios"].items():
        p50, p99 = sc["seqlock"]["read"]
        l50, l99 = sc["locked_array"]["read"]
        lines.append(
            f"targets, writer {label}: read p50 {p50:.3f} µs (≤ 1 µs: "
            f"{'met' if p50 <= 1 else 'MISSED'}); vs Lock-guarded Array read: p50 "
            f"{l50 / p50:.1f}x ({'met' if l50 / p50 >= 10 else 'MISSED'}), p99 {l99 / p99:.1f}x "
            f"({'met' if l99 / p99 >= 10 else 'MISSED'}) against the ≥ 10x target"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags of ``engs bench seqlock``."""
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--quick", action="store_true", help="a short run (for tests and CI)")


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Measure with the configured ``max_areas`` and print the result; 0."""
    res = measure(cfg.shm.max_areas, quick=args.quick)
    if args.json:
        sys.stdout.write(msgspec.json.encode(res).decode() + "\n")
    else:
        sys.stdout.write(render(res) + "\n")
    return 0
