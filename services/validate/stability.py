"""Assay 6 — stability (seed 003 GAP-005; ARCHITECTURE §6.3).

The coupling matrix M of dx/dt = M(x − x_eq) + F_nl(x) + I_ext (x = [D, S, N, A]) at
the reference cost scale (:meth:`engs.shared.config.CouplingConfig.matrix`):

* eigenvalues and the spectral abscissa (stable iff max Re λ < 0), the Gershgorin
  margins per row (the seed's diagonal-dominance test — only sufficient), and the
  transient amplification max_t ‖e^{Mt}‖₂ (:mod:`engs.services.orchestrator.coupling`);
* the boundaries where it turns unstable, by bisection on the spectral abscissa with the
  other entries fixed: λ_D (dopamine clearance), κ_SA (ATP → serotonin, which closes
  the positive D → A → S → D loop) and the metabolic cost scale (which multiplies M's
  ATP row at run time);
* the real dynamics: the ENGS step (no physics, no inputs) from a perturbed state must
  decay to x_eq, never leaving the transient bound; and a matrix past the boundary must
  be refused when the configuration is loaded.

The closed loop with the field: the lesion task's input (one area's input stepped up,
the rest at rest) applied to the field with Hebbian plasticity on, against the same run
with the metric frozen (plasticity and elasticity gates 0). Its peak field energy
relative to the pre-step level says whether metric learning can drive the field into
runaway ("epileptic seizure", GAP-005); the mean conductance at the peak and the
drive's distance from the lattice's forced modes (the area-axis spectrum as the leapfrog
rings it, swept over the speed gains N can set; :mod:`engs.services.physics.modes`) is reported
with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from engs.services.orchestrator.coupling import analyse, expm, spectral_abscissa
from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.inputs import CycleInputs
from engs.services.orchestrator.metabolism import Calibration
from engs.services.physics.modes import drive_detuning, mode_frequencies_hz
from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress, pmap
from engs.services.validate.sim import Constant, Mechanisms, Sim, derive_config
from engs.shared.config import Config, CouplingConfig

NAME = "stability"
TITLE = "6. Stability: the coupling matrix, its boundaries, and the field under an input step"


@dataclass(frozen=True)
class Params:
    margin: float = 0.2
    transient_limit: float = 2.0
    perturbation: tuple[float, float, float] = (0.3, -0.2, 0.3)
    decay_s: float = 120.0
    settle_s: float = 5.0
    step_s: float = 20.0
    rest_input: float = 0.4
    step_input: float = 0.8
    runaway_factor: float = 3.0


def _bisect(f: Any, stable_at: float, unstable_at: float, iters: int = 60) -> float:
    """The parameter value between a stable and an unstable point where the spectral
    abscissa f(value) crosses 0."""
    a, b = stable_at, unstable_at
    for _ in range(iters):
        mid = 0.5 * (a + b)
        if f(mid) < 0.0:
            a = mid
        else:
            b = mid
    return 0.5 * (a + b)


def _abscissa_with(coupling: CouplingConfig, capacity: float, **entries: float) -> float:
    m = coupling.matrix(capacity)
    if "lambda_d" in entries:
        m[0, 0] = -entries["lambda_d"]
    if "kappa_sa" in entries:
        m[1, 3] = entries["kappa_sa"]
    if "scale" in entries:
        m = coupling.matrix(capacity, entries["scale"])
    return spectral_abscissa(m)


def boundaries(coupling: CouplingConfig, capacity: float) -> dict[str, Any]:
    """Bisection boundaries of λ_D, κ_SA and the cost scale (None: none found in the
    searched range, i.e. stable throughout it)."""
    out: dict[str, Any] = {}
    f_ld = lambda x: _abscissa_with(coupling, capacity, lambda_d=x)  # noqa: E731
    lo = -1.0
    out["lambda_d"] = _bisect(f_ld, coupling.lambda_d, lo) if f_ld(lo) >= 0 else None
    f_ks = lambda x: _abscissa_with(coupling, capacity, kappa_sa=x)  # noqa: E731
    hi = 10.0
    out["kappa_sa"] = _bisect(f_ks, coupling.kappa_sa, hi) if f_ks(hi) >= 0 else None
    f_sc = lambda x: _abscissa_with(coupling, capacity, scale=10.0**x)  # noqa: E731
    out["cost_scale"] = 10.0 ** _bisect(f_sc, 0.0, 8.0) if f_sc(8.0) >= 0 else None
    out["gershgorin_lambda_d"] = coupling.kappa_ds + coupling.kappa_dn
    return out


def engs_decay(cfg: Config, params: Params) -> dict[str, Any]:
    """The ENGS step alone from x_eq + perturbation: the deviation norm over time."""
    oc = cfg.orchestrator
    engs = Engs(cfg, calibration=Calibration.reference(oc.metabolism.reference_score))
    c = oc.coupling
    eq = np.array([c.d_eq, c.s_eq, c.n_eq])
    dd, ds, dn = params.perturbation
    engs.dopamine, engs.serotonin, engs.norepinephrine = c.d_eq + dd, c.s_eq + ds, c.n_eq + dn
    x0 = np.array([engs.dopamine, engs.serotonin, engs.norepinephrine])
    norm0 = float(np.linalg.norm(x0 - eq))
    n = round(params.decay_s / oc.dt)
    norms = np.zeros(n)
    idle = CycleInputs()
    for k in range(n):
        engs.step(idle, None)
        x = np.array([engs.dopamine, engs.serotonin, engs.norepinephrine])
        norms[k] = float(np.linalg.norm(x - eq)) / norm0
    # the linear prediction over the same span (D, S, N block of e^{Mt} applied to x0)
    m = c.matrix(oc.metabolism.capacity_nmu)
    t_end = params.decay_s
    lin = expm(m * t_end) @ np.concatenate([x0 - eq, [0.0]])
    return {
        "peak_ratio": float(norms.max()),
        "final_ratio": float(norms[-1]),
        "linear_final_ratio": float(np.linalg.norm(lin[:3]) / norm0),
        "trace": norms[:: max(1, n // 600)].tolist(),
        "trace_dt": oc.dt * max(1, n // 600),
    }


def field_step(
    cfg: Config, params: Params, frozen: bool, seed: int, progress: Progress | None = None
) -> dict[str, Any]:
    """One area's input stepped up on the assay lattice; energy and mean conductance."""
    mech = (
        Mechanisms(plasticity_gate=Constant(0.0), elasticity_gate=Constant(0.0)) if frozen else None
    )
    sim = Sim(cfg, seed=seed, mechanisms=mech)
    sim.drive_gain[:] = params.rest_input
    dt = sim.dt
    nodes = sim.field.lattice.n_nodes
    settle = round(params.settle_s / dt)
    step = round(params.step_s / dt)
    energy = np.zeros(settle + step)
    gmean = np.zeros(settle + step)
    for k in range(settle + step):
        if k == settle:
            sim.drive_extra[1 % sim.n_areas] = params.step_input - params.rest_input
        sim.cycle()
        energy[k] = float(sim.tel["energy"]) / nodes
        gmean[k] = float(sim.field.g.mean())
        if progress is not None:
            progress.update(
                NAME, f"field {'frozen' if frozen else 'plastic'} cycle", k + 1, settle + step
            )
    before = float(energy[settle - round(1.0 / dt) : settle].mean())
    after = energy[settle:]
    i = int(np.argmax(after))
    lat = sim.field.lattice
    drive = np.asarray(sim.state["area_drive"][: sim.n_areas], dtype=np.float64)
    speed = float(np.mean(sim.state["area_speed"][: sim.n_areas]))
    implied = float((drive**2 * lat.area_nodes).sum() / nodes)
    return {
        "energy_before": before,
        "energy_implied": implied,
        "peak_over_implied": float(after[i] / implied),
        "peak_ratio": float(after[i] / before),
        "peak_t_s": float(i * dt),
        "g_at_peak": float(gmean[settle + i]),
        "speed_gain": speed,
        "energy": energy[::5].tolist(),
        "g": gmean[::5].tolist(),
        "series_dt": 5 * dt,
        "step_at_s": params.settle_s,
        "nonfinite_ticks": sim.nonfinite_ticks,
    }


