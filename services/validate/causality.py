"""Assay 5 — causality and entropy (seed 003 GAP-029 "Statistical Validation Framework").

Granger causality: "Does a spike in D(t) cause a change in the metric tensor g_ij? This
verifies Hebbian-Riemannian coupling." One run with a uniform input (every area at
``input_gain`` of the published drive, so the metric has room to move both ways) and
unpredictable rewards (Poisson at ``reward_rate_hz``, value ±``reward_size`` with equal
probability): the TD errors move D up and down. Sampled once per control cycle:
x = ΔD (the published dopamine level's change) and y = Δḡ (the change of the mean
conductance over every edge of the field). The Granger F-test (:mod:`stats`) with
``lags`` cycles asks whether past x improves the prediction of y beyond y's own past;
the reverse direction (metric → dopamine) is tested the same way.

Entropy: "Healthy: high entropy (rich, complex representation). Pathological
(lesioned): low entropy (collapsed state or white noise)." The Shannon entropy of the
field's energy distribution (telemetry ``entropy_bits``, as a fraction of log₂ n_nodes)
in the lesion assay's runs — the same task for control and lesions — averaged over
1-s blocks of the learning phases and compared by Welch's t-test on the block means.
It is reported, not judged: the prediction is retired (:data:`RETIRED_ENTROPY`,
docs/seed-notes.md SN-71).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.orchestrator.inputs import CycleInputs
from engs.services.validate import lesions
from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress
from engs.services.validate.sim import Mechanisms, Sim
from engs.services.validate.stats import fmt_p, granger, welch_t
from engs.shared.config import Config

#: Why the entropy comparison carries no verdict (docs/seed-notes.md SN-71).
RETIRED_ENTROPY = (
    "The seed's entropy prediction is retired (SN-71). Its own wording puts both ends of "
    "Shannon entropy on the pathological side (collapse: minimal; white noise: maximal), "
    "so 'healthy = high entropy' cannot be a monotone claim about H(|Ψ|²); what it "
    "describes (rich, complex: neither collapsed nor noise) is a complexity, which has an "
    "interior optimum and no agreed single observable. H(|Ψ|²) itself is fixed by the "
    "inputs, not by the lesion: with the drive off resonance each area's |Ψ| follows its "
    "own drive, so the entropy measures how unequal the inputs are; learning concentrates "
    "it (SN-49) and admitted distractors (N = 1) spread it. The numbers above are "
    "reported as measured."
)

NAME = "causality"
TITLE = "5. Causality (Granger: dopamine → metric); field entropy, healthy vs lesioned (reported)"


@dataclass(frozen=True)
class Params:
    duration_s: float = 120.0
    settle_s: float = 3.0
    input_gain: float = 0.4
    reward_rate_hz: float = 2.0
    reward_size: float = 0.5
    lags: int = 5
    alpha: float = 0.01
    block_s: float = 1.0


def granger_run(
    cfg: Config,
    params: Params,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, np.ndarray[Any, Any]]:
    """The D and mean-conductance series of one run (per control cycle)."""
    sim = Sim(cfg, seed=seed, mechanisms=mechanisms)
    sim.drive_gain[:] = params.input_gain
    rng = np.random.default_rng([seed, 0x6A4])
    dt = sim.dt
    sim.run(round(params.settle_s / dt))
    n = round(params.duration_s / dt)
    d = np.zeros(n)
    g = np.zeros(n)
    r = np.zeros(n)
    for k in range(n):
        reward = 0.0
        if rng.random() < params.reward_rate_hz * dt:
            reward = params.reward_size if rng.random() < 0.5 else -params.reward_size
        sim.cycle(CycleInputs(reward=reward) if reward else CycleInputs())
        d[k] = float(sim.state["dopamine"])
        g[k] = float(sim.field.g.mean())
        r[k] = reward
        if progress is not None:
            progress.update(NAME, "granger cycle", k + 1, n)
    return {"dopamine": d, "conductance": g, "reward": r}


def _xcorr(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], lags: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """corr(x_t, y_{t+k}) for each lag k (positive: y after x), standardised series."""
    xs = (x - x.mean()) / (x.std() or 1.0)
    ys = (y - y.mean()) / (y.std() or 1.0)
    n = xs.size
    out = np.zeros(lags.size)
    for i, lag in enumerate(lags.tolist()):
        if lag >= 0:
            out[i] = float(np.mean(xs[: n - lag] * ys[lag:]))
        else:
            out[i] = float(np.mean(xs[-lag:] * ys[: n + lag]))
    return out


def _blocks(x: np.ndarray[Any, Any], size: int) -> np.ndarray[Any, Any]:
    m = x.size // size
    return x[: m * size].reshape(m, size).mean(axis=1)


def measure(
    ctx: Context,
    params: Params,
    *,
    lesion_params: lesions.Params | None = None,
    entropy: bool = True,
) -> Findings:
    """``lesion_params``: the lesion assay's parameters, whose runs the entropy comparison
    reuses; ``entropy=False`` runs the Granger part only."""
    cfg, seed, jobs, progress, mechanisms = ctx
    series = granger_run(cfg, params, mechanisms, seed, progress)
    dd = np.diff(series["dopamine"])
    dg = np.diff(series["conductance"])
    fwd = granger(dd, dg, params.lags)
    rev = granger(dg, dd, params.lags)
    preds = [
        Prediction(
            id="causality.dopamine_granger_causes_metric",
            statement="Dopamine changes precede (Granger-cause) metric changes: the "
            "Hebbian-Riemannian coupling (seed 003 GAP-029).",
            criterion=f"Granger F-test ΔD → Δḡ with {params.lags} lags: p < {params.alpha:g}, "
            "and F larger than in the reverse direction",
            measured=f"ΔD → Δḡ: F = {fwd.statistic:.1f}, {fmt_p(fwd.p_value)}; Δḡ → ΔD: "
            f"F = {rev.statistic:.2f}, {fmt_p(rev.p_value)} ({dd.size} cycles)",
            passed=fwd.p_value < params.alpha and fwd.statistic > rev.statistic,
            numbers={"forward": fwd.as_dict(), "reverse": rev.as_dict()},
        )
    ]
    ent: dict[str, np.ndarray[Any, Any]] = {}
    if entropy:
        lp = lesion_params or lesions.Params()
        runs = lesions.simulate(
            cfg,
            lp,
            seed=seed,
            jobs=jobs,
            progress=progress,
            mechanisms=mechanisms,
        )
        block = max(2, round(params.block_s / cfg.orchestrator.dt))
        for name, r in runs.items():
            if name in lp.conditions:
                ent[name] = _blocks(r.entropy[r.phase > 0], block)
    entropy_numbers: dict[str, Any] = {
        name: {"mean": float(b.mean()), "sd": float(b.std(ddof=1))} for name, b in ent.items()
    }
    notes: list[str] = []
    for name in ("D=0", "S=0", "N=1") if entropy else ():
        test = welch_t(ent["control"], ent[name])
        entropy_numbers[name]["vs_control"] = test.as_dict()
        notes.append(
            f"Field entropy, control {ent['control'].mean():.4f} vs {name} "
            f"{ent[name].mean():.4f} (t = {test.statistic:.2f}, {fmt_p(test.p_value)}): "
            "reported, not judged (the prediction is retired, next note)."
        )
    if entropy:
        notes.append(RETIRED_ENTROPY)
    every = max(1, dd.size // 4000)
    lags = np.arange(-30, 31)
    xc = _xcorr(dd, dg, lags)
    return Findings(
        predictions=preds,
        notes=notes,
        numbers={
            "granger_forward": fwd.as_dict(),
            "granger_reverse": rev.as_dict(),
            "lags": params.lags,
            "entropy": entropy_numbers,
        },
        series={
            "dt": cfg.orchestrator.dt,
            "dopamine": series["dopamine"][::every].tolist(),
            "conductance": series["conductance"][::every].tolist(),
            "reward": series["reward"][::every].tolist(),
            "every": every,
            "entropy_blocks": {k: v.tolist() for k, v in ent.items()},
            "xcorr_lags_s": (lags * cfg.orchestrator.dt).tolist(),
            "xcorr": xc.tolist(),
        },
    )


run = Assay[Params](NAME, TITLE, __doc__, measure).run
