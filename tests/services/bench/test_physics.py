"""``engs bench physics``: structure and honesty of the report (no timing asserts)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engs.services.bench import main as bench_main
from engs.services.bench import physics as bench
from engs.services.physics.coefficients import Coefficients
from engs.shared.config import PhysicsConfig
from tests.services.physics.support import config


def test_parse_shape() -> None:
    assert bench.parse_shape("64x64") == (64, 64)
    assert bench.parse_shape("6^9") == (6,) * 9
    with pytest.raises(ValueError, match=r"shape must look like 64x64 or 6\^9, got 'big'"):
        bench.parse_shape("big")
    with pytest.raises(ValueError, match=r"1\.\.9 axes"):
        bench.parse_shape("2x1")


def test_run_reports_every_shape_against_a_measured_bound() -> None:
    result = bench.run(["16", "8x8", "2^9", "6^9"], ticks=15, backend="numpy", max_seconds=0.5)
    (run,) = result["runs"]
    assert run["backend"] == "numpy"
    bound = result["bound_bytes_per_s"]
    assert bound > 0
    rows = {r["shape"]: r for r in run["shapes"]}
    assert "skipped" in rows["6x6x6x6x6x6x6x6x6"]  # GPU-only
    for name in ("16", "8x8", "2x2x2x2x2x2x2x2x2"):
        r = rows[name]
        assert r["ticks"] == 15 and r["nonfinite"] == 0
        assert r["tick_p99_s"] >= r["tick_p50_s"] > 0
        assert r["node_steps_per_s"] == pytest.approx(r["nodes"] / r["tick_mean_s"])
        assert r["bytes_moved"] >= r["bytes_min"] > 0
        assert r["fraction"] == pytest.approx(r["bytes_per_s"] / bound)
        assert r["fused_fraction"] == pytest.approx(r["bytes_min"] / r["tick_p50_s"] / bound)
    assert "of bound" in bench.format_table(result)


def test_backends_side_by_side_on_the_same_shapes() -> None:
    """The NumPy twin and the fused CPU kernels on the same shapes, one bound for both;
    the side-by-side table's speed-up is the ratio of their p50s."""
    result = bench.run(["8x8", "16x16"], ticks=12, backend=["numpy", "numba"], max_seconds=0.3)
    numpy_run, numba_run = result["runs"]
    assert (numpy_run["backend"], numba_run["backend"]) == ("numpy", "numba")
    for a, b in zip(numpy_run["shapes"], numba_run["shapes"], strict=True):
        assert a["shape"] == b["shape"] and a["bytes_min"] == b["bytes_min"]
        assert b["bytes_moved"] == b["bytes_min"]  # fused: the minimum is what it moves
        assert a["bytes_moved"] > b["bytes_moved"]  # the twin's ufunc passes, counted
    table = bench.format_table(result)
    assert "side by side" in table
    speedup = numpy_run["shapes"][1]["tick_p50_s"] / numba_run["shapes"][1]["tick_p50_s"]
    assert f"numba {speedup:.2f}x" in table


def test_default_runs_every_available_backend_and_names_the_missing() -> None:
    found, missing = bench.available_backends()
    result = bench.run(["8x8"], ticks=10, max_seconds=0.2)
    assert [r["backend"] for r in result["runs"]] == [b.name for b in found]
    assert result.get("unavailable", {}) == missing
    for name, why in missing.items():
        assert f"not benched: {name}: {why}" in bench.format_table(result)


def test_numba_start_times_cold_then_warm() -> None:
    """Two fresh processes sharing a new cache: the first compiles, the second loads."""
    st = bench.numba_start_times((8, 8))
    assert st["cold_s"] > 0 and st["warm_s"] > 0


def test_counted_bytes_grow_with_the_lattice() -> None:
    small = bench.counted_bytes(config((16, 16)), Coefficients(2))
    large = bench.counted_bytes(config((32, 32)), Coefficients(2))
    assert 3.5 < large / small < 4.5  # traffic is proportional to the node count


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = bench_main("physics", ["--json", "--backend", "numpy", "--shape", "8x8", "--ticks", "12"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    row = data["runs"][0]["shapes"][0]
    assert data["runs"][0]["backend"] == "numpy" and row["shape"] == "8x8"
    assert math.isfinite(row["node_steps_per_s"]) and "numba_start" not in data


def test_main_reports_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main("physics", ["--backend", "numpy", "--shape", "0x3"]) == 2
    assert "engs bench physics:" in capsys.readouterr().err


def test_workload_has_drive() -> None:
    c = bench._workload(config((8, 8), areas=2))
    assert np.all(c.drive > 0)


def test_the_configuration_reaches_every_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--config``: the ``[physics]`` settings apply; only shape and areas are the bench's."""
    seen: list[PhysicsConfig] = []
    make_field = bench.make_field

    def spy(cfg: PhysicsConfig, backend: bench.Backend) -> bench.Field:
        seen.append(cfg)
        return make_field(cfg, backend)

    monkeypatch.setattr(bench, "make_field", spy)
    base = PhysicsConfig(damping=0.25, noise_amplitude=0.0)
    bench.run(["8x8", "4x4x4"], ticks=10, backend="numpy", max_seconds=0.2, base=base)
    assert [(c.shape, c.damping, c.noise_amplitude) for c in seen] == [
        ([8, 8], 0.25, 0.0),
        ([4, 4, 4], 0.25, 0.0),
    ]


def test_table_without_a_cpu_bound() -> None:
    """A CuPy-only run has no CPU copy bound: the table says the GPU's alone."""
    result = bench.run(["8x8"], ticks=10, backend="numpy", max_seconds=0.2)
    bound = result.pop("bound_bytes_per_s")
    del result["bound_method"]
    result.update(gpu_bound_bytes_per_s=bound, gpu_bound_method="device-to-device copy")
    table = bench.format_table(result)
    assert table.startswith("GPU bandwidth bound") and "\nbandwidth bound" not in table