def cavity_modes(cfg: Config, g: float, speed: float = 1.0) -> dict[str, Any]:
    """Where the drive falls among the forced (area-axis) modes of the configured lattice
    (:mod:`engs.services.physics.modes`) at mean conductance ``g``: at the published speed gain
    ``speed``, and swept over the speed gains norepinephrine can set (1 + N², 1 … 2)."""
    p = cfg.physics
    shape = list(p.shape)
    here = drive_detuning(
        shape, p.wave_speed, p.tick_hz, p.carrier_hz, p.damping, (speed, speed), (g, g)
    )
    swept = drive_detuning(
        shape, p.wave_speed, p.tick_hz, p.carrier_hz, p.damping, (1.0, 2.0), (g, g)
    )
    f1 = float(mode_frequencies_hz(shape, p.wave_speed * speed, p.dt, g, (0,))[0])
    return {
        "fundamental_hz": f1,
        "drive_hz": p.carrier_hz,
        "drive_over_fundamental": p.carrier_hz / f1,
        "nearest_mode_detuning_hz": here.distance_hz,
        "swept_detuning_hz": swept.distance_hz,
        "swept_linewidths": swept.linewidths,
        "spectrum_ceiling_hz": swept.ceiling_hz,
        "linewidth_hz": p.damping / (2 * math.pi),
        "quality_factor": 2 * math.pi * p.carrier_hz / p.damping if p.damping > 0 else math.inf,
    }


