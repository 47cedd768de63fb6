"""Per-process counters and fixed-bucket histograms in shared memory.

Each process owns one stats slot (:class:`engs.shared.layout.Process`) and is its only
writer; any process may read it (the oracle's exporter reads all of them at scrape
time). The schema — which slot holds which counter or histogram — is in
:mod:`engs.shared.stats_schema` (``COUNTERS``, ``HISTOGRAMS``), covered by the layout
hash. Buckets (:data:`engs.shared.layout.HIST_BOUNDS_NS`) run from 25 µs to 100 ms
plus +Inf; bucket counts are stored non-cumulatively and accumulated by the reader.

Values persist in the region across a process restart, so counters stay monotonic for
Prometheus as long as the instance's region lives.

The writer path is a few aligned 8-byte loads and stores on prebuilt memoryviews:
safe in the 1 kHz loop (no locks, no logging, no array allocation).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.shared.layout import HIST_BOUNDS_NS, N_BUCKETS, Process
from engs.shared.region import Region
from engs.shared.stats_schema import (
    COUNTERS,
    HISTOGRAMS,
    CounterSpec,
    HistogramSpec,
    counter_index,
    histogram_index,
)

_BOUNDS = list(HIST_BOUNDS_NS)


class StatsWriter:
    """The single writer of one process's stats slot."""

    def __init__(self, region: Region, process: Process) -> None:
        self.process = process
        slot = region.block("stats")[int(process)]
        self._counters = _flat_u64(region, slot["counters"])
        self._hist = _flat_u64(region, slot["hist_counts"])
        self._sums = _flat_u64(region, slot["hist_sum_ns"])

    def counter(self, name: str, /, **labels: str) -> int:
        """Slot index of a counter of this process (resolve once, outside hot loops)."""
        return counter_index(self.process, name, **labels)

    def histogram(self, name: str) -> int:
        return histogram_index(self.process, name)

    def inc(self, index: int, n: int = 1) -> None:
        self._counters[index] += n

    def observe_ns(self, index: int, ns: int) -> None:
        """Record one observation of ``ns`` nanoseconds (negative values count as 0)."""
        ns = max(ns, 0)
        self._hist[index * N_BUCKETS + bisect_left(_BOUNDS, ns)] += 1
        self._sums[index] += ns


@dataclass(frozen=True)
class HistogramSnapshot:
    spec: HistogramSpec
    bucket_counts: tuple[int, ...]  # non-cumulative, len N_BUCKETS, last is +Inf
    sum_ns: int

    @property
    def count(self) -> int:
        return sum(self.bucket_counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound in seconds, cumulative count) pairs ending with +Inf."""
        out, acc = [], 0
        for bound, c in zip((*HIST_BOUNDS_NS, None), self.bucket_counts, strict=True):
            acc += c
            out.append((float("inf") if bound is None else bound / 1e9, acc))
        return out


@dataclass(frozen=True)
class StatsSnapshot:
    process: Process
    counters: tuple[tuple[CounterSpec, int], ...]
    histograms: tuple[HistogramSnapshot, ...]

    def counter(self, name: str, /, **labels: str) -> int:
        return self.counters[counter_index(self.process, name, **labels)][1]


def read_stats(region: Region, process: Process) -> StatsSnapshot:
    """A copy of one process's stats slot. Each value is read atomically; the set is
    not one instant (a histogram's count is the sum of the buckets read, so it is
    self-consistent)."""
    slot = region.block("stats")[int(process)]
    counters = slot["counters"].copy()
    hist = slot["hist_counts"].copy()
    sums = slot["hist_sum_ns"].copy()
    return StatsSnapshot(
        process=process,
        counters=tuple((spec, int(counters[i])) for i, spec in enumerate(COUNTERS[process])),
        histograms=tuple(
            HistogramSnapshot(spec, tuple(int(x) for x in hist[i]), int(sums[i]))
            for i, spec in enumerate(HISTOGRAMS[process])
        ),
    )


def _flat_u64(region: Region, arr: np.ndarray[Any, Any]) -> memoryview:
    """A flat 'Q' memoryview over a u8 array that lives inside ``region``."""
    start = arr.ctypes.data - region.address
    return region.buf[start : start + arr.nbytes].cast("Q")
