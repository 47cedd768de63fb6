"""Assay 2 — dopamine as reward prediction error (seed 003 GAP-029; ARCHITECTURE §6.10).

Classical conditioning as in the primate recordings (Schultz, Dayan & Montague 1997,
Science 275:1593; Fiorillo, Tobler & Schultz 2003, Science 299:1898; Bayer & Glimcher
2005, Neuron 47:129): a cue — a stimulus of ``cue_amplitude`` into the first area, sent
through the ENGS as a ``stimulus`` input, so it reaches the field and is the critic's
cue onset — followed ``delay`` later by a reward with probability p; the inter-trial
interval after the reward time is jittered (uniform ``iti_s``). Each session starts from
a fresh (untrained) system and opens with one uncued reward, the naive burst.

Sessions (independent, run in parallel):

* **probability**: p in ``probabilities`` (0 … 1) at ``delay_s``, reward 1;
* **interval**: p = 1 at each of ``delays_s`` besides ``delay_s`` (CS–US 0.5–3 s);
* **magnitude**: p = 1 at ``delay_s``, the reward drawn uniformly from ``magnitudes``.

Every p = 1 session ends with probe blocks after training: a rewarded trial, an
*omission* probe (cue, no reward), a rewarded trial, and an *uncued* reward in the
middle of an inter-trial interval.

The read-out is the phasic dopamine response the ENGS publishes (``phasic_dopamine``:
δ, with negative errors compressed, Bayer & Glimcher 2005), summed over ``window_s``
from the cue (cue response), from the reward time (reward response), and from 0.1 s
before to 0.3 s after the due time on omission probes (omission response; the same
window in the inter-trial interval is its baseline). The pre-reward window sums the
learning signal δ itself over the ``pre_window_s`` before a delivered reward (a sag of
the value there would show as a negative sum). Both value models run in every session —
the ENGS computes both δ every cycle, the configured one drives D — so the comparison
sees identical inputs: the learned critic (TD(λ) over the centred field energy and
entropy and log-widening time bins per cue) and the seed's normalised field energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engs.services.orchestrator.inputs import CycleInputs, Stimulus
from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress, pmap
from engs.services.validate.sim import Mechanisms, Sim
from engs.services.validate.stats import fmt_p, slope_test, welch_t
from engs.shared.config import Config

NAME = "rpe"
TITLE = "2. Dopamine as reward prediction error: critic vs the seed's energy value"
MODELS = ("critic", "energy")


@dataclass(frozen=True)
class Params:
    probabilities: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    delay_s: float = 1.0
    delays_s: tuple[float, ...] = (0.5, 3.0)
    magnitudes: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    trials: int = 32
    magnitude_trials: int = 50
    probe_blocks: int = 4
    iti_s: tuple[float, float] = (1.5, 3.0)
    cue_amplitude: float = 0.2
    window_s: float = 0.05
    pre_window_s: float = 0.3


@dataclass(frozen=True)
class Spec:
    """One session: reward probability, CS–US delay, magnitude mode."""

    kind: str  # "probability", "interval" or "magnitude"
    p: float
    delay_s: float


@dataclass
class Session:
    spec: Spec
    naive: float  # phasic response to the opening uncued reward (critic)
    magnitude: np.ndarray[Any, Any]  # reward size per training trial (0 when omitted)
    rewarded: np.ndarray[Any, Any]  # bool per training trial
    cue: dict[str, np.ndarray[Any, Any]]  # model -> phasic cue response per trial
    reward: dict[str, np.ndarray[Any, Any]]  # model -> phasic reward-window response
    pre: dict[str, np.ndarray[Any, Any]]  # model -> δ summed before a delivered reward
    omission: dict[str, np.ndarray[Any, Any]]  # model -> per omission probe
    baseline: dict[str, np.ndarray[Any, Any]]  # model -> same window in the ITI
    uncued: dict[str, np.ndarray[Any, Any]]  # model -> per uncued-reward probe
    traces: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def _record(sim: Sim) -> tuple[float, float]:
    return sim.engs.td_error_critic, sim.engs.td_error_energy


def run_session(
    cfg: Config,
    params: Params,
    spec: Spec,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> Session:
    sim = Sim(cfg, seed=seed, mechanisms=mechanisms)
    neg = sim.config.orchestrator.dopamine.negative_gain
    rng = np.random.default_rng([seed, round(spec.p * 1000), round(spec.delay_s * 100), 0x2FE])
    dt = sim.dt
    delay = round(spec.delay_s / dt)
    win = max(1, round(params.window_s / dt))
    pre = round(params.pre_window_s / dt)
    om_lo, om_hi = delay - round(0.1 / dt), delay + round(0.3 / dt)
    cue_in = CycleInputs(stimuli=(Stimulus(area=0, amplitude=params.cue_amplitude),))
    n_train = params.magnitude_trials if spec.kind == "magnitude" else params.trials
    mags = np.array(params.magnitudes)

    def run(cycles: int, events: dict[int, CycleInputs]) -> np.ndarray[Any, Any]:
        """``cycles`` cycles, inputs at given offsets; δ per cycle and model, (2, n)."""
        d = np.zeros((2, cycles))
        for k in range(cycles):
            sim.cycle(events.get(k, CycleInputs()))
            d[:, k] = _record(sim)
        return d

    def ph(d: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.where(d >= 0.0, d, neg * d)

    sim.run(round(1.0 / dt))  # let the field settle
    naive_d = run(win + round(1.0 / dt), {0: CycleInputs(reward=1.0)})
    naive = float(ph(naive_d[0, :win]).sum())
    cue: dict[str, list[float]] = {m: [] for m in MODELS}
    rew: dict[str, list[float]] = {m: [] for m in MODELS}
    pre_s: dict[str, list[float]] = {m: [] for m in MODELS}
    om: dict[str, list[float]] = {m: [] for m in MODELS}
    base: dict[str, list[float]] = {m: [] for m in MODELS}
    unc: dict[str, list[float]] = {m: [] for m in MODELS}
    magnitude, rewarded = [], []
    traces: dict[str, dict[str, list[float]]] = {}
    show = slice(0, min(delay + round(1.0 / dt), delay + round(params.iti_s[0] / dt)))

    def trial(give: float | None, keep: bool) -> np.ndarray[Any, Any]:
        length = delay + round(rng.uniform(*params.iti_s) / dt)
        events = {0: cue_in}
        if give:
            events[delay] = CycleInputs(reward=give)
        d = run(length, events)
        if keep:
            p_d = ph(d)
            for i, m in enumerate(MODELS):
                cue[m].append(float(p_d[i, :win].sum()))
                rew[m].append(float(p_d[i, delay : delay + win].sum()))
                pre_s[m].append(float(d[i, delay - pre : delay].sum()))
            magnitude.append(give or 0.0)
            rewarded.append(bool(give))
        return d

    for t, give in enumerate(_schedule(spec, n_train, mags, rng)):
        d = trial(give, keep=True)
        if t == 0:
            traces["first"] = {m: d[i, show].tolist() for i, m in enumerate(MODELS)}
        if give:
            traces["trained"] = {m: d[i, show].tolist() for i, m in enumerate(MODELS)}
        if progress is not None:
            progress.update(NAME, f"{spec.kind} p={spec.p:g} T={spec.delay_s:g}s", t + 1, n_train)
    if spec.p >= 1.0:
        reward_again = 1.0 if spec.kind != "magnitude" else float(mags.mean())
        for _ in range(params.probe_blocks):
            trial(reward_again, keep=False)
            d = trial(None, keep=False)  # omission probe
            p_d = ph(d)
            for i, m in enumerate(MODELS):
                om[m].append(float(p_d[i, om_lo:om_hi].sum()))
                tail = p_d[i, om_hi + round(1.0 / dt) :]
                base[m].append(float(tail[: om_hi - om_lo].sum()))
            traces["omission"] = {m: d[i, show].tolist() for i, m in enumerate(MODELS)}
            trial(reward_again, keep=False)
            # An uncued reward half-way through an inter-trial interval.
            gap = round(rng.uniform(*params.iti_s) / dt)
            d = run(2 * gap, {gap: CycleInputs(reward=1.0)})
            p_d = ph(d)
            for i, m in enumerate(MODELS):
                unc[m].append(float(p_d[i, gap : gap + win].sum()))

    def arr(x: dict[str, list[float]]) -> dict[str, np.ndarray[Any, Any]]:
        return {m: np.array(v) for m, v in x.items()}

    return Session(
        spec=spec,
        naive=naive,
        magnitude=np.array(magnitude),
        rewarded=np.array(rewarded, dtype=bool),
        cue=arr(cue),
        reward=arr(rew),
        pre=arr(pre_s),
        omission=arr(om),
        baseline=arr(base),
        uncued=arr(unc),
        traces=traces,
    )


def _schedule(
    spec: Spec, n: int, mags: np.ndarray[Any, Any], rng: np.random.Generator
) -> list[float | None]:
    """The outcomes of ``n`` training trials, block-randomised as in the recordings
    (Fiorillo et al. 2003 balanced outcomes pseudorandomly): every block of 4 trials
    holds exactly round(4p) rewards, every block of len(magnitudes) trials each
    magnitude once, shuffled within the block. Independent draws would let the realised
    reward fraction of a short session stray from p (0.5 and 0.75 swapped order in
    about one session in five of 20 trials)."""
    out: list[float | None] = []
    while len(out) < n:
        if spec.kind == "magnitude":
            block: list[float | None] = [float(m) for m in mags]
        else:
            k = round(4 * spec.p)
            block = [1.0] * k + [None] * (4 - k)
        order = rng.permutation(len(block))
        out += [block[i] for i in order]
    return out[:n]


def _late(s: Session) -> np.ndarray[Any, Any]:
    """Indices of the second half of training."""
    n = s.rewarded.size
    return np.arange(n // 2, n)


def _signatures(
    sessions: list[Session], params: Params, model: str, gamma: float
) -> dict[str, Any]:
    """Every signature's numbers and verdicts for one value model."""
    prob = {s.spec.p: s for s in sessions if s.spec.kind == "probability"}
    sure = [s for s in sessions if s.spec.kind != "magnitude" and s.spec.p >= 1.0]
    sure.sort(key=lambda s: s.spec.delay_s)
    mag = [s for s in sessions if s.spec.kind == "magnitude"]
    naive = float(np.mean([s.naive for s in sessions]))
    per_delay: dict[str, dict[str, float]] = {}
    transfer_ok = pre_ok = omission_ok = uncued_ok = True
    for s in sure:
        late = _late(s)
        got = late[s.rewarded[late]]
        td_value = gamma**s.spec.delay_s
        cue_late = float(s.cue[model][late].mean())
        rew_late = float(s.reward[model][got].mean())
        pre_late = float(s.pre[model][got].mean())
        dip = s.omission[model]
        base = s.baseline[model]
        dip_p = welch_t(dip, base).p_value if dip.size >= 2 else 1.0
        unc = float(s.uncued[model].mean()) if s.uncued[model].size else float("nan")
        per_delay[f"{s.spec.delay_s:g}"] = {
            "cue": cue_late,
            "cue_td_fraction": cue_late / td_value,
            "reward": rew_late,
            "reward_fraction": rew_late / s.naive,
            "pre_reward_sum": pre_late,
            "omission": float(dip.mean()),
            "omission_baseline": float(base.mean()),
            "omission_p": dip_p,
            "uncued": unc,
            "uncued_fraction": unc / s.naive,
        }
        transfer_ok &= cue_late >= 0.6 * td_value and rew_late <= 0.2 * s.naive
        pre_ok &= pre_late >= -0.05
        omission_ok &= float(dip.mean()) <= -0.2 and dip_p < 0.05
        uncued_ok &= unc >= 0.8 * s.naive
    xs, ys, xr, yr = [], [], [], []
    per_p = {}
    for p, s in sorted(prob.items()):
        late = _late(s)
        got = late[s.rewarded[late]]
        xs += [p] * late.size
        ys += s.cue[model][late].tolist()
        xr += [p] * got.size
        yr += s.reward[model][got].tolist()
        per_p[f"{p:g}"] = {
            "cue": float(s.cue[model][late].mean()),
            "reward": float(s.reward[model][got].mean()) if got.size else float("nan"),
        }
    cue_slope = slope_test(np.array(xs), np.array(ys))
    rew_slope = slope_test(np.array(xr), np.array(yr)) if len(set(xr)) > 1 else None
    cue_means = [v["cue"] for v in per_p.values()]
    rew_means = [v["reward"] for k, v in per_p.items() if float(k) > 0]
    probability_ok = bool(
        np.all(np.diff(cue_means) > 0)
        and np.all(np.diff(rew_means) < 0)
        and cue_slope.slope > 0
        and cue_slope.test.p_value < 0.05
        and rew_slope is not None
        and rew_slope.slope < 0
        and rew_slope.test.p_value < 0.05
    )
    magnitude: dict[str, Any] = {}
    magnitude_ok = False
    if mag:
        s = mag[0]
        late = _late(s)
        m_, r_ = s.magnitude[late], s.reward[model][late]
        expected = float(np.mean(params.magnitudes))
        levels = sorted(set(m_.tolist()))
        means = [float(r_[m_ == v].mean()) for v in levels]
        above, below = m_ > expected, m_ < expected  # the mean size itself in neither
        fit_a = slope_test(m_[above], r_[above])
        fit_b = slope_test(m_[below], r_[below])
        sp, sn = fit_a.slope, fit_b.slope
        ratio = float(sn / sp) if sp > 0 else float("inf")
        magnitude = {
            "levels": levels,
            "mean_response": means,
            "slope_above_expected": float(sp),
            "slope_above_p": fit_a.test.p_value,
            "slope_below_expected": float(sn),
            "slope_below_p": fit_b.test.p_value,
            "slope_ratio": ratio,
        }
        magnitude_ok = bool(
            sp >= 0.5
            and fit_a.test.p_value < 0.05
            and sn > 0
            and fit_b.test.p_value < 0.05
            and ratio <= 0.5
        )
    return {
        "naive": naive,
        "per_delay": per_delay,
        "per_probability": per_p,
        "cue_slope": cue_slope.slope,
        "cue_slope_p": cue_slope.test.p_value,
        "reward_slope": rew_slope.slope if rew_slope else float("nan"),
        "reward_slope_p": rew_slope.test.p_value if rew_slope else 1.0,
        "magnitude": magnitude,
        "verdicts": {
            "burst": naive >= 0.5,
            "transfer": transfer_ok,
            "no_pre_dip": pre_ok,
            "omission_dip": omission_ok,
            "uncued_kept": uncued_ok,
            "probability": probability_ok,
            "magnitude": magnitude_ok,
        },
    }


