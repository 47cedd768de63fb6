"""Stats and heartbeats: single writer per process, readable from any process, exact
counts across processes, Prometheus ``le`` bucket semantics."""

from __future__ import annotations

import multiprocessing as mp
import os

from hypothesis import given
from hypothesis import strategies as st

from engs.shared.clock import monotonic_ns
from engs.shared.heartbeat import Heartbeat, read_heartbeats
from engs.shared.layout import HIST_BOUNDS_NS, N_BUCKETS, HeartbeatState, Process
from engs.shared.region import Region
from engs.shared.stats import StatsWriter, read_stats

ctx = mp.get_context("fork")
N = 100_000


def _count_in_child(instance: str) -> None:
    r = Region.attach(instance, lock_memory=False)
    w = StatsWriter(r, Process.PHYSICS)
    ticks = w.counter("engs_physics_ticks_total")
    hist = w.histogram("engs_physics_tick_seconds")
    hb = Heartbeat(r, Process.PHYSICS)
    hb.set_state(HeartbeatState.RUNNING)
    for i in range(N):
        w.inc(ticks)
        w.observe_ns(hist, (i % 200) * 1000)  # 0..199 µs
        hb.beat()
    hb.set_state(HeartbeatState.STOPPED)


def test_counts_written_in_one_process_are_exact_in_another(region: Region) -> None:
    p = ctx.Process(target=_count_in_child, args=(region.instance,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    snap = read_stats(region, Process.PHYSICS)
    assert snap.counter("engs_physics_ticks_total") == N
    h = snap.histograms[0]
    assert h.spec.name == "engs_physics_tick_seconds"
    assert h.count == N
    assert h.sum_ns == sum((i % 200) * 1000 for i in range(N))
    cum = dict(h.cumulative())
    # le=25 µs holds 0..25 µs inclusive: 26 of every 200 values.
    assert cum[25e-6] == 26 * N // 200
    assert cum[200e-6] == N and cum[float("inf")] == N
    hb = read_heartbeats(region)[Process.PHYSICS]
    assert hb.pid == p.pid and hb.state is HeartbeatState.STOPPED and hb.beats == N + 3
    assert hb.age_s is not None and 0 <= hb.age_s < 60


def test_other_slots_untouched(region: Region) -> None:
    StatsWriter(region, Process.ORACLE).inc(0, 5)
    assert read_stats(region, Process.ORACLE).counters[0][1] == 5
    assert all(v == 0 for _, v in read_stats(region, Process.PHYSICS).counters)
    infos = read_heartbeats(region)
    assert [i.process for i in infos] == list(Process)
    assert all(i.state is HeartbeatState.ABSENT and i.age_s is None for i in infos)


@given(st.lists(st.integers(min_value=-(10**6), max_value=10**10), min_size=1, max_size=50))
def test_buckets_follow_prometheus_le(values: list[int]) -> None:
    import uuid

    from engs.shared.region import unlink

    inst = f"test-hyp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    r = Region.create(inst, 1, lock_memory=False)
    try:
        w = StatsWriter(r, Process.ORCHESTRATOR)
        for v in values:
            w.observe_ns(0, v)
        h = read_stats(r, Process.ORCHESTRATOR).histograms[0]
        assert len(h.bucket_counts) == N_BUCKETS
        for bound_s, cum in h.cumulative():
            bound = bound_s * 1e9
            assert cum == sum(1 for v in values if max(v, 0) <= bound)
        assert h.sum_ns == sum(max(v, 0) for v in values)
    finally:
        r.close()
        unlink(inst)


def test_heartbeat_age_uses_the_shared_monotonic_clock(region: Region) -> None:
    hb = Heartbeat(region, Process.ORACLE)
    t = monotonic_ns()
    info = read_heartbeats(region, now_ns=t + 2_000_000_000)[Process.ORACLE]
    assert info.state is HeartbeatState.STARTING and info.pid == os.getpid()
    assert info.age_s is not None and 1.9 < info.age_s <= 2.0 + 1e-3
    hb.set_state(HeartbeatState.RUNNING)
    assert read_heartbeats(region)[Process.ORACLE].alive
    assert HIST_BOUNDS_NS[0] == 25_000


def test_peer_loss_needs_the_peer_seen_alive_first(region: Region) -> None:
    from engs.shared.heartbeat import PeerLoss

    watch = PeerLoss(region, Process.PHYSICS, after_s=0.5)
    t = monotonic_ns()
    assert not watch.lost(t + 10_000_000_000)  # never started: never "lost"
    hb = Heartbeat(region, Process.PHYSICS)
    hb.set_state(HeartbeatState.RUNNING)
    t = monotonic_ns()
    assert not watch.lost(t) and watch.seen_alive
    assert not watch.lost(t + 400_000_000)
    assert watch.lost(t + 600_000_000)
    hb.set_state(HeartbeatState.STOPPED)  # a clean stop is not a loss
    assert not watch.lost(monotonic_ns() + 600_000_000)
    assert not PeerLoss(region, Process.PHYSICS, after_s=0).lost(t + 10**12)  # disabled
