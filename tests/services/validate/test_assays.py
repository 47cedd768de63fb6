"""Each assay's verdicts are computed from the simulation: the same assay, run again with
the mechanism it tests replaced, must fail where it passed.

Every test runs the assay twice with the same (reduced) parameters and seed — intact and
with one mechanism flipped — and checks the verdict of the prediction that depends on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engs.services.validate import (
    causality,
    foraging,
    homeostasis,
    lesions,
    risk,
    rpe,
    stability,
)
from engs.services.validate.report import AssayResult
from engs.services.validate.sim import Constant, Mechanisms, Sim, derive_config
from engs.shared.config import Config, CouplingConfig, load_config

JOBS = 2


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(env={})


def verdict(result: AssayResult, pid: str) -> bool:
    (p,) = [p for p in result.predictions if p.id == pid]
    return p.passed


def test_lesion_d_needs_the_dopamine_gate(cfg: Config) -> None:
    params = lesions.Params(
        settle_s=1.0, learn_s=5.0, relearn_s=0.5, conditions=("D=0",), arousal_levels=()
    )
    intact = lesions.run(cfg, params, jobs=JOBS)
    flipped = lesions.run(
        cfg, params, jobs=JOBS, mechanisms=Mechanisms(plasticity_gate=Constant(1.0))
    )
    assert [p.id for p in intact.predictions] == ["lesion.D.no_adaptation"]
    assert verdict(intact, "lesion.D.no_adaptation")
    # with the gate constant, D = 0 no longer stops plasticity: the pattern is learned
    assert not verdict(flipped, "lesion.D.no_adaptation")
    assert flipped.numbers["D=0"]["peak_accuracy"] > intact.numbers["D=0"]["peak_accuracy"]


def test_lesion_n_needs_the_relevance_gate(cfg: Config) -> None:
    params = lesions.Params(
        settle_s=0.5, learn_s=4.0, relearn_s=0.5, conditions=("control", "N=1"), arousal_levels=()
    )
    intact = lesions.run(cfg, params, jobs=JOBS)
    flipped = lesions.run(
        cfg, params, jobs=JOBS, mechanisms=Mechanisms(relevance_gate=Constant(0.6))
    )
    assert verdict(intact, "lesion.N.admits_irrelevant")
    assert not verdict(flipped, "lesion.N.admits_irrelevant")
    assert flipped.numbers["N=1"]["irrelevant_admitted"] == 0


@pytest.mark.slow
def test_lesion_s_needs_the_elasticity_gate_and_consolidation(cfg: Config) -> None:
    """S = 0 overwrites because λ(S) is what holds the metric to its consolidated value:
    with the elasticity gate held at its resting value the lesion has no phenotype, and
    with consolidation off (κ = 0) the control forgets as fast as the lesion."""
    params = lesions.Params(conditions=("control", "S=0"), arousal_levels=())
    intact = lesions.run(cfg, params, jobs=JOBS)
    assert verdict(intact, "lesion.S.overwritten")
    assert verdict(intact, "lesion.S.specific")
    held = lesions.run(cfg, params, jobs=JOBS, mechanisms=Mechanisms(elasticity_gate=Constant(0.5)))
    assert not verdict(held, "lesion.S.overwritten")
    assert not verdict(held, "lesion.S.specific")
    assert held.numbers["S=0"]["saturated_edge_fraction"] < 0.5
    unconsolidated = lesions.run(
        derive_config(cfg, {"physics.consolidation_rate": 0.0}), params, jobs=JOBS
    )
    assert not verdict(unconsolidated, "lesion.S.specific")
    assert (
        unconsolidated.numbers["control"]["recall_p1_after_p2"]
        < intact.numbers["control"]["recall_p1_after_p2"] - 0.2
    )


@pytest.mark.slow
def test_arousal_inverted_u_needs_the_response_gain(cfg: Config) -> None:
    """The high end of the inverted U is norepinephrine's response gain (adaptive gain):
    with the gain held at 1 (arousal_gain 0) N = 1 learns as well as the peak, and the
    N = 1 lesion's spurious imprint is gone once its input side is held calm."""
    params = lesions.Params(conditions=("N=1", lesions.CALM_INPUT), arousal_levels=(0.0, 0.4, 1.0))
    intact = lesions.run(cfg, params, jobs=JOBS)
    assert verdict(intact, "lesion.arousal.inverted_u")
    assert verdict(intact, "lesion.N.spurious_imprint")
    flat = lesions.run(
        derive_config(cfg, {"orchestrator.areas.scaling.arousal_gain": 0.0}), params, jobs=JOBS
    )
    assert not verdict(flat, "lesion.arousal.inverted_u")
    assert flat.numbers["N=1"]["final_accuracy"] > intact.numbers["N=1"]["final_accuracy"]
    assert not verdict(flat, "lesion.N.spurious_imprint")


