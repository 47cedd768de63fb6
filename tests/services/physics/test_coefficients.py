"""Per-area coefficients from a NeurochemicalState record, and the tick table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engs.services.physics.coefficients import (
    COL,
    Coefficients,
    PhysicsParams,
    TickTable,
    derive_tick_table,
)
from engs.shared.layout import Mode, state_dtype
from tests.services.physics.support import config


def state(max_areas: int = 8, n_areas: int = 3) -> np.ndarray:
    rec = np.zeros((), dtype=state_dtype(max_areas))
    rec["n_areas"] = n_areas
    for i, name in enumerate(
        ("area_plasticity", "area_elasticity", "area_speed", "area_damping", "area_drive",
         "area_stimulus", "area_noise")
    ):  # fmt: skip
        rec[name][:n_areas] = 0.1 * (i + 1) + np.arange(n_areas)
    return rec


def test_load_state_copies_rows_and_keeps_the_rest_neutral() -> None:
    c = Coefficients(4)
    c.load_state(state(n_areas=3), with_stimulus=True)
    np.testing.assert_allclose(c.speed, [0.3, 1.3, 2.3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(c.stimulus, [0.6, 1.6, 2.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(c.drive[3], 0.0)
    c.load_state(state(n_areas=3), with_stimulus=False)  # one-shot: later ticks get none
    np.testing.assert_array_equal(c.stimulus, 0.0)


def test_load_state_from_a_void_record_and_more_rows_than_areas() -> None:
    buf = np.zeros(2, dtype=state_dtype(8))
    buf[1] = state(n_areas=6)
    c = Coefficients(2)
    c.load_state(buf[1], with_stimulus=True)
    np.testing.assert_allclose(c.plasticity, [0.1, 1.1], rtol=1e-6)


def test_plasticity_off_flag_freezes_the_metric_and_bad_values_are_sanitised() -> None:
    rec = state(n_areas=3)
    rec["flags"] = int(Mode.PLASTICITY_OFF)
    rec["area_speed"][0] = np.nan
    rec["area_damping"][1] = -2.0
    rec["area_drive"][2] = -0.5  # a signed drive amplitude is legal
    c = Coefficients(3)
    c.load_state(rec, with_stimulus=False)
    np.testing.assert_array_equal(c.plasticity, 0.0)
    np.testing.assert_array_equal(c.elasticity, 0.0)
    assert c.metric_frozen  # consolidation stops too (plasticity.py)
    assert c.speed[0] == 0.0 and c.damping[1] == 0.0
    assert c.drive[2] == pytest.approx(-0.5)


def test_tick_table_units() -> None:
    cfg = config((8, 8), areas=2, wave_speed=50.0, damping=0.2, plasticity_rate=0.5)
    p = PhysicsParams.from_config(cfg)
    c = Coefficients(2)
    c.speed[:] = [2.0, 0.5]
    c.damping[:] = [1.0, 3.0]
    c.plasticity[:] = [0.0, 2.0]
    c.drive[:] = [0.0, 1.5]
    t = TickTable(2)
    bound = np.full(2, 16.0)  # 2-D, g ≡ 2
    clamps = derive_tick_table(c, p, bound, tick=0, critical=False, out=t)
    assert clamps == 0
    np.testing.assert_allclose(t.table[:, COL["C2"]], [100.0**2, 25.0**2], rtol=1e-6)
    np.testing.assert_allclose(t.table[:, COL["DAMP"]], np.exp([-0.1e-3, -0.3e-3]), rtol=1e-6)
    np.testing.assert_allclose(t.table[:, COL["ETA_H"]], [0.0, 1e-3], rtol=1e-6)
    # first tick of a drive 1.5: Ψ += 1.5 e^{iω h}
    w = 2 * math.pi * cfg.carrier_hz * 1e-3
    np.testing.assert_allclose(t.table[1, COL["SHIFT_RE"]], 1.5 * math.cos(w), rtol=1e-6)
    np.testing.assert_allclose(t.table[1, COL["SHIFT_IM"]], 1.5 * math.sin(w), rtol=1e-6)
    np.testing.assert_allclose(t.inv_s2, [0.25, 4.0])
    assert derive_tick_table(c, p, bound, tick=0, critical=True, out=t) == 0
    np.testing.assert_allclose(t.gamma, [1.0, 1.0])  # emergency floor
    c.speed[:] = [100.0, 0.5]
    assert derive_tick_table(c, p, bound, tick=0, critical=False, out=t) == 1
    assert t.s_eff[0] == pytest.approx(1.0 / (50.0 * 1e-3 * 4.0))
