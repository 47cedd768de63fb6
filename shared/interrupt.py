"""The priority interrupt word: CRITICAL causes that bypass the double buffer.

One 64-bit word made of four 16-bit lanes (:class:`engs.shared.layout.Lane`), each with
exactly one writer process, so raising and clearing are plain stores to the writer's
own lane — no read-modify-write race between processes, no lock. The physics tests
the whole word with a single aligned 8-byte load at every tick start
(:meth:`InterruptWord.test`): zero means nothing is set, which is the common case.
The effective cause set is the OR of the lanes.

A raise first stores the raise time (``raised_t_ns[lane][bit]``), then sets the bit,
so a reader that sees the bit on x86-64 (TSO) also sees the time; on weakly ordered
CPUs the time may lag the bit by the visibility delay, which only affects the latency
metric, never the action. The orchestrator may also publish an emergency
NeurochemicalState (its own seqlock, block ``interrupt.emergency``) for the physics to
use while a cause is set.

Clearing: a lane clears only its own bits (each cause has a documented clearing rule in
the process that raises it).
"""

from __future__ import annotations

from engs.shared.clock import monotonic_ns
from engs.shared.layout import N_CAUSE_BITS, N_LANES, Cause, Lane
from engs.shared.region import Region

_LANE_MASK = (1 << N_CAUSE_BITS) - 1


def _bits(cause: Cause) -> list[int]:
    return [b for b in range(N_CAUSE_BITS) if int(cause) >> b & 1]


def lanes_or(word: int) -> Cause:
    """The effective cause set of a raw interrupt word."""
    acc = 0
    for lane in range(N_LANES):
        acc |= (word >> (N_CAUSE_BITS * lane)) & _LANE_MASK
    return Cause(acc)


class InterruptWord:
    """Access to the interrupt block. ``lane`` is needed only to raise or clear."""

    def __init__(self, region: Region, lane: Lane | None = None) -> None:
        self._word = region.scalar("interrupt.word")
        self._lanes = self._word.cast("B").cast("H")  # little-endian: lane i = bits 16i..
        self._raised_t = region.block("interrupt.raised_t_ns")
        self.lane = lane

    def test(self) -> int:
        """The raw word: one load; non-zero iff any cause is set in any lane."""
        return self._word[0]

    def causes(self) -> Cause:
        """The effective cause set (OR over lanes)."""
        return lanes_or(self._word[0])

    def lane_causes(self, lane: Lane) -> Cause:
        return Cause(self._lanes[lane])

    def raise_cause(self, cause: Cause, t_ns: int | None = None) -> Cause:
        """Set ``cause`` in this process's lane; returns the bits that were newly set.

        The raise time is recorded only for bits not already set, so a condition that
        persists keeps its first raise time (what the latency metric needs)."""
        lane = self._own_lane()
        cur = self._lanes[lane]
        new = int(cause) & ~cur & _LANE_MASK
        if new:
            t = monotonic_ns() if t_ns is None else t_ns
            for b in _bits(Cause(new)):
                self._raised_t[lane, b] = t
            self._lanes[lane] = cur | new
        return Cause(new)

    def clear_cause(self, cause: Cause) -> Cause:
        """Clear ``cause`` in this process's lane; returns the bits that were cleared."""
        lane = self._own_lane()
        cur = self._lanes[lane]
        gone = cur & int(cause)
        if gone:
            self._lanes[lane] = cur & ~int(cause) & _LANE_MASK
        return Cause(gone)

    def raised_at(self, cause: Cause) -> int:
        """Earliest raise time (monotonic ns) of any bit of ``cause`` currently set,
        over all lanes; 0 if none is set."""
        best = 0
        for lane in range(N_LANES):
            held = self._lanes[lane] & int(cause)
            for b in _bits(Cause(held)):
                t = int(self._raised_t[lane, b])
                if best == 0 or t < best:
                    best = t
        return best

    def _own_lane(self) -> int:
        if self.lane is None:
            raise PermissionError("this InterruptWord was opened without a lane: read-only")
        return int(self.lane)
