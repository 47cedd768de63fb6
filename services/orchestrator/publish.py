"""What goes into a NeurochemicalState, written once: the live loop
(:mod:`engs.services.orchestrator.main`), replay (:mod:`~engs.services.orchestrator.session`)
and the validation harness (:mod:`engs.services.validate.sim`) all fill it here.

* :func:`fill` writes everything the dynamics decide — globals, gates, flags, the
  per-area rows and the coupling's spectral abscissa — what replay recomputes and checks;
* :func:`stamp` writes the loop-owned fields (:data:`LOOP_FIELDS`: publication number,
  time, newest signal, priority) that replay does not;
* :func:`dynamic_crc` is the checksum of the dynamics' part, for the session log only
  (the loop computes it only while the log is on).

Nothing here allocates an array: the record is the caller's, reused every cycle.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from engs.shared.layout import Priority

if TYPE_CHECKING:
    from engs.services.orchestrator.engs import Engs

#: The fields the loop owns (:func:`stamp`); everything else is the dynamics' (:func:`fill`).
LOOP_FIELDS = ("seq", "t_calc_ns", "signal_id", "signal_t_ns", "priority")
#: The per-area coefficient rows; rows beyond ``n_areas`` are zero.
AREA_FIELDS = (
    "area_plasticity", "area_elasticity", "area_speed", "area_damping",
    "area_drive", "area_noise", "area_stimulus",
)  # fmt: skip


def fill(engs: Engs, out: np.ndarray[Any, Any]) -> None:
    """Write the neurochemistry of ``engs`` into a NeurochemicalState record in place.

    ``out``: 0-d array of ``engs.shared.layout.state_dtype(max_areas)``. Writes the
    globals, gates, flags, n_areas, the per-area rows (rows beyond ``n_areas`` zeroed)
    and ``spectral_abscissa``; leaves :data:`LOOP_FIELDS` to :func:`stamp`.

    Per-area rows: with the area model (``orchestrator.areas.enabled``), each area's
    coefficients are the gates of its own effective levels and the other modulators'
    multipliers (:meth:`AreaNeurochemistry.fill`, docs/areas.md), and ``area_nt`` holds
    the seven effective levels; without it, every area gets the coefficients of the
    global levels and ``area_nt`` their D, S, N.
    """

    n = engs.n_areas
    if out["area_plasticity"].shape[0] < n:
        raise ValueError(f"state record has {out['area_plasticity'].shape[0]} area rows, need {n}")
    lv = engs.levels
    out["flags"] = int(engs.flags)
    out["n_areas"] = n
    out["dopamine"] = lv.dopamine
    out["serotonin"] = lv.serotonin
    out["norepinephrine"] = lv.norepinephrine
    out["atp_ratio"] = engs.atp_ratio
    out["atp_reserve"] = engs.ledger.available_nmu
    out["cortisol"] = lv.cortisol
    out["boredom"] = engs.boredom.level
    out["td_error"] = lv.td_error
    out["phasic_dopamine"] = lv.phasic_dopamine
    out["reward_rate"] = lv.reward_rate
    out["relevance_gate"] = engs.relevance_gate
    out["plasticity_gate"] = engs.plasticity_gate
    out["elasticity_gate"] = engs.elasticity_gate
    out["speed_gain"] = engs.speed_gain
    nt = out["area_nt"]
    if engs.area_chem is not None:
        engs.area_chem.fill(out, engs.drive, engs.noise, engs.stimulus)
    else:
        for field, value in (
            ("area_plasticity", engs.plasticity_gate),
            ("area_elasticity", engs.elasticity_gate),
            ("area_speed", engs.speed_gain),
            ("area_damping", 1.0),
            ("area_drive", engs.drive),
            ("area_noise", engs.noise),
        ):
            out[field][:n] = value
        out["area_stimulus"][:n] = engs.stimulus
        nt[:n] = 0.0
        nt[:n, 0] = lv.dopamine
        nt[:n, 1] = lv.serotonin
        nt[:n, 2] = lv.norepinephrine
    for field in AREA_FIELDS:
        out[field][n:] = 0.0
    nt[n:] = 0.0
    out["spectral_abscissa"] = engs.stability_report().spectral_abscissa


def stamp(
    rec: np.ndarray[Any, Any],
    seq: int,
    t_calc_ns: int,
    signal_id: int,
    signal_t_ns: int,
    priority: Priority,
) -> None:
    """Write the loop-owned fields of a record about to be published."""
    rec["seq"] = seq
    rec["t_calc_ns"] = t_calc_ns
    rec["signal_id"] = signal_id
    rec["signal_t_ns"] = signal_t_ns
    rec["priority"] = priority


def dynamic_crc(state: np.ndarray[Any, Any], scratch: np.ndarray[Any, Any]) -> int:
    """CRC-32 of a NeurochemicalState with the loop-owned fields zeroed."""
    scratch[...] = state
    for f in LOOP_FIELDS:
        scratch[f] = 0
    return zlib.crc32(scratch.tobytes())
