"""Assay 4 — exploration/exploitation: patch leaving against the Marginal Value Theorem.

Seed 003 GAP-029: "'Boredom' drive should trigger exploration when local rewards
deplete … Curve should match Marginal Value Theorem predictions" (Charnov 1976, Theor.
Pop. Biol. 9:129). The forager sits in a patch whose cumulative gain is
g(t) = G(1 − e^{−t/τ}) (t: time in the patch, τ = ``depletion_s``), paid to the ENGS as
a reward of g(t + dt) − g(t) every cycle; it arrives with a novelty event of entropy
``arrival_novelty``, leaves when the ENGS emits a curiosity goal (boredom crossed its
threshold, seed §6.3) and travels ``travel`` seconds with no intake to the next, fresh
patch. Nothing tells the ENGS the travel time or the gain: it sees only the rewards.

The MVT's optimum for this gain function solves g'(t*) = g(t*)/(T + t*), which does not
depend on G: t* = 2.86, 5.73 and 9.68 s for T = 1, 5 and 20 s at τ = 5 s. The
mechanism under test is boredom's opportunity cost (services/orchestrator/boredom.py):
leave when the local intake ρ falls below the average reward rate R̄ (tonic dopamine).

Environments (each from a fresh system): homogeneous patches of gain 1 at the shortest
and longest travel times; at the middle travel time, patches of gain ``gains`` (low and
high, separate environments) — residence must not depend on G, and both count for that
travel time; and a mixed environment that alternates rich and poor patches (G =
``gains``) — the MVT's richer-patch prediction (every patch is left at the same
marginal rate, so a richer one is kept longer). Patches entered in the first
``warmup_s`` of an environment (3 time constants of R̄: it is still learning the
environment) are not scored; ``patches`` are scored after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.orchestrator.events import CuriosityGoal
from engs.services.orchestrator.inputs import CycleInputs
from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress, pmap
from engs.services.validate.sim import Mechanisms, Sim
from engs.services.validate.stats import fmt_p, welch_t
from engs.shared.config import Config

NAME = "foraging"
TITLE = "4. Exploration/exploitation: boredom-driven patch leaving vs the Marginal Value Theorem"


@dataclass(frozen=True)
class Params:
    travel_s: tuple[float, ...] = (1.0, 5.0, 20.0)
    gains: tuple[float, float] = (0.5, 2.0)
    depletion_s: float = 5.0
    patches: int = 6
    warmup_s: float = 60.0
    arrival_novelty: float = 1.0
    max_residence_s: float = 60.0
    tolerance: float = 0.25
    gain_tolerance: float = 0.10


@dataclass(frozen=True)
class Env:
    travel_s: float
    gains: tuple[float, ...]  # patch gains, cycled


@dataclass
class Visit:
    gain: float
    residence_s: float
    left: bool  # False: hit max_residence_s without a curiosity goal
    rate_at_leave: float  # g'(t) when it left, reward/s
    reward_rate: float  # R̄ the ENGS held when it left


def charnov(travel_s: float, depletion_s: float) -> float:
    """t* of g(t) = G(1 - e^{-t/τ}): the root of e^{-t/τ}(T + t)/τ = 1 - e^{-t/τ}
    (bisection; the left side minus the right falls through 0 once)."""
    lo, hi = 1e-6, 100.0 * depletion_s
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        e = math.exp(-mid / depletion_s)
        if e * (travel_s + mid) / depletion_s > 1.0 - e:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def run_environment(
    cfg: Config,
    params: Params,
    env: Env,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> list[Visit]:
    sim = Sim(cfg, seed=seed, mechanisms=mechanisms)
    dt = sim.dt
    tau = params.depletion_s
    travel = round(env.travel_s / dt)
    max_cycles = round(params.max_residence_s / dt)
    visits: list[Visit] = []
    sim.run(round(0.5 / dt))
    v = 0
    while len(visits) < params.patches:
        gain = env.gains[v % len(env.gains)]
        v += 1
        scored = sim.t_s >= params.warmup_s
        left = False
        k = 0
        while k < max_cycles:
            t = k * dt
            r = gain * (math.exp(-t / tau) - math.exp(-(t + dt) / tau))
            novelty = (params.arrival_novelty,) if k == 0 else ()
            res = sim.cycle(CycleInputs(reward=r, novelty=novelty))
            k += 1
            if k > 1 and any(isinstance(e, CuriosityGoal) for e in res.events):
                left = True
                break
        stay = k * dt
        if scored:
            rate = gain / tau * math.exp(-stay / tau)
            visits.append(Visit(gain, stay, left, rate, sim.engs.reward_rate))
        sim.run(travel)
        if progress is not None:
            progress.update(NAME, f"travel {env.travel_s:g} s patch", len(visits), params.patches)
    return visits


def _envs(params: Params) -> list[Env]:
    """Gain 1 at every travel time but the middle one; the middle one runs at the low
    and the high gain instead (the two count together for its residence), then the
    mixed environment."""
    mid = params.travel_s[len(params.travel_s) // 2]
    lo, hi = params.gains
    envs = [Env(t, (1.0,)) for t in params.travel_s if t != mid]
    envs += [Env(mid, (lo,)), Env(mid, (hi,)), Env(mid, (hi, lo))]
    return envs


def measure(ctx: Context, params: Params) -> Findings:
    cfg, seed, jobs, progress, mechanisms = ctx
    if params.patches < 4 or len(params.travel_s) < 3 or len(params.gains) != 2:
        raise ValueError(
            "the foraging assay needs >= 4 scored patches (2 of each kind in the mixed "
            f"environment), 3 travel times and 2 gains; got {params.patches}, "
            f"{len(params.travel_s)}, {len(params.gains)}"
        )
    envs = _envs(params)
    calls = [(cfg, params, e, mechanisms, seed, progress) for e in envs]
    results = pmap(run_environment, calls, jobs)
    mixed = len(envs) - 1
    by_travel: dict[float, list[Visit]] = {}
    for e, r in zip(envs[:mixed], results[:mixed], strict=True):
        by_travel.setdefault(e.travel_s, []).extend(r)

    def stays(i: int, gain: float | None = None) -> np.ndarray[Any, Any]:
        return np.array([v.residence_s for v in results[i] if gain is None or v.gain == gain])

    lo, hi = params.gains
    numbers: dict[str, Any] = {}
    mvt_ok = True
    per_travel = {}
    for t in params.travel_s:
        visits = by_travel[t]
        best = charnov(t, params.depletion_s)
        got = float(np.mean([v.residence_s for v in visits]))
        per_travel[f"{t:g}"] = {
            "residence_s": got,
            "charnov_s": best,
            "ratio": got / best,
            "left_every_patch": all(v.left for v in visits),
            "rate_at_leave": float(np.mean([v.rate_at_leave for v in visits])),
            "reward_rate": float(np.mean([v.reward_rate for v in visits])),
        }
        mvt_ok &= abs(got / best - 1.0) <= params.tolerance and all(v.left for v in visits)
    numbers["per_travel"] = per_travel
    short = np.array([v.residence_s for v in by_travel[min(params.travel_s)]])
    long_ = np.array([v.residence_s for v in by_travel[max(params.travel_s)]])
    travel_test = welch_t(long_, short)
    travel_means = [per_travel[f"{t:g}"]["residence_s"] for t in params.travel_s]
    travel_ok = bool(np.all(np.diff(travel_means) > 0) and travel_test.p_value < 0.05)
    low, high = stays(mixed - 2), stays(mixed - 1)
    gain_ratio = float(high.mean() / low.mean())
    gain_ok = abs(gain_ratio - 1.0) <= params.gain_tolerance and all(
        v.left for i in (mixed - 2, mixed - 1) for v in results[i]
    )
    rich, poor = stays(mixed, hi), stays(mixed, lo)
    rich_test = welch_t(rich, poor)
    rich_ok = bool(rich.mean() > poor.mean() and rich_test.p_value < 0.05)
    numbers["gain"] = {f"{lo:g}": float(low.mean()), f"{hi:g}": float(high.mean())}
    numbers["gain_ratio"] = gain_ratio
    numbers["travel_test"] = travel_test.as_dict()
    numbers["mixed"] = {"rich_s": float(rich.mean()), "poor_s": float(poor.mean())}
    numbers["richness_test"] = rich_test.as_dict()
    tr = "; ".join(
        f"T={k} s: {x['residence_s']:.2f} s vs t* {x['charnov_s']:.2f} s ({x['ratio']:.2f}x)"
        for k, x in per_travel.items()
    )
    preds = [
        Prediction(
            id="foraging.mvt_residence",
            statement="Patches are left when their marginal rate falls to the environment's "
            "average rate: residence at Charnov's optimum t* (Charnov 1976).",
            criterion=f"mean residence (patches entered after {params.warmup_s:g} s) within "
            f"{params.tolerance:.0%} of t* at every travel time, every patch left",
            measured=tr,
            passed=mvt_ok,
            numbers=per_travel,
        ),
        Prediction(
            id="foraging.travel_longer_residence",
            statement="Longer travel between patches makes the forager stay longer in each "
            "(the average rate, which travel lowers, is the leaving threshold).",
            criterion="mean residence strictly increasing in travel time, longest vs "
            "shortest Welch p < 0.05",
            measured=", ".join(f"{m:.2f} s" for m in travel_means)
            + f" ({fmt_p(travel_test.p_value)})",
            passed=travel_ok,
            numbers={"means": travel_means, **travel_test.as_dict()},
        ),
        Prediction(
            id="foraging.gain_invariant",
            statement="For g(t) = G(1 - e^{-t/τ}) the optimal residence does not depend on "
            "the patch gain G: leaving follows a rate ratio, not a reward scale.",
            criterion=f"mean residence at G = {hi:g} within ±{params.gain_tolerance:.0%} of "
            f"G = {lo:g} (same travel time)",
            measured=f"{high.mean():.2f} s vs {low.mean():.2f} s (ratio {gain_ratio:.3f})",
            passed=gain_ok,
            numbers={"ratio": gain_ratio},
        ),
        Prediction(
            id="foraging.richer_longer_residence",
            statement="In an environment of mixed patches, richer ones are exploited longer "
            "(MVT: each is left when its marginal rate falls to the same R̄).",
            criterion=f"rich (G = {hi:g}) vs poor (G = {lo:g}) patches alternating: rich "
            "residence longer, Welch p < 0.05",
            measured=f"{rich.mean():.2f} s vs {poor.mean():.2f} s "
            f"(t = {rich_test.statistic:.2f}, {fmt_p(rich_test.p_value)})",
            passed=rich_ok,
            numbers={"rich_s": float(rich.mean()), "poor_s": float(poor.mean())},
        ),
    ]
    series: dict[str, Any] = {
        "environments": [
            {
                "travel_s": e.travel_s,
                "gains": list(e.gains),
                "visits": [
                    {"gain": v.gain, "residence_s": v.residence_s, "left": v.left} for v in r
                ],
            }
            for e, r in zip(envs, results, strict=True)
        ],
        "charnov": {
            f"{t:g}": charnov(t, params.depletion_s)
            for t in np.linspace(0.5, max(params.travel_s), 40)
        },
        "warmup_s": params.warmup_s,
    }
    return Findings(
        predictions=preds,
        numbers=numbers,
        series=series,
    )


run = Assay[Params](NAME, TITLE, __doc__, measure).run
