"""``engs bench area``: structure of the result and the command-line contract (timing
figures themselves are the bench's business, not a test's)."""

from __future__ import annotations

import argparse
import json

import pytest

from engs.services.bench import area as bench
from engs.shared.config import Config


def test_bench_times_the_default_and_synthetic_graphs() -> None:
    res = bench.run(edges=[100], cycles=12, max_seconds=0.5)
    rows = res["rows"]
    assert [r["graph"] for r in rows] == ["default", "synthetic"]
    assert rows[0]["edges"] == 29 and rows[0]["areas"] == 4
    assert rows[1]["edges"] == 100 and rows[1]["edge_nt"] == 700  # x 7 NTs
    for r in rows:
        assert r["cycles"] >= 10 and r["parameters"] > 0
        assert 0 < r["step_p50_s"] <= r["step_p99_s"] and r["frozen_p50_s"] > 0
    assert res["target"]["p50_s"] is None  # no 1 000-edge graph in this run
    table = bench.format_table(res)
    assert "synthetic    100" in table and "target" not in table


def test_bench_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    ap = argparse.ArgumentParser()
    bench.add_arguments(ap)
    args = ap.parse_args(["--edges", "60", "--cycles", "10", "--max-seconds", "0.2", "--json"])
    assert bench.run_args(Config(), args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"][1]["edges"] == 60
    assert bench.run_args(Config(), ap.parse_args(["--edges", "0"])) == 2
    assert "edge counts must be positive, got 0" in capsys.readouterr().err
