"""``engs bench cycle``: the machinery end to end at a tiny size (figures are the bench's
business, never a test's)."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from engs.services.bench import cycle
from engs.shared.config import Config


def test_the_bench_times_real_cycles_and_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    res = cycle.measure(Config(), cycles=20, warmup=5, session_log=True)
    assert res["cycles"] == 20 and res["session_log"] is True
    assert 0 < res["p50_s"] <= res["p99_s"] <= res["max_s"]
    assert res["period_s"] == 0.01
    ap = argparse.ArgumentParser()
    cycle.add_arguments(ap)
    assert cycle.run_args(Config(), ap.parse_args(["--cycles", "5"])) == 2
    assert cycle.run_args(Config(), ap.parse_args(["--quick", "--json"])) == 0
    assert json.loads(capsys.readouterr().out)["cycles"] == 200
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("engs-bench-cycle-")]