def measure(
    ctx: Context,
    params: Params,
    *,
    coupling: CouplingConfig | None = None,
) -> Findings:
    """``coupling``: analyse this matrix instead of the configured one (the flip test)."""
    cfg, seed, jobs, progress, _ = ctx
    oc = cfg.orchestrator
    cp = coupling if coupling is not None else oc.coupling
    capacity = oc.metabolism.capacity_nmu
    rep = analyse(cp.matrix(capacity))
    bnd = boundaries(cp, capacity)
    preds: list[Prediction] = []
    eig = ", ".join(f"{re:.4g}{im:+.4g}i" if im else f"{re:.4g}" for re, im in rep.eigenvalues)
    preds.append(
        Prediction(
            id="stability.matrix_stable",
            statement="The coupled neurochemistry is asymptotically stable (GAP-005).",
            criterion="spectral abscissa max Re λ(M) < 0",
            measured=f"max Re λ = {rep.spectral_abscissa:.3g} /s (eigenvalues {eig}); "
            f"Gershgorin margins {[round(x, 4) for x in rep.gershgorin_margins]}",
            passed=rep.stable,
            numbers={"spectral_abscissa": rep.spectral_abscissa},
        )
    )
    preds.append(
        Prediction(
            id="stability.transient_bounded",
            statement="A deviation is not amplified much before it decays (M is non-normal).",
            criterion=f"max_t ‖e^(Mt)‖₂ <= {params.transient_limit:g}",
            measured=f"{rep.transient_peak:.4g} at t = {rep.transient_peak_t_s:.3g} s",
            passed=rep.stable and rep.transient_peak <= params.transient_limit,
            numbers={"transient_peak": rep.transient_peak, "t_s": rep.transient_peak_t_s},
        )
    )
    margins = {
        "lambda_d": None
        if bnd["lambda_d"] is None
        else (cp.lambda_d - bnd["lambda_d"]) / cp.lambda_d,
        "kappa_sa": None
        if bnd["kappa_sa"] is None
        else (bnd["kappa_sa"] - cp.kappa_sa) / max(cp.kappa_sa, 1e-12),
        "cost_scale": None if bnd["cost_scale"] is None else bnd["cost_scale"] - 1.0,
    }
    ok_margin = rep.stable and all(v is None or v >= params.margin for v in margins.values())
    preds.append(
        Prediction(
            id="stability.margin",
            statement="The defaults sit inside the stable region with a margin (GAP-005: "
            "'stability margin > 20 %'), judged by the eigenvalue boundary.",
            criterion=f"relative distance to the boundary >= {params.margin:g} for λ_D, κ_SA "
            "and the cost scale (bisection; no boundary in the searched range counts as "
            "unbounded margin)",
            measured=f"λ_D* = {_b(bnd['lambda_d'])} /s (default {cp.lambda_d:g}; Gershgorin's "
            f"sufficient bound {bnd['gershgorin_lambda_d']:g}), κ_SA* = {_b(bnd['kappa_sa'])} "
            f"/s (default {cp.kappa_sa:g}), cost scale* = {_b(bnd['cost_scale'])}",
            passed=ok_margin,
            numbers={"boundaries": bnd, "margins": margins},
        )
    )
    # the real step function, and the configuration guard
    decay: dict[str, Any] | None = None
    refused = False
    guard_msg = ""
    try:
        run_cfg = derive_config(cfg, {"orchestrator.coupling": msgspec.to_builtins(cp)})
        decay = engs_decay(run_cfg, params)
    except (msgspec.ValidationError, ValueError) as exc:
        guard_msg = str(exc)
    if bnd["kappa_sa"] is not None:
        past = msgspec.to_builtins(cp) | {"kappa_sa": 1.05 * bnd["kappa_sa"]}
        try:
            derive_config(cfg, {"orchestrator.coupling": past})
        except (msgspec.ValidationError, ValueError) as exc:
            refused = True
            guard_msg = guard_msg or str(exc)
    preds.append(
        Prediction(
            id="stability.engs_decays",
            statement="The real ENGS step, unforced, returns from a perturbation to "
            "equilibrium without exceeding the transient bound.",
            criterion=f"from x_eq + {params.perturbation} (D, S, N): deviation <= 0.1 of the "
            f"initial after {params.decay_s:g} s and never above max_t ‖e^(Mt)‖ + 1 %",
            measured="the configuration refused this matrix"
            if decay is None
            else f"deviation after {params.decay_s:g} s: {decay['final_ratio']:.3f} "
            f"(linear prediction {decay['linear_final_ratio']:.3f}); peak "
            f"{decay['peak_ratio']:.3f}",
            passed=decay is not None
            and decay["final_ratio"] <= 0.1
            and decay["peak_ratio"] <= rep.transient_peak * 1.01,
            numbers={} if decay is None else {k: decay[k] for k in ("final_ratio", "peak_ratio")},
        )
    )
    preds.append(
        Prediction(
            id="stability.unstable_refused",
            statement="A matrix past the boundary is refused at start-up, never run.",
            criterion="loading a configuration with κ_SA = 1.05 κ_SA* fails with a message",
            measured=("refused: " + guard_msg[:160]) if refused else "accepted",
            passed=refused,
        )
    )
    calls = [(cfg, params, frozen, seed, progress) for frozen in (False, True)]
    plastic, frozen = pmap(field_step, calls, jobs)
    modes = cavity_modes(cfg, plastic["g_at_peak"], plastic["speed_gain"])
    modes_g1 = cavity_modes(cfg, 1.0, frozen["speed_gain"])
    f = params.runaway_factor
    preds.append(
        Prediction(
            id="stability.field_bounded_under_input",
            statement="The field's response to an input change stays proportionate, with the "
            "metric learning or frozen (GAP-005: no runaway, no 'epileptic seizure').",
            criterion=f"after one area's input steps from {params.rest_input:g} to "
            f"{params.step_input:g}: peak field energy <= {f:g} x the energy the input implies "
            "(Σ_a A_a² n_a / n: |Ψ| = A under a uniform drive), plastic and frozen metric",
            measured=f"peak {plastic['peak_over_implied']:.1f}x the implied energy with "
            f"plasticity (t = {plastic['peak_t_s']:.1f} s after the step, mean g "
            f"{plastic['g_at_peak']:.2f}), {frozen['peak_over_implied']:.1f}x with the metric "
            f"frozen (g = 1); drive {modes['drive_hz']:g} Hz = "
            f"{modes_g1['drive_over_fundamental']:.2f} x the area-axis fundamental at g = 1, "
            f"{modes_g1['swept_detuning_hz']:.1f} Hz "
            f"({modes_g1['swept_linewidths']:.0f} linewidths) from every forced mode over "
            f"speed gains 1 … 2 (spectrum ceiling {modes_g1['spectrum_ceiling_hz']:.1f} Hz)",
            passed=plastic["peak_over_implied"] <= f and frozen["peak_over_implied"] <= f,
            numbers={
                "plastic_peak_over_implied": plastic["peak_over_implied"],
                "frozen_peak_over_implied": frozen["peak_over_implied"],
                "g_at_peak": plastic["g_at_peak"],
                **modes,
            },
        )
    )
    numbers = {
        "eigenvalues": [list(e) for e in rep.eigenvalues],
        "spectral_abscissa": rep.spectral_abscissa,
        "gershgorin_margins": rep.gershgorin_margins,
        "transient_peak": rep.transient_peak,
        "transient_peak_t_s": rep.transient_peak_t_s,
        "boundaries": bnd,
        "field": {
            "plastic": {k: v for k, v in plastic.items() if not isinstance(v, list)},
            "frozen": {k: v for k, v in frozen.items() if not isinstance(v, list)},
            "modes_at_peak": modes,
            "modes_at_g1": modes_g1,
        },
    }
    notes = []
    if bnd["lambda_d"] is not None and bnd["lambda_d"] < 0:
        notes.append(
            f"Seed GAP-005 says a λ_D → 0 bug makes the system manic (D → ∞). With this "
            f"matrix it does not: the D–S loop (κ_SD·κ_DS) keeps M stable down to "
            f"λ_D* = {bnd['lambda_d']:.4g} /s; Gershgorin's row-D test would demand "
            f"λ_D > {bnd['gershgorin_lambda_d']:g}."
        )
    return Findings(
        predictions=preds,
        numbers=numbers,
        notes=notes,
        series={
            "matrix": cp.matrix(capacity).tolist(),
            "decay": decay,
            "field": {"plastic": plastic, "frozen": frozen},
            "lambda_d_scan": _scan(cp, capacity),
        },
    )


def _scan(cp: CouplingConfig, capacity: float) -> dict[str, Any]:
    """Real parts of all four eigenvalues of M as λ_D varies (the others fixed)."""
    xs = np.linspace(-0.05, 0.3, 141)
    real = []
    for x in xs:
        m = cp.matrix(capacity)
        m[0, 0] = -float(x)
        real.append(sorted(np.linalg.eigvals(m).real.tolist(), reverse=True))
    return {"lambda_d": xs.tolist(), "real_parts": real}


def _b(x: float | None) -> str:
    return "none found" if x is None else f"{x:.4g}"


run = Assay[Params](NAME, TITLE, __doc__, measure).run
