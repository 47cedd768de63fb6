"""Assay 2 — dopamine as reward prediction error (seed 003 GAP-029; ARCHITECTURE §6.10).

Classical conditioning as in the primate recordings (Schultz, Dayan & Montague 1997,
Science 275:1593; Fiorillo, Tobler & Schultz 2003, Science 299:1898): a cue — a
stimulus of ``cue_amplitude`` into the first area, sent through the ENGS as a
``stimulus`` input, so it reaches the field and is the critic's cue onset — followed
``delay_s`` later by a reward of 1 with probability p. Trials last a random
``trial_s`` (uniform), one session per p, each from a fresh (untrained) system.

The phasic dopamine response is the TD error δ of the step (seed 003 §3.1; the tonic
level D integrates β·δ). Both value models run in every session — the ENGS computes
both δ every cycle, the configured one drives D — so the comparison sees identical
inputs: the learned critic (TD(λ) over energy, entropy and cue/reward microstimuli) and
the seed's normalised field energy V = E/(E + Ē).

Read-outs per trial: the cue response (δ summed over the ``window_s`` from the cue),
the reward response (δ summed over the window from the reward time, rewarded or not),
the omission response (δ summed from 0.1 s before to 0.3 s after the due time, on
probe trials where the reward is withheld, one in ``probe_every`` trials after
training in the p = 1 session), and the same window in the inter-trial interval as
the baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.orchestrator.inputs import CycleInputs, Stimulus
from services.validate.report import AssayResult, Prediction
from services.validate.runner import Progress, pmap
from services.validate.sim import Mechanisms, Sim
from services.validate.stats import fmt_p, slope_test, welch_t
from shared.config import Config

NAME = "rpe"
TITLE = "2. Dopamine as reward prediction error: critic vs the seed's energy value"
MODELS = ("critic", "energy")


@dataclass(frozen=True)
class Params:
    probabilities: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    trials: int = 60
    probe_trials: int = 30
    probe_every: int = 3
    delay_s: float = 0.5
    trial_s: tuple[float, float] = (2.5, 4.0)
    cue_amplitude: float = 0.2
    window_s: float = 0.05

    @classmethod
    def quick(cls) -> Params:
        return cls(probabilities=(0.5, 1.0), trials=20, probe_trials=6, trial_s=(2.0, 2.5))


@dataclass
class Session:
    p: float
    rewarded: np.ndarray[Any, Any]  # bool per trial
    probe: np.ndarray[Any, Any]  # bool per trial (reward withheld on purpose)
    cue: dict[str, np.ndarray[Any, Any]]  # model -> response per trial
    reward: dict[str, np.ndarray[Any, Any]]
    omission: dict[str, np.ndarray[Any, Any]]  # window around the due time, every trial
    baseline: dict[str, np.ndarray[Any, Any]]  # same window in the ITI
    trace_first: dict[str, list[float]]  # δ of the first trial, per model
    trace_trained: dict[str, list[float]]  # δ of the last rewarded training trial
    trace_omission: dict[str, list[float]]  # δ of the last probe trial
    dopamine_first: list[float]
    dopamine_trained: list[float]


def run_session(
    cfg: Config,
    params: Params,
    p: float,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> Session:
    sim = Sim(cfg, seed=seed, mechanisms=mechanisms)
    rng = np.random.default_rng([seed, round(p * 1000), 0x2FE])
    dt = sim.dt
    delay = round(params.delay_s / dt)
    win = max(1, round(params.window_s / dt))
    om_lo, om_hi = delay - round(0.1 / dt), delay + round(0.3 / dt)
    base_at = delay + round(1.2 / dt)
    cue_in = CycleInputs(stimuli=(Stimulus(area=0, amplitude=params.cue_amplitude),))
    reward_in = CycleInputs(reward=1.0)
    n_probe = params.probe_trials if p >= 1.0 else 0
    n = params.trials + n_probe
    sim.run(round(1.0 / dt))  # let the field settle before the first cue
    rewarded, probe = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    cue = {m: np.zeros(n) for m in MODELS}
    reward = {m: np.zeros(n) for m in MODELS}
    omission = {m: np.zeros(n) for m in MODELS}
    baseline = {m: np.zeros(n) for m in MODELS}
    traces: dict[str, dict[str, list[float]]] = {"first": {}, "trained": {}, "omission": {}}
    dop: dict[str, list[float]] = {}
    for i in range(n):
        length = round(rng.uniform(*params.trial_s) / dt)
        is_probe = i >= params.trials and (i - params.trials) % params.probe_every == (
            params.probe_every - 1
        )
        give = (not is_probe) and (rng.random() < p)
        probe[i], rewarded[i] = is_probe, give
        deltas = {m: np.zeros(length) for m in MODELS}
        dvals = np.zeros(length)
        for k in range(length):
            inp = cue_in if k == 0 else reward_in if (k == delay and give) else None
            sim.cycle(inp if inp is not None else CycleInputs())
            deltas["critic"][k] = sim.engs.td_error_critic
            deltas["energy"][k] = sim.engs.td_error_energy
            dvals[k] = sim.engs.dopamine
        for m in MODELS:
            d = deltas[m]
            cue[m][i] = d[:win].sum()
            reward[m][i] = d[delay : delay + win].sum()
            omission[m][i] = d[om_lo:om_hi].sum()
            baseline[m][i] = d[base_at : base_at + (om_hi - om_lo)].sum()
        window = slice(0, min(length, round(1.5 / dt)))
        if i == 0:
            traces["first"] = {m: deltas[m][window].tolist() for m in MODELS}
            dop["first"] = dvals[window].tolist()
        if i < params.trials and give:
            traces["trained"] = {m: deltas[m][window].tolist() for m in MODELS}
            dop["trained"] = dvals[window].tolist()
        if is_probe:
            traces["omission"] = {m: deltas[m][window].tolist() for m in MODELS}
        if progress is not None:
            progress.update(NAME, f"p={p:g} trial", i + 1, n)
    return Session(
        p=p,
        rewarded=rewarded,
        probe=probe,
        cue=cue,
        reward=reward,
        omission=omission,
        baseline=baseline,
        trace_first=traces["first"],
        trace_trained=traces["trained"],
        trace_omission=traces["omission"],
        dopamine_first=dop.get("first", []),
        dopamine_trained=dop.get("trained", []),
    )


def _signatures(sessions: dict[float, Session], params: Params, model: str) -> dict[str, Any]:
    """The four signatures' numbers and verdicts for one value model."""
    full = sessions[max(sessions)]
    train = ~full.probe & (np.arange(full.probe.size) < params.trials)
    rew_idx = np.nonzero(train & full.rewarded)[0]
    late = rew_idx[-max(3, rew_idx.size // 3) :]
    # naive: the first trial, before anything was learned (cue and reward both new)
    first_reward = float(full.reward[model][rew_idx[0]]) if rew_idx.size else float("nan")
    cue_early = float(full.cue[model][rew_idx[0]]) if rew_idx.size else float("nan")
    cue_late = float(full.cue[model][late].mean())
    rew_early = first_reward
    rew_late = float(full.reward[model][late].mean())
    probes = np.nonzero(full.probe)[0]
    dip = full.omission[model][probes]
    base = full.baseline[model][~full.probe]
    dip_mean = float(dip.mean()) if dip.size else float("nan")
    if dip.size >= 2:
        dip_test = welch_t(dip, base).as_dict()
    else:
        dip_test = {"statistic": float("nan"), "p_value": 1.0, "df": []}
    # Fiorillo: cue response vs p (second half of training), reward response vs p.
    xs, ys, xr, yr = [], [], [], []
    per_p = {}
    for p, s in sorted(sessions.items()):
        idx = np.arange(params.trials // 2, params.trials)
        xs += [p] * idx.size
        ys += s.cue[model][idx].tolist()
        got = idx[s.rewarded[idx]]
        xr += [p] * got.size
        yr += s.reward[model][got].tolist()
        per_p[f"{p:g}"] = {
            "cue": float(s.cue[model][idx].mean()),
            "reward": float(s.reward[model][got].mean()) if got.size else float("nan"),
        }
    cue_slope = slope_test(np.array(xs), np.array(ys))
    rew_slope = slope_test(np.array(xr), np.array(yr)) if len(set(xr)) > 1 else None
    cue_means = [v["cue"] for v in per_p.values()]
    monotone = bool(np.all(np.diff(cue_means) > 0))
    return {
        "unexpected_reward": first_reward,
        "cue_early": cue_early,
        "cue_late": cue_late,
        "reward_early": rew_early,
        "reward_late": rew_late,
        "omission_mean": dip_mean,
        "omission_baseline_mean": float(base.mean()),
        "omission_test": dip_test,
        "per_probability": per_p,
        "cue_slope": cue_slope.slope,
        "cue_slope_p": cue_slope.test.p_value,
        "cue_monotone": monotone,
        "reward_slope": rew_slope.slope if rew_slope else float("nan"),
        "reward_slope_p": rew_slope.test.p_value if rew_slope else 1.0,
        "verdicts": {
            "burst": first_reward >= 0.5,
            "transfer": cue_late - cue_early >= 0.2 and rew_late <= 0.5 * rew_early,
            "omission_dip": dip_mean <= -0.2 and dip_test["p_value"] < 0.05,
            "probability": monotone
            and cue_slope.slope > 0
            and cue_slope.test.p_value < 0.05
            and rew_slope is not None
            and rew_slope.slope < 0
            and rew_slope.test.p_value < 0.05,
        },
    }


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
    if max(params.probabilities) < 1.0 or len(params.probabilities) < 2:
        raise ValueError("the RPE assay needs p = 1 and at least one p < 1")
    calls = [(cfg, params, p, mechanisms, seed, progress) for p in params.probabilities]
    sessions = {s.p: s for s in pmap(run_session, calls, jobs)}
    sig = {m: _signatures(sessions, params, m) for m in MODELS}
    driving = cfg.orchestrator.dopamine.value_model
    if mechanisms is not None and mechanisms.zero_value and driving == "critic":
        driving_label = "critic (replaced by V = 0)"
    else:
        driving_label = driving
    s = sig[driving]
    v = s["verdicts"]
    preds = [
        Prediction(
            id="rpe.burst_unexpected",
            statement="An unexpected reward gives a phasic dopamine burst (Schultz et al. 1997).",
            criterion="δ summed over the 50 ms from the first reward >= 0.5 (reward = 1)",
            measured=f"{s['unexpected_reward']:.2f} ({driving_label})",
            passed=v["burst"],
            numbers={"first_reward_response": s["unexpected_reward"]},
        ),
        Prediction(
            id="rpe.transfer_to_cue",
            statement="With learning the response moves from the reward to the cue that "
            "predicts it (Schultz et al. 1997).",
            criterion="cue response trained - naive >= 0.2 and reward response trained <= 0.5 x "
            "naive (naive: the first trial; trained: the last third of the rewarded trials)",
            measured=f"cue {s['cue_early']:.2f} -> {s['cue_late']:.2f}, reward "
            f"{s['reward_early']:.2f} -> {s['reward_late']:.2f} ({driving_label})",
            passed=v["transfer"],
            numbers={k: s[k] for k in ("cue_early", "cue_late", "reward_early", "reward_late")},
        ),
        Prediction(
            id="rpe.omission_dip",
            statement="When a predicted reward is omitted, dopamine dips below baseline at the "
            "time it was due (Schultz et al. 1997).",
            criterion="δ summed from 0.1 s before to 0.3 s after the due time on probe trials "
            "<= -0.2 and below the same window in the inter-trial interval (Welch p < 0.05)",
            measured=f"{s['omission_mean']:.2f} vs baseline {s['omission_baseline_mean']:.3f} "
            f"({fmt_p(s['omission_test']['p_value'])}; {driving_label})",
            passed=v["omission_dip"],
            numbers={
                "omission": s["omission_mean"],
                "baseline": s["omission_baseline_mean"],
                "p_value": s["omission_test"]["p_value"],
            },
        ),
        Prediction(
            id="rpe.probability",
            statement="Cue responses grow with the reward probability and reward responses "
            "shrink with it (Fiorillo et al. 2003).",
            criterion="mean cue response (second half of training) strictly increasing in p "
            "with OLS slope > 0 (p < 0.05), and the reward response's slope < 0 (p < 0.05)",
            measured="cue "
            + ", ".join(f"p={k}: {x['cue']:.2f}" for k, x in s["per_probability"].items())
            + f" (slope {s['cue_slope']:.2f}, {fmt_p(s['cue_slope_p'])}); reward slope "
            f"{s['reward_slope']:.2f} ({fmt_p(s['reward_slope_p'])}; {driving_label})",
            passed=v["probability"],
            numbers={
                "per_probability": s["per_probability"],
                "cue_slope": s["cue_slope"],
                "cue_slope_p": s["cue_slope_p"],
                "reward_slope": s["reward_slope"],
                "reward_slope_p": s["reward_slope_p"],
            },
        ),
    ]
    names = {
        "burst": "burst to an unexpected reward",
        "transfer": "transfer to the cue",
        "omission_dip": "dip at omission",
        "probability": "cue response grows with p",
    }
    reproduced = {m: [k for k, ok in sig[m]["verdicts"].items() if ok] for m in MODELS}
    comparison = (
        "Which value model reproduces which signature (same runs, same criteria): "
        + "; ".join(
            f"{m}: " + (", ".join(names[k] for k in reproduced[m]) or "none") for m in MODELS
        )
        + "."
    )
    preds.append(
        Prediction(
            id="rpe.critic_beats_energy",
            statement="A value defined only as field energy cannot learn predictions; a learned "
            "critic can (ARCHITECTURE §6.10): the critic reproduces every signature, the "
            "energy value only the burst.",
            criterion="critic reproduces all four signatures; the energy value none of "
            "transfer, omission dip, probability",
            measured=comparison,
            passed=len(reproduced["critic"]) == 4
            and not {"transfer", "omission_dip", "probability"} & set(reproduced["energy"])
            and not (mechanisms is not None and mechanisms.zero_value),
            numbers={"reproduced": reproduced},
        )
    )
    full = sessions[max(sessions)]
    series = {
        "dt": cfg.orchestrator.dt,
        "delay_s": params.delay_s,
        "trials": params.trials,
        "first": full.trace_first,
        "trained": full.trace_trained,
        "omission": full.trace_omission,
        "dopamine_first": full.dopamine_first,
        "dopamine_trained": full.dopamine_trained,
        "cue_by_trial": {m: full.cue[m].tolist() for m in MODELS},
        "reward_by_trial": {m: full.reward[m].tolist() for m in MODELS},
        "rewarded": full.rewarded.tolist(),
        "probe": full.probe.tolist(),
        "per_probability": {m: sig[m]["per_probability"] for m in MODELS},
    }
    numbers = {m: {k: x for k, x in sig[m].items() if k != "per_probability"} for m in MODELS}
    return AssayResult(
        name=NAME,
        title=TITLE,
        method=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        predictions=preds,
        numbers=numbers,
        notes=[comparison, f"D is driven by the `{driving_label}` value in this run."],
        series=series,
        elapsed_s=time.monotonic() - t0,
    )
