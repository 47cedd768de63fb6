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
    assert result["backend"] == "numpy"
    assert result["bound_bytes_per_s"] > 0
    rows = {r["shape"]: r for r in result["shapes"]}
    assert "skipped" in rows["6x6x6x6x6x6x6x6x6"]  # GPU-only
    for name in ("16", "8x8", "2x2x2x2x2x2x2x2x2"):
        r = rows[name]
        assert r["ticks"] == 15 and r["nonfinite"] == 0
        assert r["tick_p99_s"] >= r["tick_p50_s"] > 0
        assert r["node_steps_per_s"] == pytest.approx(r["nodes"] / r["tick_mean_s"])
        assert r["bytes_moved"] >= r["bytes_min"] > 0
        assert r["fraction"] == pytest.approx(r["bytes_per_s"] / result["bound_bytes_per_s"])
    assert "of bound" in bench.format_table(result)


def test_counted_bytes_grow_with_the_lattice() -> None:
    small = bench.counted_bytes(config((16, 16)), Coefficients(2))
    large = bench.counted_bytes(config((32, 32)), Coefficients(2))
    assert 3.5 < large / small < 4.5  # traffic is proportional to the node count


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = bench_main("physics", ["--json", "--backend", "numpy", "--shape", "8x8", "--ticks", "12"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["shapes"][0]["shape"] == "8x8"
    assert math.isfinite(data["shapes"][0]["node_steps_per_s"])


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
