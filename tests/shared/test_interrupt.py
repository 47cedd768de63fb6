"""The interrupt word: per-lane single writers, one-load test, first raise time kept,
and a raise in one process seen by another."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engs.shared.clock import monotonic_ns
from engs.shared.interrupt import InterruptWord, lanes_or
from engs.shared.layout import ALL_CAUSES, Cause, Lane
from engs.shared.region import Region

ctx = mp.get_context("fork")


def test_nothing_set_reads_zero(region: Region) -> None:
    irq = InterruptWord(region)
    assert irq.test() == 0 and irq.causes() == Cause(0)


def test_lanes_are_independent_and_ored(region: Region) -> None:
    orch = InterruptWord(region, Lane.ORCHESTRATOR)
    oracle = InterruptWord(region, Lane.ORACLE)
    reader = InterruptWord(region)
    assert orch.raise_cause(Cause.ATP_EXHAUSTED) == Cause.ATP_EXHAUSTED
    assert (
        oracle.raise_cause(Cause.SCRAM | Cause.ATP_EXHAUSTED) == Cause.SCRAM | Cause.ATP_EXHAUSTED
    )
    assert reader.causes() == Cause.SCRAM | Cause.ATP_EXHAUSTED
    assert reader.test() == (
        int(Cause.ATP_EXHAUSTED) | (int(Cause.SCRAM | Cause.ATP_EXHAUSTED) << 16)
    )
    # The orchestrator clearing its ATP bit leaves the oracle's in force.
    assert orch.clear_cause(Cause.ATP_EXHAUSTED) == Cause.ATP_EXHAUSTED
    assert reader.causes() == Cause.SCRAM | Cause.ATP_EXHAUSTED
    oracle.clear_cause(ALL_CAUSES)
    assert reader.test() == 0


def test_first_raise_time_is_kept_while_set(region: Region) -> None:
    irq = InterruptWord(region, Lane.ORACLE)
    irq.raise_cause(Cause.PANIC, t_ns=1000)
    assert irq.raise_cause(Cause.PANIC, t_ns=5000) == Cause(0)  # already set
    assert irq.raised_at(Cause.PANIC) == 1000
    InterruptWord(region, Lane.ORCHESTRATOR).raise_cause(Cause.PANIC, t_ns=500)
    assert irq.raised_at(Cause.PANIC) == 500  # earliest over lanes
    irq.clear_cause(Cause.PANIC)
    irq.raise_cause(Cause.PANIC, t_ns=9000)
    assert irq.lane_causes(Lane.ORACLE) == Cause.PANIC
    assert irq.raised_at(Cause.SCRAM) == 0


def test_reader_without_lane_cannot_write(region: Region) -> None:
    with pytest.raises(PermissionError, match="read-only"):
        InterruptWord(region).raise_cause(Cause.MANUAL)


def _raise_later(instance: str, go: object) -> None:
    r = Region.attach(instance, lock_memory=False)
    go.wait(10)  # type: ignore[attr-defined]
    InterruptWord(r, Lane.ORACLE).raise_cause(Cause.SCRAM)


def test_raise_is_seen_by_another_process(region: Region) -> None:
    go = ctx.Event()
    p = ctx.Process(target=_raise_later, args=(region.instance, go))
    p.start()
    irq = InterruptWord(region)
    t0 = monotonic_ns()
    go.set()
    while not irq.test() and monotonic_ns() - t0 < 5_000_000_000:
        time.sleep(0.0001)
    p.join(10)
    assert irq.causes() == Cause.SCRAM
    assert t0 <= irq.raised_at(Cause.SCRAM) <= monotonic_ns()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Lane)),
            st.booleans(),
            st.integers(min_value=0, max_value=int(ALL_CAUSES)),
        ),
        max_size=40,
    )
)
def test_matches_a_model_of_per_lane_sets(ops: list[tuple[Lane, bool, int]]) -> None:
    import uuid

    from engs.shared.region import unlink

    inst = f"test-hyp-{uuid.uuid4().hex[:10]}"
    r = Region.create(inst, 1, lock_memory=False)
    try:
        words = {lane: InterruptWord(r, lane) for lane in Lane}
        model = {lane: 0 for lane in Lane}
        for lane, is_raise, bits in ops:
            if is_raise:
                words[lane].raise_cause(Cause(bits))
                model[lane] |= bits
            else:
                words[lane].clear_cause(Cause(bits))
                model[lane] &= ~bits
        expect = 0
        for lane in Lane:
            expect |= model[lane]
            assert words[lane].lane_causes(lane) == Cause(model[lane])
        assert int(InterruptWord(r).causes()) == expect
        assert lanes_or(InterruptWord(r).test()) == Cause(expect)
    finally:
        r.close()
        unlink(inst)
