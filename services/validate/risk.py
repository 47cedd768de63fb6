"""Assay 3 — risk aversion under clamped serotonin (seed 003 GAP-029, §4.2).

Two options of equal expected value: *safe* pays 0.5 for sure, *risky* pays 1 or 0 with
probability ½ each. Serotonin is clamped high (``s_high``) in one run and low
(``s_low``) in the other (:class:`engs.services.validate.sim.Clamp`), everything else the
same, and the agent chooses ``trials`` times after ``forced`` forced choices of each.

How the agent chooses from the ENGS state (the seed gives no rule; this one reads only
what ENGS publishes): it keeps a running mean m_k and variance v_k of each option's
payoffs, learned with rate α = ``alpha``·(plasticity gate) — dopamine gates learning,
seed §3.3 — and picks *safe* with probability

    P(safe) = σ((U_safe − U_risky) / T),   U_k = m_k − ρ·√v_k,   ρ = κ·(2·λ(S)/λ₀ − 1)

where λ(S)/λ₀ is the published elasticity gate (0.5 at S_eq). Serotonin's elasticity
sets the risk attitude: "confident and risk-averse" when the manifold resists
deformation (§4.2, S > 0.7: ρ > 0), "risk-tolerant" when it warps easily (S < 0.3:
ρ < 0), neutral at equilibrium. Each payoff is sent to the ENGS as a reward; one trial
is ``trial_s`` of simulated time. The verdict is a pooled two-proportion z-test of
P(safe) between the two runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.orchestrator.inputs import CycleInputs
from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress, pmap
from engs.services.validate.sim import Clamp, Mechanisms, Sim
from engs.services.validate.stats import fmt_p, two_proportion_z
from engs.shared.config import Config

NAME = "risk"
TITLE = "3. Risk aversion: safe vs risky choice with serotonin clamped high and low"
SAFE, RISKY = 0, 1


@dataclass(frozen=True)
class Params:
    s_high: float = 0.8
    s_low: float = 0.2
    trials: int = 300
    forced: int = 5
    trial_s: float = 0.2
    alpha: float = 0.1
    kappa: float = 1.0
    temperature: float = 0.2
    safe_payoff: float = 0.5
    risky_payoff: float = 1.0
    risky_p: float = 0.5


@dataclass
class ChoiceRun:
    label: str
    serotonin: float
    choices: np.ndarray[Any, Any]  # 0 safe, 1 risky (free trials only)
    p_safe_model: np.ndarray[Any, Any]  # the policy's P(safe) at each free trial
    elasticity_gate: float
    risk_attitude: float
    dopamine: float
    mean_payoff: float


def run_condition(
    cfg: Config,
    params: Params,
    label: str,
    serotonin: float,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> ChoiceRun:
    sim = Sim(cfg, seed=seed, clamp=Clamp(serotonin=serotonin), mechanisms=mechanisms)
    rng = np.random.default_rng([seed, 0x815C])
    cycles = max(1, round(params.trial_s / sim.dt))
    mean = np.zeros(2)
    var = np.zeros(2)
    seen = np.zeros(2, dtype=np.int64)
    choices, p_model, payoffs, gates, attitudes, dops = [], [], [], [], [], []
    n_forced = 2 * params.forced
    total = n_forced + params.trials
    sim.run(cycles)
    for i in range(total):
        st = sim.state
        g_s = float(st["elasticity_gate"])
        g_d = float(st["plasticity_gate"])
        d_level = float(st["dopamine"])
        rho = params.kappa * (2.0 * g_s - 1.0)
        if i < n_forced:
            choice = i % 2
            p_safe = math.nan
        else:
            u = mean - rho * np.sqrt(np.maximum(var, 0.0))
            p_safe = _sigmoid((u[SAFE] - u[RISKY]) / params.temperature)
            choice = SAFE if rng.random() < p_safe else RISKY
        if choice == SAFE:
            payoff = params.safe_payoff
        else:
            payoff = params.risky_payoff if rng.random() < params.risky_p else 0.0
        alpha = min(1.0, params.alpha * g_d) if seen[choice] else 1.0
        err = payoff - mean[choice]
        mean[choice] += alpha * err
        var[choice] += alpha * (err * err - var[choice]) if seen[choice] else 0.0
        seen[choice] += 1
        sim.cycle(CycleInputs(reward=payoff) if payoff else CycleInputs())
        sim.run(cycles - 1)
        if i >= n_forced:
            choices.append(choice)
            p_model.append(p_safe)
            payoffs.append(payoff)
            gates.append(g_s)
            attitudes.append(rho)
            dops.append(d_level)
        if progress is not None:
            progress.update(NAME, f"{label} trial", i + 1, total)
    return ChoiceRun(
        label=label,
        serotonin=serotonin,
        choices=np.asarray(choices),
        p_safe_model=np.asarray(p_model),
        elasticity_gate=float(np.mean(gates)),
        risk_attitude=float(np.mean(attitudes)),
        dopamine=float(np.mean(dops)),
        mean_payoff=float(np.mean(payoffs)),
    )


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def measure(ctx: Context, params: Params) -> Findings:
    cfg, seed, jobs, progress, mechanisms = ctx
    calls = [
        (cfg, params, "S high", params.s_high, mechanisms, seed, progress),
        (cfg, params, "S low", params.s_low, mechanisms, seed, progress),
    ]
    high, low = pmap(run_condition, calls, jobs)
    k_hi = int(np.sum(high.choices == SAFE))
    k_lo = int(np.sum(low.choices == SAFE))
    n_hi, n_lo = high.choices.size, low.choices.size
    test = two_proportion_z(k_hi, n_hi, k_lo, n_lo)
    p_hi, p_lo = k_hi / n_hi, k_lo / n_lo
    numbers = {
        run_.label: {
            "serotonin": run_.serotonin,
            "elasticity_gate": run_.elasticity_gate,
            "risk_attitude": run_.risk_attitude,
            "p_safe": (k if run_ is high else k_lo) / run_.choices.size,
            "safe_choices": k,
            "trials": run_.choices.size,
            "mean_dopamine": run_.dopamine,
            "mean_payoff": run_.mean_payoff,
        }
        for run_, k in ((high, k_hi), (low, k_lo))
    }
    numbers["z_test"] = test.as_dict()
    preds = [
        Prediction(
            id="risk.serotonin_shifts_choice",
            statement="High serotonin increases the preference for the certain option, low "
            "serotonin for the risky one (seed 003 GAP-029 risk-aversion test).",
            criterion="P(safe | S high) > P(safe | S low), two-proportion z-test p < 0.05",
            measured=f"P(safe) {p_hi:.2f} ({k_hi}/{n_hi}) at S = {params.s_high:g} vs "
            f"{p_lo:.2f} ({k_lo}/{n_lo}) at S = {params.s_low:g}; z = {test.statistic:.2f}, "
            f"{fmt_p(test.p_value)}; elasticity gate {high.elasticity_gate:.3f} vs "
            f"{low.elasticity_gate:.3f}",
            passed=p_hi > p_lo and test.p_value < 0.05,
            numbers={"p_safe_high": p_hi, "p_safe_low": p_lo, **test.as_dict()},
        )
    ]
    series = {
        "high": {"choices": high.choices.tolist(), "p_model": high.p_safe_model.tolist()},
        "low": {"choices": low.choices.tolist(), "p_model": low.p_safe_model.tolist()},
        "s_high": params.s_high,
        "s_low": params.s_low,
    }
    return Findings(
        predictions=preds,
        numbers=numbers,
        series=series,
        notes=[
            "The choice rule is this assay's (documented above); what it tests is that the "
            "serotonin level the ENGS publishes under the real coupled dynamics moves it."
        ],
    )


run = Assay[Params](NAME, TITLE, __doc__, measure).run
