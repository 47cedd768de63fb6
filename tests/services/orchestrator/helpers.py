"""Builders shared by the orchestrator tests: configs, ENGS instances, telemetry."""

from __future__ import annotations

from typing import Any

import numpy as np

from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.metabolism import Calibration
from engs.shared.config import Config, load_config
from engs.shared.layout import telemetry_dtype

#: Couplings off and no quadratic term: each level relaxes on its own, so one cycle
#: of the exact linear step is x_eq + e^{-λ dt}(x - x_eq), computable by hand.
DECOUPLED: dict[str, Any] = {
    "orchestrator.coupling.kappa_ds": 0.0,
    "orchestrator.coupling.kappa_dn": 0.0,
    "orchestrator.coupling.kappa_sd": 0.0,
    "orchestrator.coupling.kappa_sn": 0.0,
    "orchestrator.coupling.kappa_sa": 0.0,
    "orchestrator.coupling.kappa_nd": 0.0,
    "orchestrator.coupling.kappa_ns": 0.0,
    "orchestrator.coupling.kappa_na": 0.0,
    "orchestrator.coupling.phi_ad_nmu_s": 0.0,
    "orchestrator.coupling.phi_an_nmu_s": 0.0,
    "orchestrator.coupling.restoring_gain": 0.0,
}


#: For long runs that test only the global dynamics (D, S, N, ATP, boredom, critic): the
#: area model never feeds back into them, so leaving it out changes nothing those tests
#: assert and saves ~0.4 ms per cycle (docs/areas.md).
GLOBAL_ONLY: dict[str, Any] = {"orchestrator.areas.enabled": False}


def make_config(values: dict[str, Any] | None = None) -> Config:
    """The default config with dotted-path overrides (``"orchestrator.nap.exit_at"``)."""
    overrides = {k: (tuple(k.split(".")), v) for k, v in (values or {}).items()}
    return load_config(env={}, overrides=overrides)


def make_engs(values: dict[str, Any] | None = None) -> Engs:
    """An ENGS on the reference host (cost factor 1, no benchmark: deterministic)."""
    cfg = make_config(values)
    ref = Calibration.reference(cfg.orchestrator.metabolism.reference_score)
    return Engs(cfg, calibration=ref)


class FakeTelemetry:
    """A PhysicsTelemetry record as a physics at ``tick_hz`` would publish it, advanced
    by hand: ``next()`` moves ``ticks_per_cycle`` ticks on."""

    def __init__(
        self,
        engs: Engs,
        *,
        energy: float = 100.0,
        entropy_bits: float = 10.0,
        n_nodes: int = 4096,
        metric_grad: tuple[float, ...] | None = None,
    ) -> None:
        cfg = engs.config
        self.record = np.zeros((), telemetry_dtype(cfg.shm.max_areas))
        self.ticks_per_cycle = round(cfg.physics.tick_hz / cfg.orchestrator.cycle_hz)
        n = engs.n_areas
        self.record["n_areas"] = n
        self.record["n_nodes"] = n_nodes
        self.record["energy"] = energy
        self.record["entropy_bits"] = entropy_bits
        if metric_grad is not None:
            self.record["area_metric_grad"][:n] = metric_grad
        self.record["area_activity"][:n] = np.arange(1, n + 1)

    def next(self) -> np.ndarray[Any, Any]:
        self.record["tick"] += self.ticks_per_cycle
        return self.record