def test_rpe_signatures_need_the_learned_critic(cfg: Config) -> None:
    params = rpe.Params(
        probabilities=(0.0, 0.5, 1.0), delays_s=(), magnitudes=(), trials=8, probe_blocks=2
    )
    intact = rpe.run(cfg, params, jobs=JOBS)
    flipped = rpe.run(cfg, params, jobs=JOBS, mechanisms=Mechanisms(zero_value=True))
    for pid in (
        "rpe.burst_unexpected",
        "rpe.no_dip_before_reward",
        "rpe.omission_dip",
        "rpe.uncued_reward_kept",
    ):
        assert verdict(intact, pid), pid
    # V ≡ 0: δ = R — the burst stays, nothing is predicted, so nothing is missed
    assert verdict(flipped, "rpe.burst_unexpected")
    assert verdict(flipped, "rpe.uncued_reward_kept")
    assert not verdict(flipped, "rpe.omission_dip")
    assert not verdict(flipped, "rpe.transfer_to_cue")
    assert not verdict(flipped, "rpe.probability")
    assert not verdict(flipped, "rpe.critic_beats_energy")


def test_rpe_magnitude_asymmetry_needs_the_compressed_negative_code(cfg: Config) -> None:
    """negative_gain = 1 codes a negative error like a positive one: the slopes below
    and above the expected size become equal and the Bayer & Glimcher prediction fails."""
    flat = derive_config(cfg, {"orchestrator.dopamine.negative_gain": 1.0})
    params = rpe.Params(
        probabilities=(0.0, 0.5, 1.0), delays_s=(), trials=4, magnitude_trials=30, probe_blocks=1
    )
    flipped = rpe.run(flat, params, jobs=JOBS)
    assert not verdict(flipped, "rpe.magnitude")
    assert flipped.numbers["critic"]["magnitude"]["slope_ratio"] > 0.7


def test_risk_needs_serotonins_elasticity_gate(cfg: Config) -> None:
    params = risk.Params(trials=30)
    intact = risk.run(cfg, params, jobs=JOBS)
    flipped = risk.run(cfg, params, jobs=JOBS, mechanisms=Mechanisms(elasticity_gate=Constant(0.5)))
    assert verdict(intact, "risk.serotonin_shifts_choice")
    assert not verdict(flipped, "risk.serotonin_shifts_choice")


def test_patch_leaving_needs_the_opportunity_cost(cfg: Config) -> None:
    """Without boredom's opportunity cost (gain 0) only the idle clock is left, which
    takes 600 s of ticks: no patch is left, and none of the MVT predictions hold."""
    params = foraging.Params(
        travel_s=(1.0, 2.0, 4.0), patches=4, warmup_s=20.0, max_residence_s=12.0
    )
    intact = foraging.run(cfg, params, jobs=JOBS)
    off = derive_config(cfg, {"orchestrator.boredom.opportunity_gain": 0.0})
    flipped = foraging.run(off, params, jobs=JOBS)
    for pid in (
        "foraging.travel_longer_residence",
        "foraging.gain_invariant",
        "foraging.richer_longer_residence",
    ):
        assert verdict(intact, pid), pid
        assert not verdict(flipped, pid), pid
    assert not verdict(flipped, "foraging.mvt_residence")


def test_granger_needs_the_dopamine_gate(cfg: Config) -> None:
    params = causality.Params(duration_s=8.0, settle_s=1.0)
    intact = causality.run(cfg, params, jobs=JOBS, entropy=False)
    flipped = causality.run(
        cfg, params, jobs=JOBS, entropy=False, mechanisms=Mechanisms(plasticity_gate=Constant(1.0))
    )
    pid = "causality.dopamine_granger_causes_metric"
    assert verdict(intact, pid)
    assert not verdict(flipped, pid)


def test_stability_needs_a_stable_coupling(cfg: Config) -> None:
    params = stability.Params(decay_s=20.0, settle_s=1.0, step_s=1.0)
    intact = stability.run(cfg, params, jobs=JOBS)
    flipped = stability.run(cfg, params, jobs=JOBS, coupling=CouplingConfig(kappa_sa=0.05))
    for pid in ("stability.matrix_stable", "stability.margin", "stability.unstable_refused"):
        assert verdict(intact, pid), pid
    assert not verdict(flipped, "stability.matrix_stable")
    assert not verdict(flipped, "stability.margin")
    assert not verdict(flipped, "stability.engs_decays")  # refused: it never runs


