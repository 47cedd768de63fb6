"""The session log across rotations: segments are bounded in number, each one opens with
a snapshot that replays the cycles after it bit for bit, no cycle falls between two
segments, and the rotation's fsync runs off the control cycle (on the finisher)."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.inputs import InputAccumulator
from engs.services.orchestrator.publish import dynamic_crc, fill
from engs.services.orchestrator.session import (
    CycleRecord,
    Header,
    SessionLog,
    read_records,
    replay,
)
from engs.shared.config import load_config
from engs.shared.layout import state_dtype


class _CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.threads: set[int] = set()
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.jobs += 1

        def run():  # type: ignore[no-untyped-def]
            self.threads.add(threading.get_ident())
            return fn(*args, **kwargs)

        return super().submit(run)


def test_rotated_segments_each_replay_bit_for_bit(tmp_path: Path) -> None:
    cfg = load_config(env={}, overrides={"m": (("orchestrator", "metabolism", "calibrate"), False)})
    engs = Engs(cfg)
    pool = _CountingPool()
    probe = SessionLog(tmp_path / "probe", "t", cfg, segment_bytes=1 << 30, segments=1)
    probe.open_segment(engs)
    header_bytes = probe._size
    probe.close()
    # Room for the header and roughly 60 cycles, so 400 cycles rotate several times.
    log = SessionLog(
        tmp_path, "t", cfg, segment_bytes=header_bytes + 60 * 150, segments=3, finisher=pool
    )
    acc = InputAccumulator(cfg.physics.areas)
    rec = np.zeros((), dtype=state_dtype(cfg.shm.max_areas))
    scratch = np.zeros((), dtype=state_dtype(cfg.shm.max_areas))
    rng = np.random.default_rng(7)
    log.open_segment(engs)
    for i in range(400):
        if i % 7 == 0:
            acc.add_reward(float(rng.uniform(-1, 1)))
        if i % 11 == 0:
            acc.set_stress(float(rng.uniform(0, 1)))
        inputs = acc.take()
        result = engs.step(inputs, None)
        fill(engs, rec)
        log.append(engs, result.cycle, inputs, None, dynamic_crc(rec, scratch), [])
    log.close()
    pool.shutdown()

    segments = sorted(tmp_path.glob("session-t-*.log"))
    assert len(segments) == 3  # bounded: older ones deleted
    assert pool.jobs >= 3 and threading.get_ident() not in pool.threads
    spans = []
    for seg in segments:
        recs = list(read_records(seg))
        assert isinstance(recs[0], Header)
        cycles = [r.cycle for r in recs[1:] if isinstance(r, CycleRecord)]
        if not cycles:  # the segment opened after the last rotation: a snapshot only
            assert seg == segments[-1] and recs[0].cycle == 400
            continue
        assert cycles == list(range(cycles[0], cycles[-1] + 1))
        assert cycles[0] == recs[0].cycle + 1  # the header is the state before them
        spans.append((cycles[0], cycles[-1]))
        res = replay(seg)
        assert res.cycles == len(cycles) and res.mismatches == 0, res
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end + 1  # no cycle between segments
    assert spans[-1][1] == 400
