"""Assay 4 — exploration/exploitation: patch leaving against the Marginal Value Theorem.

Seed 003 GAP-029: "'Boredom' drive should trigger exploration when local rewards
deplete … Curve should match Marginal Value Theorem predictions" (Charnov 1976, Theor.
Pop. Biol. 9:129). The forager sits in a patch whose finds arrive as a Poisson process
of rate f(t) = f₀·e^{−t/τ} (t: time in the patch; f₀ = ``rich_rate`` or ``poor_rate``,
patch types alternating). Each find is sent to the ENGS as a reward of ``find_reward``
and a novelty event of entropy ``find_novelty`` (GAP-036: a discovery; above 0.5 it
resets the boredom clock, below it buys ``partial_boost_s``·entropy). The forager
leaves when the ENGS emits a curiosity goal (boredom crossed its threshold, seed
§6.3), travels ``travel_s`` (no finds) and arrives in a fresh patch, itself a novelty
event of entropy ``arrival_novelty``. Two environments differ only in travel time.

Time scale: the boredom model is calibrated to 600 s of idle subjective time (GAP-036);
the assay scales ``boredom.idle_s`` to ``idle_s`` and ``partial_boost_s`` by the same
factor, which leaves the model's dimensionless behaviour unchanged (B is a function of
u/idle_s; relief per unit novelty is the same fraction of idle_s). Find rates are in
the scaled time.

MVT reference: with gain G(t) = f₀τ(1 − e^{−t/τ}) per patch, the optimal residence
times (t_rich, t_poor) maximise the long-run rate (½G_r + ½G_p)/(T + ½t_r + ½t_p)
(grid search); the qualitative predictions are that residence grows with travel time
and with patch richness, and that every patch is left at the same marginal rate R*.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.orchestrator.events import CuriosityGoal
from services.orchestrator.inputs import CycleInputs
from services.validate.report import AssayResult, Prediction
from services.validate.runner import Progress, pmap
from services.validate.sim import Mechanisms, Sim
from services.validate.stats import fmt_p, welch_t
from shared.config import Config

NAME = "foraging"
TITLE = "4. Exploration/exploitation: boredom-driven patch leaving vs the Marginal Value Theorem"


@dataclass(frozen=True)
class Params:
    travel_s: tuple[float, float] = (0.25, 2.0)
    visits: int = 16
    rich_rate: float = 480.0
    poor_rate: float = 240.0
    depletion_s: float = 1.5
    idle_s: float = 1.0
    find_reward: float = 0.002
    find_novelty: float = 0.5
    arrival_novelty: float = 1.0
    max_residence_s: float = 30.0

    @classmethod
    def quick(cls) -> Params:
        return cls(visits=6)


@dataclass
class Visit:
    rich: bool
    residence_s: float
    finds: int
    rate_at_leave: float  # f(t) when the forager left (finds/s)
    left: bool  # False: hit max_residence_s without a curiosity goal


def run_environment(
    cfg: Config,
    params: Params,
    travel_s: float,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> list[Visit]:
    bc = cfg.orchestrator.boredom
    scale = params.idle_s / bc.idle_s
    sim = Sim(
        cfg,
        seed=seed,
        mechanisms=mechanisms,
        overrides={
            "orchestrator.boredom.idle_s": params.idle_s,
            "orchestrator.boredom.partial_boost_s": bc.partial_boost_s * scale,
        },
    )
    rng = np.random.default_rng([seed, round(travel_s * 1000), 0xF0A6])
    dt = sim.dt
    travel = round(travel_s / dt)
    max_cycles = round(params.max_residence_s / dt)
    visits: list[Visit] = []
    sim.run(round(0.5 / dt))
    arrive = CycleInputs(novelty=(params.arrival_novelty,))
    for v in range(params.visits):
        rich = v % 2 == 0
        f0 = params.rich_rate if rich else params.poor_rate
        finds = 0
        left = False
        k = 0
        rate = f0
        while k < max_cycles:
            t = k * dt
            rate = f0 * math.exp(-t / params.depletion_s)
            n = int(rng.poisson(rate * dt))
            if k == 0:
                inp = arrive
            elif n:
                inp = CycleInputs(reward=params.find_reward * n, novelty=(params.find_novelty,) * n)
            else:
                inp = CycleInputs()
            finds += n
            res = sim.cycle(inp)
            k += 1
            if k > 1 and any(isinstance(e, CuriosityGoal) for e in res.events):
                left = True
                break
        visits.append(Visit(rich, k * dt, finds, rate, left))
        sim.run(travel)
        if progress is not None:
            progress.update(NAME, f"travel {travel_s:g} s visit", v + 1, params.visits)
    return visits


def mvt_optimum(params: Params, travel_s: float) -> dict[str, float]:
    """Charnov's optimum for the mixed environment: residence per patch type and R*."""
    tau = params.depletion_s
    grid = np.linspace(0.05, 8 * tau, 400)

    def gain(f0: float, t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return f0 * tau * (1.0 - np.exp(-t / tau))

    tr, tp = np.meshgrid(grid, grid, indexing="ij")
    rate = (
        0.5
        * (gain(params.rich_rate, tr) + gain(params.poor_rate, tp))
        / (travel_s + 0.5 * (tr + tp))
    )
    i, j = np.unravel_index(int(np.argmax(rate)), rate.shape)
    return {"rich_s": float(grid[i]), "poor_s": float(grid[j]), "rate": float(rate[i, j])}


def run(
    cfg: Config,
    params: Params,
    *,
    seed: int = 0,
    jobs: int = 1,
    progress: Progress | None = None,
    mechanisms: Mechanisms | None = None,
) -> AssayResult:
    t0 = time.monotonic()
    short_t, long_t = params.travel_s
    calls = [(cfg, params, t, mechanisms, seed, progress) for t in params.travel_s]
    envs = dict(zip(params.travel_s, pmap(run_environment, calls, jobs), strict=True))

    def res(t: float, rich: bool | None = None) -> np.ndarray[Any, Any]:
        return np.array(
            [v.residence_s for v in envs[t] if rich is None or v.rich == rich], dtype=float
        )

    numbers: dict[str, Any] = {}
    for t, visits in envs.items():
        total = sum(v.residence_s for v in visits) + len(visits) * t
        numbers[f"travel_{t:g}s"] = {
            "residence_rich_s": float(res(t, True).mean()),
            "residence_poor_s": float(res(t, False).mean()),
            "residence_s": float(res(t).mean()),
            "mvt_optimum": mvt_optimum(params, t),
            "switches_per_min": 60.0 * len(visits) / total,
            "finds_per_s": sum(v.finds for v in visits) / total,
            "rate_at_leave_rich": float(np.mean([v.rate_at_leave for v in visits if v.rich])),
            "rate_at_leave_poor": float(np.mean([v.rate_at_leave for v in visits if not v.rich])),
            "visits_without_leaving": sum(not v.left for v in visits),
        }
    travel_test = welch_t(res(long_t), res(short_t))
    rich_all = np.concatenate([res(t, True) for t in params.travel_s])
    poor_all = np.concatenate([res(t, False) for t in params.travel_s])
    rich_test = welch_t(rich_all, poor_all)
    numbers["travel_test"] = travel_test.as_dict()
    numbers["richness_test"] = rich_test.as_dict()
    opt_s, opt_l = mvt_optimum(params, short_t), mvt_optimum(params, long_t)
    d_travel = float(res(long_t).mean() - res(short_t).mean())
    d_rich = float(rich_all.mean() - poor_all.mean())
    preds = [
        Prediction(
            id="foraging.travel_longer_residence",
            statement="Longer travel between patches makes the forager stay longer in each "
            "(Charnov 1976: the leaving threshold is the environment's average rate, which "
            "travel lowers).",
            criterion=f"mean residence at travel {long_t:g} s > at {short_t:g} s, Welch p < 0.05",
            measured=f"{res(long_t).mean():.2f} s vs {res(short_t).mean():.2f} s "
            f"(Δ {d_travel:+.2f} s, t = {travel_test.statistic:.2f}, "
            f"{fmt_p(travel_test.p_value)}); MVT optimum "
            f"{0.5 * (opt_l['rich_s'] + opt_l['poor_s']):.2f} s vs "
            f"{0.5 * (opt_s['rich_s'] + opt_s['poor_s']):.2f} s",
            passed=d_travel > 0 and travel_test.p_value < 0.05,
            numbers={"delta_s": d_travel, **travel_test.as_dict()},
        ),
        Prediction(
            id="foraging.richer_longer_residence",
            statement="Richer patches are exploited longer (MVT: every patch is left when its "
            "marginal rate falls to the same threshold).",
            criterion="mean residence in rich > poor patches (both environments), Welch p < 0.05",
            measured=f"{rich_all.mean():.2f} s vs {poor_all.mean():.2f} s "
            f"(Δ {d_rich:+.2f} s, t = {rich_test.statistic:.2f}, {fmt_p(rich_test.p_value)})",
            passed=d_rich > 0 and rich_test.p_value < 0.05,
            numbers={"delta_s": d_rich, **rich_test.as_dict()},
        ),
    ]
    series: dict[str, Any] = {
        f"{t:g}": [
            {"rich": v.rich, "residence_s": v.residence_s, "rate_at_leave": v.rate_at_leave}
            for v in visits
        ]
        for t, visits in envs.items()
    }
    series["params"] = {
        "rich_rate": params.rich_rate,
        "poor_rate": params.poor_rate,
        "depletion_s": params.depletion_s,
        "travel_s": list(params.travel_s),
    }
    series["mvt"] = {f"{t:g}": mvt_optimum(params, t) for t in params.travel_s}
    return AssayResult(
        name=NAME,
        title=TITLE,
        method=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        predictions=preds,
        numbers=numbers,
        series=series,
        elapsed_s=time.monotonic() - t0,
    )