def test_field_bounded_needs_an_off_resonant_carrier(cfg: Config) -> None:
    # the same input step with the former 10 Hz carrier, which sits within 1 Hz of a
    # cavity mode of the 64-row lattice (services/physics/modes.py), rings far above it
    params = stability.Params(decay_s=1.0, settle_s=1.0, step_s=4.0)
    pid = "stability.field_bounded_under_input"
    intact = stability.run(cfg, params, jobs=JOBS)
    resonant = stability.run(derive_config(cfg, {"physics.drive_hz": 10.0}), params, jobs=JOBS)
    assert verdict(intact, pid)
    assert not verdict(resonant, pid)


class GainHomeostat:
    """A minimal homeostatic mechanism for the test: a per-area 'receptor density' ρ that
    integrates the activity error (a - set point) / set point at ``rate`` per second and
    scales the area's drive by √ρ (synaptic scaling, Turrigiano 2008), up to a ceiling of
    1.15 x the drive at the set point (a saturating response, which bounds the overshoot
    after the return as the assay requires)."""

    name = "test gain homeostat"

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.rho: np.ndarray[Any, Any] | None = None
        self.set_point: np.ndarray[Any, Any] | None = None
        self.ceiling: np.ndarray[Any, Any] | None = None
        self.cycles = 0

    def install(self, sim: Sim) -> None:
        self.rho = np.ones(sim.n_areas)
        sim.controllers.append(self._control)

    def freeze(self, sim: Sim) -> None:
        self.rate = 0.0

    def _control(self, sim: Sim) -> None:
        assert self.rho is not None
        n = sim.n_areas
        a = np.asarray(sim.tel["area_activity"][:n], dtype=float)
        self.cycles += 1
        drive = sim.state["area_drive"][:n]
        if self.cycles == 100:  # 1 s in: the set point is the settled activity
            self.set_point = a.copy()
            self.ceiling = 1.15 * np.asarray(drive, dtype=float)
        if self.set_point is not None:
            self.rho += self.rate * (self.set_point - a) / self.set_point * sim.dt
        scaled = drive * np.sqrt(self.rho)
        drive[...] = scaled if self.ceiling is None else np.minimum(scaled, self.ceiling)

    def density(self, sim: Sim, area: int) -> float | None:
        return None if self.rho is None else float(self.rho[area])


def test_homeostasis_detects_a_working_mechanism_and_its_absence(cfg: Config) -> None:
    # The plug-in homeostat on a well-damped field (physics.damping = 5 /s: step
    # transients die within a second, so a 4-s protocol suffices) passes; the same
    # homeostat with its learning rate at 0 fails every prediction that needs it.
    damped = derive_config(cfg, {"physics.damping": 5.0})
    params = homeostasis.Params(settle_s=1.5, low_s=4.0, after_s=4.0)
    intact = homeostasis.run(damped, params, homeostat=GainHomeostat(rate=1.5))
    flipped = homeostasis.run(damped, params, homeostat=GainHomeostat(rate=0.0))
    ids = ("homeostasis.activity_recovers", "homeostasis.density_up",
           "homeostasis.overshoot_and_return")  # fmt: skip
    assert verdict(intact, "homeostasis.activity_falls")
    for pid in ids:
        assert verdict(intact, pid), pid
        assert not verdict(flipped, pid), pid


def test_homeostasis_needs_the_engs_own_receptor_scaling(cfg: Config) -> None:
    # The ENGS's own activity scaling (areas/receptors.py), run at a 10 x shorter time
    # constant so a short protocol fits: it passes; the same run with receptor learning
    # off (the flip) recovers nothing.
    fast = derive_config(cfg, {"orchestrator.areas.scaling.tau_s": 8.0})
    params = homeostasis.Params(settle_s=3.0, low_s=25.0, after_s=30.0)
    intact = homeostasis.run(fast, params, jobs=JOBS)
    frozen = derive_config(fast, {"orchestrator.areas.receptors.learning": False})
    flipped = homeostasis.run(frozen, params, jobs=JOBS)
    for pid in ("homeostasis.activity_falls", "homeostasis.activity_recovers",
                "homeostasis.density_up", "homeostasis.overshoot_and_return"):  # fmt: skip
        assert verdict(intact, pid), pid
    assert verdict(flipped, "homeostasis.activity_falls")
    for pid in ("homeostasis.activity_recovers", "homeostasis.density_up"):
        assert not verdict(flipped, pid), pid


def test_homeostasis_without_a_density_model_says_so(cfg: Config) -> None:
    no_areas = derive_config(cfg, {"orchestrator.areas.enabled": False})
    params = homeostasis.Params(settle_s=2.0, low_s=2.0, after_s=2.0)
    result = homeostasis.run(no_areas, params)
    assert result.numbers["homeostat"] is None
    assert not verdict(result, "homeostasis.density_up")
    assert "mechanism absent" in result.predictions[2].measured
