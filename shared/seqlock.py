"""Double-buffered seqlock (the Linux ``seqcount_latch`` pattern) over shared memory.

Block layout (:func:`engs.shared.layout.seqlock_dtype`): a 64-bit sequence ``seq`` and two
slots, each a CRC-32 plus one record. Exactly one writer; any number of readers in any
process. Replaces the seed's ``std::atomic<NeurochemicalState>`` (ARCHITECTURE §6.7).

Writer (never waits)::

    seq = E + 1        # odd: readers use slot 1, which holds the previous record
    slot[0] = rec, crc
    seq = E + 2        # even: readers use slot 0, which holds the new record
    slot[1] = rec, crc

At rest ``seq`` is even and both slots are equal; one publication adds 2 to ``seq``.
A reader loads ``s = seq``, copies ``slot[s & 1]`` out, reloads ``seq``, and accepts
the copy iff ``seq`` is unchanged *and* the copy's CRC matches. The slot a reader is
directed to is never the one being written, so a reader retries only when a whole
half-publication overlapped its copy (the writer runs at 100 Hz or 1 kHz, a copy
takes well under a microsecond). After ``retries`` failed attempts the reader returns
its last good copy and reports it stale.

Writer death: readers never spin on an odd ``seq`` (they read the other slot, which
is complete). If ``seq`` stays odd for longer than ``stall_ns``, a writer stopped
mid-publication (killed, or descheduled inside a microsecond-long window for that
long): readers still return the complete record but report it stale. A writer that
attaches repairs the block before its first publication: odd ``seq`` → slot 1 is the
newest complete record, copy it into slot 0 and make ``seq`` even; even ``seq`` →
copy slot 0 into slot 1. Either way both slots are whole again.

Why torn reads are detectable independent of luck — see docs/seqlock.md. In short:
on x86-64 (TSO) stores become visible in program order and loads are not reordered
with older loads, so the sequence check alone is sound; the interpreter executes each
shared-memory access as a separate opaque C call (no compiler reordering across
them), and each ``seq`` access is one aligned 8-byte ``mov``. On weakly ordered CPUs
(AArch64, POWER) neither holds without fences, which Python cannot emit; the per-slot
CRC-32 computed over the *copied* bytes makes a torn copy detectable whatever order
the stores became visible in (a mix of two records passes with probability 2⁻³²,
and a record never published cannot carry a matching CRC by accident except with
that probability). tests/shared/test_seqlock.py shows the CRC alone catching tears
from a writer that ignores the protocol.

Both paths allocate no arrays: callers pass ``out=``; memoryviews are built once.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from engs.shared.clock import monotonic_ns
from engs.shared.errors import WriterBusy
from engs.shared.heartbeat import pid_alive
from engs.shared.layout import field_offset
from engs.shared.region import Region

_crc32 = zlib.crc32


class _Block:
    """Byte-level views of one seqlock block, built once from the layout dtype."""

    def __init__(self, region: Region, path: str) -> None:
        blk_dt = region.block(path).dtype
        slot_dt = blk_dt["slots"].base
        self.record_dtype: np.dtype[Any] = slot_dt["rec"]
        self.path = path
        self.region = region
        base = region.offset(path)
        mv = region.buf
        self.seq = region.scalar(path + ".seq")
        self.writer_pid = region.scalar(path + ".writer_pid")
        slots = base + field_offset(blk_dt, "slots")
        rec_off = field_offset(slot_dt, "rec")
        size = self.record_dtype.itemsize
        self.size = size
        starts = (slots, slots + slot_dt.itemsize)
        self.crc = tuple(region.scalar(f"{path}.slots[{i}].crc") for i in range(2))
        self.rec = tuple(mv[s + rec_off : s + rec_off + size] for s in starts)

    def new_record(self) -> np.ndarray[Any, Any]:
        return np.zeros((), dtype=self.record_dtype)


def _bytes_of(arr: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> memoryview:
    if arr.dtype != dtype:
        raise TypeError(f"record has dtype {arr.dtype}, expected the layout's {dtype}")
    if arr.size != 1 or not arr.flags.c_contiguous:
        raise TypeError(f"record must be one contiguous element, got shape {arr.shape}")
    return arr.reshape(-1).view(np.uint8).data


class SeqlockWriter:
    """The single writer of a seqlock block. :meth:`publish` never waits."""

    def __init__(self, region: Region, path: str, *, claim: bool = True) -> None:
        self._b = _Block(region, path)
        self.record_dtype = self._b.record_dtype
        self._src: np.ndarray[Any, Any] | None = None
        self._src_mv = memoryview(b"")
        if claim:
            self._claim()
        self.repaired = self.repair()

    def _claim(self) -> None:
        pid = int(self._b.writer_pid[0])
        me = os.getpid()
        if pid not in (0, me) and pid_alive(pid):
            raise WriterBusy(
                f"{self._b.region.name}:{self._b.path} already has a live writer, pid {pid}"
            )
        self._b.writer_pid[0] = me

    def repair(self) -> bool:
        """Make both slots whole and ``seq`` even; True if anything needed repair."""
        b = self._b
        s = b.seq[0]
        good = s & 1  # odd: slot 1 holds the newest complete record; even: slot 0
        if _crc32(b.rec[good]) != b.crc[good][0]:
            # Not a state a crashed writer can leave (the good slot is never written
            # while readers are directed to it); recover to a zero record, loudly.
            b.rec[good][:] = bytes(b.size)
            b.crc[good][0] = _crc32(b.rec[good])
        other = good ^ 1
        torn = b.rec[other] != b.rec[good] or b.crc[other][0] != b.crc[good][0]
        b.rec[other][:] = b.rec[good]
        b.crc[other][0] = b.crc[good][0]
        if s & 1:
            b.seq[0] = s + 1
        return bool(s & 1) or bool(torn)

    def new_record(self) -> np.ndarray[Any, Any]:
        """A zeroed record of this block's dtype, for the caller to fill and publish."""
        return self._b.new_record()

    def last_published(self, out: np.ndarray[Any, Any]) -> None:
        """Copy the newest complete record into ``out`` (e.g. to continue ``seq``)."""
        b = self._b
        _bytes_of(out, self.record_dtype)[:] = b.rec[b.seq[0] & 1]

    def publish(self, rec: np.ndarray[Any, Any]) -> int:
        """Publish ``rec``; returns the block's new sequence number (even)."""
        if rec is not self._src:
            self._src_mv = _bytes_of(rec, self.record_dtype)
            self._src = rec
        src = self._src_mv
        b = self._b
        crc = _crc32(src)
        s = b.seq[0] + 1
        b.seq[0] = s  # odd: readers go to slot 1
        b.rec[0][:] = src
        b.crc[0][0] = crc
        s += 1
        b.seq[0] = s  # even: readers go to slot 0
        b.rec[1][:] = src
        b.crc[1][0] = crc
        return s

    def release(self) -> None:
        """Give up the writer claim (clean shutdown)."""
        if int(self._b.writer_pid[0]) == os.getpid():
            self._b.writer_pid[0] = 0


