"""The double-buffered seqlock, with real processes and real shared memory.

* Stress: one writer at full speed, two reader processes, >= 10^6 validated reads in
  total; every payload is all one counter value, so any mix of two publications is
  visible; zero torn reads may pass validation.
* The detector works: a writer that ignores the protocol (writes payload and CRC in
  place, never touches ``seq``) produces torn copies that a raw reader sees, and the
  real reader rejects every one of them.
* A writer SIGKILLed mid-publication (``seq`` odd, slot half written) makes readers
  report stale within a bounded time without spinning; a new writer repairs it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time
import tracemalloc
import zlib
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pytest

from engs.shared.errors import WriterBusy
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader, SeqlockWriter

ctx = mp.get_context("fork")
MAX_AREAS = 16  # ~1 KiB records: large enough for copies to interleave
TOTAL_READS = 1_000_000
N_READERS = 2


def _fill(words: np.ndarray[Any, Any], k: int) -> None:
    words[:] = k


def _consistent(raw: bytes, nwords: int) -> bool:
    """True iff every 8-byte word of the payload holds the same counter value."""
    return raw == raw[:8] * nwords


# -- children -----------------------------------------------------------------------


def _protocol_writer(instance: str, stop: Any, ready: Any, conn: Connection) -> None:
    region = Region.attach(instance, lock_memory=False)
    w = SeqlockWriter(region, "control")
    rec = w.new_record()
    words = rec.reshape(-1).view("<u8")
    k = 0
    ready.set()
    while not stop.value:
        k += 1
        _fill(words, k)
        w.publish(rec)
    conn.send(k)


def _rogue_writer(instance: str, stop: Any, ready: Any, conn: Connection) -> None:
    """Writes whole, correctly checksummed records in place — without the protocol."""
    region = Region.attach(instance, lock_memory=False)
    b = SeqlockWriter(region, "control")._b  # same views a writer uses; seq untouched
    rec = b.new_record()
    words = rec.reshape(-1).view("<u8")
    src = memoryview(rec.reshape(-1).view(np.uint8))
    k = 0
    ready.set()
    while not stop.value:
        k += 1
        _fill(words, k)
        crc = zlib.crc32(src)
        for i in (0, 1):
            b.rec[i][:] = src
            b.crc[i][0] = crc
    conn.send(k)


#: Each stress reader keeps reading until it has also seen this many distinct records:
#: on a loaded 2-core host a reader can do all its reads while the writer is descheduled
#: (CI once saw 145 changes in 500,000 reads), which tests nothing about tearing.
MIN_CHANGES = 1_000


def _stress_reader(instance: str, n_valid: int, conn: Connection) -> None:
    region = Region.attach(instance, lock_memory=False)
    reader = SeqlockReader(region, "control")
    out = reader.new_record()
    raw = memoryview(out.reshape(-1).view(np.uint8))
    nwords = out.nbytes // 8
    valid = torn = stale = changes = 0
    last = -1
    deadline = time.monotonic() + 120
    while (valid < n_valid or changes <= MIN_CHANGES) and time.monotonic() < deadline:
        fresh = reader.read_latest(out)
        data = bytes(raw)
        if not _consistent(data, nwords):
            torn += 1
        if fresh:
            valid += 1
        else:
            stale += 1
        k = int.from_bytes(data[:8], "little")
        if k != last:
            changes += 1
            last = k
    conn.send(
        {
            "valid": valid,
            "torn": torn,
            "stale": stale,
            "changes": changes,
            "retried": reader.retried,
        }
    )


def _detector_reader(instance: str, want_raw_tears: int, conn: Connection) -> None:
    region = Region.attach(instance, lock_memory=False)
    reader = SeqlockReader(region, "control", retries=4)
    b = reader._b
    out = reader.new_record()
    raw_out = memoryview(out.reshape(-1).view(np.uint8))
    scratch = bytearray(b.size)
    nwords = b.size // 8
    raw_tears = validated = validated_torn = reads = 0
    deadline = time.monotonic() + 60
    while (raw_tears < want_raw_tears or reads < 200_000) and time.monotonic() < deadline:
        reads += 1
        scratch[:] = b.rec[0]  # a raw reader: no protocol, no check
        if not _consistent(bytes(scratch), nwords):
            raw_tears += 1
        if reader.read_latest(out):
            validated += 1
            if not _consistent(bytes(raw_out), nwords):
                validated_torn += 1
    conn.send(
        {
            "raw_tears": raw_tears,
            "validated": validated,
            "validated_torn": validated_torn,
            "rejected": reader.retried,
            "reads": reads,
        }
    )


def _die_mid_publication(instance: str, ready: Any) -> None:
    region = Region.attach(instance, lock_memory=False)
    w = SeqlockWriter(region, "control")
    rec = w.new_record()
    rec["seq"] = 1
    rec["dopamine"] = 0.25
    w.publish(rec)
    # Begin the next publication exactly as publish() does, and stop half-way through
    # the slot: the state a SIGKILL at that instruction leaves behind.
    b = w._b
    b.seq[0] = b.seq[0] + 1
    half = b.size // 2
    b.rec[0][:half] = b"\xab" * half
    ready.set()
    time.sleep(120)


def _hold_writer(instance: str, ready: Any) -> None:
    region = Region.attach(instance, lock_memory=False)
    SeqlockWriter(region, "control")
    ready.set()
    time.sleep(120)


def _run_writer(target: Any, instance: str) -> tuple[Any, Any, Connection, Any]:
    stop = ctx.RawValue(ctypes.c_int, 0)
    ready = ctx.Event()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(instance, stop, ready, child))
    proc.start()
    assert ready.wait(20), "writer did not start"
    return proc, stop, parent, ready


@pytest.fixture
def big_region(instance: str) -> Any:
    r = Region.create(instance, MAX_AREAS, lock_memory=False)
    yield r
    r.close()


# -- tests --------------------------------------------------------------------------


def test_publish_then_read_round_trips(region: Region) -> None:
    w = SeqlockWriter(region, "control")
    r = SeqlockReader(region, "control")
    rec = w.new_record()
    rec["seq"] = 7
    rec["dopamine"] = 0.625
    rec["area_nt"][2, 1] = 0.5
    assert w.publish(rec) == 2
    out = r.new_record()
    assert r.read_latest(out) is True
    assert out.tobytes() == rec.tobytes()
    rec["seq"] = 8
    assert w.publish(rec) == 4
    assert r.read_latest(out) and int(out["seq"]) == 8 and r.last_seq == 4


def test_records_of_the_wrong_shape_are_refused(region: Region) -> None:
    w = SeqlockWriter(region, "control")
    r = SeqlockReader(region, "telemetry")
    with pytest.raises(TypeError, match="expected the layout's"):
        r.read_latest(w.new_record())
    with pytest.raises(TypeError, match="one contiguous element"):
        w.publish(np.zeros(2, dtype=w.record_dtype))


def test_stress_no_torn_read_passes_validation(big_region: Region) -> None:
    inst = big_region.instance
    writer, stop, wconn, _ = _run_writer(_protocol_writer, inst)
    conns, procs = [], []
    for _ in range(N_READERS):
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_stress_reader, args=(inst, TOTAL_READS // N_READERS, child))
        p.start()
        conns.append(parent)
        procs.append(p)
    results = [c.recv() for c in conns]
    stop.value = 1
    published = wconn.recv()
    for p in (*procs, writer):
        p.join(30)
    assert sum(r["valid"] for r in results) >= TOTAL_READS, results
    assert [r["torn"] for r in results] == [0] * N_READERS, results
    # The readers really ran against a moving writer.
    assert published > 10_000
    assert all(r["changes"] > MIN_CHANGES for r in results), results


def test_detector_catches_a_writer_that_ignores_the_protocol(big_region: Region) -> None:
    writer, stop, wconn, _ = _run_writer(_rogue_writer, big_region.instance)
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_detector_reader, args=(big_region.instance, 200, child))
    p.start()
    res = parent.recv()
    stop.value = 1
    wconn.recv()
    p.join(30)
    writer.join(30)
    assert res["raw_tears"] > 0, f"no tear happened, the check proves nothing: {res}"
    assert res["validated_torn"] == 0, res
    # The CRC rejected copies, at a rate of the same order as the raw reader's tears.
    # The two reads race the writer at different moments (the protocol reader's slot is
    # the one seq names, the raw reader copies slot 0), so the ratio varies with timing:
    # 0.8-3.7 measured on a quiet 2-core host, 12-277 under load, 0.22 once in CI. A
    # twentieth still fails a CRC check that rejects only a stray few.
    assert res["rejected"] >= res["raw_tears"] // 20, res
    assert res["validated"] > 0, res


def test_writer_killed_mid_publication(big_region: Region) -> None:
    inst = big_region.instance
    ready = ctx.Event()
    child = ctx.Process(target=_die_mid_publication, args=(inst, ready))
    child.start()
    assert ready.wait(20)
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(10)
    assert big_region.view["control"]["seq"] % 2 == 1  # left odd

    reader = SeqlockReader(big_region, "control", stall_ns=20_000_000)
    out = reader.new_record()
    t0 = time.monotonic()
    fresh_results = []
    while time.monotonic() - t0 < 2.0:
        fresh = reader.read_latest(out)
        fresh_results.append(fresh)
        # Never a torn record: always the last complete publication.
        assert int(out["seq"]) == 1 and float(out["dopamine"]) == 0.25
        if not fresh:
            break
        time.sleep(0.001)
    elapsed = time.monotonic() - t0
    assert fresh_results[-1] is False, "reader never reported the stalled writer"
    assert elapsed < 0.5, f"stale reported only after {elapsed:.3f} s"
    assert reader.stale >= 1

    # A new writer repairs the block: seq even, both slots whole, reads fresh again.
    w = SeqlockWriter(big_region, "control")
    assert w.repaired is True
    assert big_region.view["control"]["seq"] % 2 == 0
    slots = big_region.view["control"]["slots"]
    assert slots[0].tobytes() == slots[1].tobytes()
    assert reader.read_latest(out) is True and int(out["seq"]) == 1
    rec = w.new_record()
    rec["seq"] = 2
    w.publish(rec)
    assert reader.read_latest(out) is True and int(out["seq"]) == 2


def test_second_live_writer_is_refused(big_region: Region) -> None:
    ready = ctx.Event()
    child = ctx.Process(target=_hold_writer, args=(big_region.instance, ready))
    child.start()
    try:
        assert ready.wait(20)
        with pytest.raises(WriterBusy, match=f"already has a live writer, pid {child.pid}"):
            SeqlockWriter(big_region, "control")
    finally:
        child.kill()
        child.join(10)
    SeqlockWriter(big_region, "control")  # the dead writer's claim is void


def test_never_validated_reads_return_false_and_zeros(region: Region) -> None:
    for i in (0, 1):
        region.view["control"]["slots"][i]["crc"] ^= 0xFFFF
    r = SeqlockReader(region, "control", retries=3)
    out = r.new_record()
    out["seq"] = 99
    assert r.read_latest(out) is False
    assert not r.has_data and int(out["seq"]) == 0
    assert r.retried == 3 and r.stale == 1


def test_retries_exhausted_returns_last_good_copy(region: Region) -> None:
    w = SeqlockWriter(region, "control")
    r = SeqlockReader(region, "control", retries=2)
    rec = w.new_record()
    rec["seq"] = 5
    w.publish(rec)
    out = r.new_record()
    assert r.read_latest(out)
    region.view["control"]["slots"]["crc"] ^= 1  # every copy now fails validation
    out["seq"] = 0
    assert r.read_latest(out) is False
    assert int(out["seq"]) == 5


def test_read_path_allocates_nothing(region: Region) -> None:
    w = SeqlockWriter(region, "control")
    r = SeqlockReader(region, "control")
    rec = w.new_record()
    w.publish(rec)
    out = r.new_record()
    for _ in range(1000):
        r.read_latest(out)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(20_000):
            r.read_latest(out)
            if i % 100 == 0:
                w.publish(rec)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256, "the read path retains memory"
    assert peak - before < rec.nbytes // 2, f"a read allocated {peak - before} bytes"


def test_repair_of_a_torn_other_slot(region: Region) -> None:
    w = SeqlockWriter(region, "control")
    rec = w.new_record()
    rec["seq"] = 3
    w.publish(rec)
    region.view["control"]["slots"][1]["rec"]["seq"] = 12345  # killed while writing slot 1
    w2 = SeqlockWriter(region, "control")
    assert w2.repaired is True
    assert int(region.view["control"]["slots"][1]["rec"]["seq"]) == 3
