"""Calibration of the area model at construction: the resting bands, store sizes and
base gains, and the receptor and edge capacities.

Per-area resting levels and target bands (:func:`rest_bands`): each area rests at its
configured level — the NT's rest x the innervation weights reaching it — the centre of a
band ``band_half_width`` either side.

:func:`calibrate` then solves the nuclei's store sizes and the base gains so that, at the
ENGS's resting state, every area rests at that centre; receptor capacity is set so the
resting influx binds ``rest_occupancy`` of it and each edge cap to ``edge_cap_factor`` x
its resting transfer. Base gains start at the innervation weights (the seed's "≈ 1") up
to the per-target correction.

Writer: :class:`~engs.services.orchestrator.areas.model.AreaNeurochemistry`, once, while
it is built (the kinetics' pool scale and capacities and the modulators' base gains are
written in place). Deterministic: a fixed-point iteration, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.homeostasis import Modulators
from engs.services.orchestrator.areas.projections import Graph
from engs.services.orchestrator.areas.transfer import Kinetics, steady_state
from engs.shared.config import AreasConfig
from engs.shared.errors import ConfigError
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]

CALIBRATION_ITERATIONS = 200
CALIBRATION_TOL = 1e-9
#: Rest of the DMN metrics (inputs.DMN_FIELDS): no change, fully safe.
DMN_REST = np.array([0.0, 0.0, 0.0, 1.0, 0.0])


@dataclass(frozen=True)
class RestBands:
    """Each area's resting level and target band, area blocks (A, 7), field units."""

    centre: F64Array
    lo: F64Array
    hi: F64Array


@dataclass(frozen=True)
class RestState:
    """What the calibrated graph does at rest (the area model's first state)."""

    mu: F64Array
    """(K, 7) levels of every site."""
    s: F64Array
    """(E, 7) modulators."""
    sent_rest: F64Array
    """(E, 7) each carried edge's resting transfer (1 where the edge carries nothing)."""


def rest_bands(graph: Graph, kin: Kinetics, rest: F64Array, half_width: float) -> RestBands:
    """The bands around each area's resting level ``rest`` (7,) x its innervation,
    kept ``half_width`` inside [0, ceiling]."""
    n0 = graph.n_nuclei
    inflow = np.zeros((graph.n_sites, N_NT))
    np.add.at(inflow, graph.tgt, graph.weight * kin.mask)
    ceil = kin.ceiling[n0:]
    centre = np.clip(rest * inflow[n0:], half_width, ceil - half_width)
    return RestBands(centre, centre - half_width, centre + half_width)


def calibrate(
    kin: Kinetics, mods: Modulators, rest: F64Array, centre: F64Array, ac: AreasConfig
) -> RestState:
    """Solve store sizes (``kin``'s pool scale) and base gains (``mods.g``) for the
    resting state (module docstring), set ``kin``'s receptor and edge capacities, and
    return that state. Raises ConfigError when the iteration does not converge or the
    gains leave [gain_min, gain_max]."""
    k, n0 = kin.n_sites, kin.n_nuclei
    drv = rest[None, :]
    zeros = np.zeros((k, N_NT))
    nuclei = kin.turnover > 0
    scale = np.ones((k, N_NT))
    target = np.zeros((k, N_NT))
    target[n0:] = centre
    level = np.where(nuclei, rest, target)
    # Gains that calibration adjusts: edges from a store, or, where a target gets an
    # NT from no store, the area edges that bring it (raising the gain of an area
    # edge only drains its source).
    carried = kin.mask > 0
    from_store = nuclei.reshape(-1)[kin.idx_src].reshape(carried.shape) & carried
    fed = np.bincount(kin.idx_tgt, weights=from_store.reshape(-1), minlength=k * N_NT) > 0
    adjust = from_store | (carried & ~fed[kin.idx_tgt].reshape(carried.shape))
    ss = None
    worst = np.inf
    for _ in range(CALIBRATION_ITERATIONS):
        mods.features(kin, level, zeros, zeros, DMN_REST)
        mods.forward()
        ss = steady_state(kin, mods.g * mods.s, drv)
        mu = ss.mu[0]
        kappa = np.ones((k, N_NT))
        kappa[n0:] = target[n0:] / np.maximum(mu[n0:], 1e-300)
        worst = float(np.max(np.abs(kappa - 1.0)))
        level = np.where(nuclei, mu / scale, mu)
        if worst < CALIBRATION_TOL:
            break
        k_tgt = kappa.reshape(-1)[kin.idx_tgt].reshape(mods.g.shape)
        sent = ss.sent[0].reshape(-1)
        num = np.bincount(kin.idx_src, weights=sent * k_tgt.reshape(-1), minlength=k * N_NT)
        den = np.bincount(kin.idx_src, weights=sent, minlength=k * N_NT)
        k_src = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0).reshape(k, N_NT)
        k_src = np.where(nuclei, k_src, 1.0)  # an area source is no store to resize
        scale = np.where(nuclei, scale * k_src, 1.0)
        kin.set_pool_scale(scale)
        k_src_e = k_src.reshape(-1)[kin.idx_src].reshape(mods.g.shape)
        mods.g *= np.where(adjust, k_tgt / k_src_e, 1.0)
    else:
        raise ConfigError(
            "`$.orchestrator.areas`: calibration did not converge (the areas cannot be "
            f"brought to their resting levels; worst ratio error {worst:.3g})"
        )
    hc = ac.homeostasis
    g_min, g_max = float(mods.g[carried].min()), float(mods.g[carried].max())
    if g_max > hc.gain_max or g_min < hc.gain_min:
        raise ConfigError(
            f"`$.orchestrator.areas.homeostasis`: the calibrated base gains [{g_min:.3g}, "
            f"{g_max:.3g}] leave [gain_min, gain_max] = [{hc.gain_min}, {hc.gain_max}]"
        )
    assert ss is not None  # the loop ran at least once
    kin.cap_recv[...] = np.where(kin.receives, ss.influx[0] / ac.rest_occupancy, 0.0)
    kin.cap_edge[...] = np.where(carried, ss.sent[0] * ac.edge_cap_factor, np.inf)
    return RestState(mu=ss.mu[0], s=mods.s.copy(), sent_rest=np.where(carried, ss.sent[0], 1.0))