class SeqlockReader:
    """A reader of a seqlock block. :meth:`read_latest` never blocks.

    ``retries``: attempts before falling back to the last good copy.
    ``stall_ns``: how long ``seq`` may stay odd before the writer is presumed stopped
    mid-publication and reads are reported stale.
    Counters ``reads``, ``retried`` and ``stale`` are plain attributes for the owner's
    stats.
    """

    def __init__(
        self, region: Region, path: str, *, retries: int = 16, stall_ns: int = 5_000_000
    ) -> None:
        if retries < 1:
            raise ValueError(f"retries must be >= 1, got {retries}")
        self._b = _Block(region, path)
        self.record_dtype = self._b.record_dtype
        self.retries = retries
        self.stall_ns = stall_ns
        self._scratch = self._b.new_record()
        self._good = self._b.new_record()
        self._scratch_mv = _bytes_of(self._scratch, self.record_dtype)
        self._good_mv = _bytes_of(self._good, self.record_dtype)
        self._has_good = False
        self._out: np.ndarray[Any, Any] | None = None
        self._out_mv = memoryview(b"")
        self._odd_seq = -1
        self._odd_since = 0
        self.reads = 0
        self.retried = 0
        self.stale = 0
        self.last_seq = 0

    def new_record(self) -> np.ndarray[Any, Any]:
        return self._b.new_record()

    def read_latest(self, out: np.ndarray[Any, Any]) -> bool:
        """Copy the newest record into ``out``.

        Returns True when ``out`` holds a validated copy of the newest publication;
        False when it holds the last good copy instead (retries exhausted, or the
        writer stalled mid-publication for longer than ``stall_ns``), or zeros if no
        copy ever validated.
        """
        if out is not self._out:
            self._out_mv = _bytes_of(out, self.record_dtype)
            self._out = out
        b = self._b
        seq = b.seq
        scratch = self._scratch_mv
        self.reads += 1
        attempt = 0
        while attempt < self.retries:
            s0 = seq[0]
            i = s0 & 1
            scratch[:] = b.rec[i]
            c = b.crc[i][0]
            if seq[0] == s0 and _crc32(scratch) == c:
                # Validated. The scratch buffer becomes the last good copy.
                self._scratch_mv, self._good_mv = self._good_mv, scratch
                self._scratch, self._good = self._good, self._scratch
                self._has_good = True
                self._out_mv[:] = scratch
                self.last_seq = s0
                if i and self._stalled(s0):
                    self.stale += 1
                    return False
                return True
            attempt += 1
            self.retried += 1
        self.stale += 1
        self._out_mv[:] = self._good_mv
        return False

    def _stalled(self, s: int) -> bool:
        now = monotonic_ns()
        if s != self._odd_seq:
            self._odd_seq = s
            self._odd_since = now
            return False
        return now - self._odd_since > self.stall_ns

    @property
    def has_data(self) -> bool:
        """True once any copy has validated."""
        return self._has_good
