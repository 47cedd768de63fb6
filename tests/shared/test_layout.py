"""The layout is defined once and is aligned: every block and slot on a cache line,
every scalar field naturally aligned (so one field is one atomic load/store)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from engs.shared.layout import (
    CACHE_LINE,
    HIST_BOUNDS_NS,
    N_COUNTERS,
    N_HISTOGRAMS,
    Cause,
    Process,
    build_layout,
    field_offset,
    layout_hash,
    seqlock_dtype,
    state_dtype,
)
from engs.shared.stats_schema import COUNTERS, HISTOGRAMS, counter_index, histogram_index

BLOCKS = ("header", "meta", "control", "interrupt", "telemetry", "requests", "heartbeats", "stats")


def _walk(dt: np.dtype[Any], base: int = 0, path: str = "") -> list[tuple[str, int, np.dtype[Any]]]:
    """(path, absolute offset, dtype) of every scalar leaf, expanding record arrays."""
    out = []
    for name, (sub, off, *_) in dt.fields.items():  # type: ignore[union-attr]
        here = base + off
        if sub.subdtype is not None and sub.base.fields is not None:
            for i in range(int(np.prod(sub.shape))):
                out += _walk(sub.base, here + i * sub.base.itemsize, f"{path}{name}[{i}].")
        elif sub.fields is not None:
            out += _walk(sub, here, f"{path}{name}.")
        else:
            out.append((path + name, here, sub))
    return out


@pytest.mark.parametrize("max_areas", [1, 4, 16, 33, 256])
def test_blocks_start_on_cache_lines(max_areas: int) -> None:
    dt = build_layout(max_areas)
    offsets = [field_offset(dt, b) for b in BLOCKS]
    assert all(o % CACHE_LINE == 0 for o in offsets), dict(zip(BLOCKS, offsets, strict=True))
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert dt.itemsize % 4096 == 0  # whole pages for mmap/mlock
    for seqlock in ("control", "telemetry", "interrupt.emergency"):
        slots = field_offset(dt, seqlock + ".slots")
        slot_size = dt.fields[seqlock.split(".")[0]][0]  # type: ignore[index]
        assert slots % CACHE_LINE == 0
        inner = seqlock_dtype(state_dtype(max_areas))["slots"].base
        assert inner.itemsize % CACHE_LINE == 0
        assert slot_size.itemsize % CACHE_LINE == 0


@pytest.mark.parametrize("max_areas", [1, 7, 16, 100])
def test_every_scalar_is_naturally_aligned(max_areas: int) -> None:
    leaves = _walk(build_layout(max_areas))
    assert len(leaves) > 100
    for path, off, sub in leaves:
        align = sub.base.itemsize if sub.base.kind != "S" else 1
        assert off % align == 0, f"{path} at {off} is not {align}-byte aligned"
    names = [p for p, _, _ in leaves]
    for required in (
        "control.seq",
        "control.slots[0].crc",
        "control.slots[1].rec.t_calc_ns",
        "interrupt.word",
        "telemetry.slots[0].rec.applied_t_calc_ns",
        "heartbeats[3].last_beat_ns",
        "stats[2].hist_sum_ns",
    ):
        assert required in names


def test_fields_do_not_overlap() -> None:
    leaves = sorted(_walk(build_layout(5)), key=lambda x: x[1])
    for (p1, o1, d1), (p2, o2, _) in itertools.pairwise(leaves):
        assert o1 + d1.itemsize <= o2, f"{p1} overlaps {p2}"


def test_hash_tracks_the_layout() -> None:
    assert layout_hash(build_layout(16)) == layout_hash(build_layout(16))
    assert layout_hash(build_layout(16)) != layout_hash(build_layout(17))


def test_state_record_carries_what_later_services_need() -> None:
    names = set(state_dtype(4).names or ())
    for f in (
        "seq",
        "t_calc_ns",
        "signal_id",
        "signal_t_ns",
        "dopamine",
        "serotonin",
        "norepinephrine",
        "atp_ratio",
        "cortisol",
        "boredom",
        "area_plasticity",
        "area_elasticity",
        "area_speed",
        "area_nt",
    ):
        assert f in names
    assert state_dtype(4)["area_nt"].shape == (4, 7)


def test_stats_schema_fits_and_resolves() -> None:
    for p in Process:
        assert len(COUNTERS[p]) <= N_COUNTERS and len(HISTOGRAMS[p]) <= N_HISTOGRAMS
        keys = [(c.name, c.labels) for c in COUNTERS[p]]
        assert len(keys) == len(set(keys)), f"duplicate counter in {p.name}"
    i = counter_index(Process.ORCHESTRATOR, "engs_signals_total", type="reward")
    assert COUNTERS[Process.ORCHESTRATOR][i].labels == (("type", "reward"),)
    assert histogram_index(Process.PHYSICS, "engs_state_staleness_seconds") == 2
    with pytest.raises(KeyError, match="no counter engs_nope_total"):
        counter_index(Process.PHYSICS, "engs_nope_total")


def test_histogram_buckets_span_25us_to_100ms_with_the_staleness_limits() -> None:
    assert HIST_BOUNDS_NS[0] == 25_000 and HIST_BOUNDS_NS[-1] == 100_000_000
    assert list(HIST_BOUNDS_NS) == sorted(set(HIST_BOUNDS_NS))
    assert 10_000_000 in HIST_BOUNDS_NS and 50_000_000 in HIST_BOUNDS_NS


def test_causes_fit_one_lane() -> None:
    assert max(int(c) for c in Cause) < 1 << 16
    assert {c.name for c in Cause} >= {
        "SCRAM",
        "ATP_EXHAUSTED",
        "PANIC",
        "UNSTABLE",
        "COGNITIVE_PAUSE",
        "MANUAL",
    }


def test_build_layout_rejects_silly_sizes() -> None:
    with pytest.raises(ValueError, match=r"max_areas must be in 1\.\.1024, got 0"):
        build_layout(0)


def test_every_counter_name_has_one_help_text() -> None:
    helps: dict[str, set[str]] = {}
    for specs in COUNTERS.values():
        for spec in specs:
            helps.setdefault(spec.name, set()).add(spec.help)
    assert {name: len(h) for name, h in helps.items() if len(h) != 1 or not next(iter(h))} == {}
