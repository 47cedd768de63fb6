"""Metabolism: the NMU scale, host calibration, thermal coupling, and the ATP row of the
coupled step (docs/orchestrator.md §6)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from engs.services.orchestrator.inputs import CycleInputs
from engs.services.orchestrator.metabolism import (
    Calibration,
    HostBenchmark,
    MetabolicCosts,
    Operation,
    benchmark_cpu,
    benchmark_gpu,
    calibrate,
    host_score,
    read_temperature,
    thermal_multiplier,
)
from tests.services.orchestrator.helpers import DECOUPLED, FakeTelemetry, make_config, make_engs


def test_thermal_multiplier_clips_before_squaring() -> None:
    assert thermal_multiplier(None, 70.0, 85.0) == 1.0  # unknown: no penalty
    assert thermal_multiplier(40.0, 70.0, 85.0) == 1.0  # cool: no penalty (seed squares -2)
    assert thermal_multiplier(77.5, 70.0, 85.0) == pytest.approx(1.25)
    assert thermal_multiplier(85.0, 70.0, 85.0) == 2.0


def test_read_temperature_takes_the_hottest_zone(tmp_path: Path) -> None:
    for i, (milli, kind) in enumerate([("45000", "acpitz"), ("61500", "x86_pkg_temp")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "temp").write_text(milli + "\n")
        (zone / "type").write_text(kind + "\n")
    broken = tmp_path / "thermal_zone9"
    broken.mkdir()
    (broken / "temp").write_text("n/a\n")
    assert read_temperature(tmp_path) == (61.5, f"{tmp_path}/thermal_zone1 (x86_pkg_temp)")


def test_read_temperature_reports_when_there_is_none(tmp_path: Path) -> None:
    temp, source = read_temperature(tmp_path)
    assert temp is None
    assert source == f"none: no readable {tmp_path}/thermal_zone*/temp, M(T) = 1"


def test_calibration_factor_charges_a_slow_host_more() -> None:
    slow = Calibration(score=0.05, reference_score=0.25)
    fast = Calibration(score=50.0, reference_score=0.25)
    assert slow.factor == 5.0
    assert fast.factor == 0.005
    assert Calibration.reference(0.25).factor == 1.0
    assert host_score(2e11, 30.0) == pytest.approx(0.2 + 0.03)


def test_operation_prices_on_the_nmu_scale() -> None:
    cfg = make_config().orchestrator.metabolism
    costs = MetabolicCosts(cfg, Calibration(score=0.125, reference_score=0.25))  # factor 2
    assert costs.operation_nmu(Operation.EXTERNAL_CALL, None) == 100.0
    assert costs.operation_nmu(Operation.SELF_IMPROVEMENT, 85.0) == 1000.0 * 2 * 2
    # Continuous work at x_eq: (100 + 1500) NMU/s x factor x nodes / 4096.
    scale = costs.activity_scale(8192, None)
    assert scale == 4.0
    assert costs.equilibrium_nmu_s(scale) == 6400.0


def test_cpu_benchmark_measures_something_plausible() -> None:
    b = benchmark_cpu(budget_s=0.05, n=64, copy_mb=4)
    assert isinstance(b, HostBenchmark)
    assert b.device == "cpu"
    assert b.flops > 1e6 and b.bandwidth_gbs > 0.01
    assert b.score == pytest.approx(host_score(b.flops, b.bandwidth_gbs))


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_gpu_benchmark_is_skipped_without_cupy() -> None:
    assert benchmark_gpu(0.01) is None


def test_calibrate_uses_the_measured_score() -> None:
    cfg = make_config().orchestrator.metabolism
    cal = calibrate(cfg, use_gpu=False, budget_s=0.05)
    assert cal.cpu is not None and cal.gpu is None
    assert cal.score == cal.cpu.score
    assert cal.factor == pytest.approx(0.25 / cal.cpu.score)
    assert cal.temperature_source  # either a zone or the reason there is none


def test_awake_atp_follows_the_linear_row_minus_equilibrium_consumption() -> None:
    """Decoupled, one cycle on the reference host and lattice from A = 1: only the
    equilibrium consumption, 1600 NMU/s x 10 ms."""
    engs = make_engs(DECOUPLED)
    tel = FakeTelemetry(engs, n_nodes=4096)
    engs.step(CycleInputs(), tel.next())
    assert engs.ledger.available_nmu == pytest.approx(5e6 - 16.0, abs=1e-6)
    # From A = 0.5: resynthesis λ_A (1 - A) on the exact step, minus the same 16 NMU.
    engs.ledger.apply(-2.5e6 + 16.0)
    a = engs.atp_ratio
    engs.step(CycleInputs(), tel.next())
    want = (1.0 + math.exp(-1e-4 * 0.01) * (a - 1.0)) * 5e6 - 16.0
    assert engs.ledger.available_nmu == pytest.approx(want, abs=1e-6)


def test_dopamine_above_baseline_costs_atp() -> None:
    """The seed's φ_AD: D above D_eq drains more than the equilibrium rate."""
    base, high = make_engs(), make_engs()
    high.dopamine = 1.0
    for e in (base, high):
        tel = FakeTelemetry(e)
        for _ in range(100):
            e.step(CycleInputs(), tel.next())
    assert high.ledger.available_nmu < base.ledger.available_nmu


def test_no_field_no_continuous_cost() -> None:
    engs = make_engs(DECOUPLED)
    for _ in range(100):
        engs.step(CycleInputs(), None)  # no physics: n_nodes 0
    assert engs.ledger.available_nmu == 5e6