def _specs(params: Params) -> list[Spec]:
    specs = [Spec("probability", p, params.delay_s) for p in params.probabilities]
    specs += [Spec("interval", 1.0, d) for d in params.delays_s if d != params.delay_s]
    if params.magnitudes:  # () skips the magnitude session (its prediction then fails)
        specs.append(Spec("magnitude", 1.0, params.delay_s))
    return specs


def measure(ctx: Context, params: Params) -> Findings:
    cfg, seed, jobs, progress, mechanisms = ctx
    if 1.0 not in params.probabilities or len(params.probabilities) < 3:
        raise ValueError("the RPE assay needs p = 1 and at least two p < 1")
    calls = [(cfg, params, spec, mechanisms, seed, progress) for spec in _specs(params)]
    sessions: list[Session] = pmap(run_session, calls, jobs)
    gamma = cfg.orchestrator.dopamine.gamma
    sig = {m: _signatures(sessions, params, m, gamma) for m in MODELS}
    driving = cfg.orchestrator.dopamine.value_model
    if mechanisms is not None and mechanisms.zero_value and driving == "critic":
        driving_label = "critic (replaced by V = 0)"
    else:
        driving_label = driving
    s = sig[driving]
    v = s["verdicts"]
    delays = ", ".join(f"{k} s" for k in s["per_delay"])

    def per_delay(fmt: str) -> str:
        return "; ".join(f"T={k}s " + fmt.format(**x) for k, x in s["per_delay"].items())

    def at_every_delay(
        id: str, statement: str, criterion: str, fmt: str, verdict: str, number: str
    ) -> Prediction:
        """A prediction judged at every delay: each delay's numbers shown by ``fmt``, the
        signature's ``verdict``, and each delay's ``number`` reported."""
        return Prediction(
            id=id,
            statement=statement,
            criterion=criterion,
            measured=per_delay(fmt) + f" ({driving_label})",
            passed=v[verdict],
            numbers={k: x[number] for k, x in s["per_delay"].items()},
        )

    mg = s["magnitude"] or {"note": "not run: no magnitudes"}
    preds = [
        Prediction(
            id="rpe.burst_unexpected",
            statement="An unexpected reward gives a phasic dopamine burst (Schultz et al. 1997).",
            criterion="phasic response summed over the 50 ms from an uncued reward of 1, "
            "before any training, >= 0.5 (mean over sessions)",
            measured=f"{s['naive']:.2f} ({driving_label})",
            passed=v["burst"],
            numbers={"naive": s["naive"]},
        ),
        Prediction(
            id="rpe.transfer_to_cue",
            statement="With learning the response moves from the reward to the cue that "
            "predicts it, at every CS–US interval (Schultz et al. 1997).",
            criterion=f"at each delay ({delays}), second half of training: cue response >= "
            "0.6 x its TD value γ^T and reward response <= 0.2 x the naive burst",
            measured=per_delay(
                "cue {cue:.2f} ({cue_td_fraction:.0%} of TD), reward "
                "{reward:.2f} ({reward_fraction:.0%} of naive)"
            )
            + f" ({driving_label})",
            passed=v["transfer"],
            numbers={"per_delay": s["per_delay"]},
        ),
        at_every_delay(
            id="rpe.no_dip_before_reward",
            statement="The learned value does not sag before a predicted reward.",
            criterion="δ summed over the 300 ms before a delivered reward, second half of "
            "training, >= -0.05 at every delay",
            fmt="{pre_reward_sum:+.3f}",
            verdict="no_pre_dip",
            number="pre_reward_sum",
        ),
        at_every_delay(
            id="rpe.omission_dip",
            statement="When a predicted reward is omitted, dopamine dips below baseline at the "
            "time it was due (Schultz et al. 1997).",
            criterion="phasic response summed from 0.1 s before to 0.3 s after the due time on "
            "omission probes <= -0.2 and below the same window in the inter-trial interval "
            "(Welch p < 0.05), at every delay",
            fmt="{omission:.2f} vs {omission_baseline:.3f}",
            verdict="omission_dip",
            number="omission",
        ),
        at_every_delay(
            id="rpe.uncued_reward_kept",
            statement="Training on a cued reward leaves an uncued reward surprising: only what "
            "is predicted is cancelled.",
            criterion="after training, an uncued reward in the inter-trial interval keeps >= "
            "80 % of the naive burst, at every delay",
            fmt="{uncued_fraction:.0%}",
            verdict="uncued_kept",
            number="uncued_fraction",
        ),
        Prediction(
            id="rpe.probability",
            statement="Cue responses grow with the reward probability and reward responses "
            "shrink with it (Fiorillo et al. 2003).",
            criterion="mean cue response (second half of training) strictly increasing in p "
            "(p = 0 … 1) with OLS slope > 0 (p < 0.05); the reward response strictly "
            "decreasing (p > 0) with slope < 0 (p < 0.05)",
            measured="cue "
            + ", ".join(f"p={k}: {x['cue']:.2f}" for k, x in s["per_probability"].items())
            + "; reward "
            + ", ".join(
                f"p={k}: {x['reward']:.2f}" for k, x in s["per_probability"].items() if float(k) > 0
            )
            + f" (slopes {s['cue_slope']:.2f}, {fmt_p(s['cue_slope_p'])}; "
            f"{s['reward_slope']:.2f}, {fmt_p(s['reward_slope_p'])}; {driving_label})",
            passed=v["probability"],
            numbers={
                "per_probability": s["per_probability"],
                "cue_slope": s["cue_slope"],
                "cue_slope_p": s["cue_slope_p"],
                "reward_slope": s["reward_slope"],
                "reward_slope_p": s["reward_slope_p"],
            },
        ),
        Prediction(
            id="rpe.magnitude",
            statement="Positive prediction errors are coded linearly in reward size, negative "
            "ones compressed (Bayer & Glimcher 2005).",
            criterion="rewards of block-randomised size 0.2–1 after a cue (second half of "
            "training): OLS slope of the response on the sizes above the mean size >= 0.5, below "
            "it > 0 (both p < 0.05: monotone in size), and the slope below <= 0.5 x above",
            measured=(
                f"slopes {mg.get('slope_above_expected', float('nan')):.2f} above / "
                f"{mg.get('slope_below_expected', float('nan')):.2f} below the expected "
                f"size (ratio {mg.get('slope_ratio', float('nan')):.2f}; {driving_label})"
            ),
            passed=v["magnitude"],
            numbers=mg,
        ),
    ]
    names = {
        "burst": "burst",
        "transfer": "transfer",
        "no_pre_dip": "no pre-reward dip",
        "omission_dip": "omission dip",
        "uncued_kept": "uncued reward kept",
        "probability": "probability",
        "magnitude": "magnitude",
    }
    reproduced = {m: [k for k, ok in sig[m]["verdicts"].items() if ok] for m in MODELS}
    comparison = (
        "Which value model reproduces which signature (same runs, same criteria): "
        + "; ".join(
            f"{m}: " + (", ".join(names[k] for k in reproduced[m]) or "none") for m in MODELS
        )
        + "."
    )
    learned = {"transfer", "omission_dip", "probability"}
    preds.append(
        Prediction(
            id="rpe.critic_beats_energy",
            statement="A value defined only as field energy cannot learn predictions; a learned "
            "critic can (ARCHITECTURE §6.10): the critic reproduces every signature, the "
            "energy value none of those that need a prediction.",
            criterion="critic reproduces all seven signatures; the energy value none of "
            "transfer, omission dip, probability",
            measured=comparison,
            passed=len(reproduced["critic"]) == len(names)
            and not learned & set(reproduced["energy"])
            and not (mechanisms is not None and mechanisms.zero_value),
            numbers={"reproduced": reproduced},
        )
    )
    main = next(x for x in sessions if x.spec.kind == "probability" and x.spec.p >= 1.0)
    series = {
        "dt": cfg.orchestrator.dt,
        "delay_s": params.delay_s,
        "trials": params.trials,
        "first": main.traces.get("first", {}),
        "trained": main.traces.get("trained", {}),
        "omission": main.traces.get("omission", {}),
        "cue_by_trial": {m: main.cue[m].tolist() for m in MODELS},
        "reward_by_trial": {m: main.reward[m].tolist() for m in MODELS},
        "rewarded": main.rewarded.tolist(),
        "per_probability": {m: sig[m]["per_probability"] for m in MODELS},
        "per_delay": {m: sig[m]["per_delay"] for m in MODELS},
        "magnitude": {m: sig[m]["magnitude"] for m in MODELS},
    }
    numbers = {m: {k: x for k, x in sig[m].items() if k != "per_probability"} for m in MODELS}
    return Findings(
        predictions=preds,
        numbers=numbers,
        notes=[comparison, f"D is driven by the `{driving_label}` value in this run."],
        series=series,
    )


run = Assay[Params](NAME, TITLE, __doc__, measure).run
