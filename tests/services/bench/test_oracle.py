"""``engs.services.bench.oracle.run`` (for ``engs bench oracle``): a short run against live
writer processes returns its figures and leaves nothing behind. Figures are not judged
here (timings belong in the bench, not in pass/fail tests); their consistency is."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import msgspec

from engs.services.bench.oracle import format_result, run
from engs.shared.config import Config


def test_bench_measures_a_short_run(instance: str) -> None:
    cfg = msgspec.convert({"shm": {"max_areas": 8}, "oracle": {"poll_hz": 200}}, Config)
    res = run(cfg, duration_s=0.5, scrape_every_s=0.1, instance=instance)
    assert res["poll_hz"] == 200 and 0.5 <= res["duration_s"] < 5
    assert res["polls"] > 0 and res["achieved_hz"] == res["polls"] / res["duration_s"]
    assert res["scrapes"] >= 1 and res["scrape_mean_ms"] > 0
    assert res["poll_loop_cpu_percent"] > 0 and res["cpu_percent"] > 0
    assert res["poll_mean_us"] > 0 and res["poll_p99_le_us"] is not None
    assert "polls" in format_result(res)
    assert not Path(f"/dev/shm/engs-{instance}").exists()
    assert mp.active_children() == []
