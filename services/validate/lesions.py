"""Assay 1 — virtual lesions (seed 003 GAP-029 "Ablation Study Protocols").

The feedback task ("learn the target pattern from feedback"), run for a control and
three lesions (D clamped to 0, S clamped to 0, N clamped to 1):

* The environment's resting input drives every area at ``rest_input`` of the published
  drive. Presenting pattern P_k raises area k's input to ``pattern_input`` (the
  harness's input-drive model, :mod:`engs.services.validate.sim`).
* The stored pattern is the metric: the contrast of P_k is C_k = ḡ_k − mean ḡ over the
  background areas (ḡ: mean conductance of an area's edges; background: the areas that
  are never a target), and the task's accuracy is A_k = clip(C_k / C*, 0, 1) with
  C* = ``target_contrast`` conductance units.
* Feedback: every ``feedback_every_s`` the teacher pays a reward of
  ``feedback_gain``·A_k — reward when the metric matches the target, more the better
  it matches. Learning itself is Hebbian on the input; dopamine gates its rate.
* Irrelevant inputs: at ``distractor_rate_hz`` (Poisson) an input of relevance
  ``distractor_relevance`` is offered to a random non-target area; the Relevance Gating
  Transformer admits it iff relevance ≥ τ (the published relevance gate), and an
  admitted one drives its area like a pattern for ``distractor_s``.
* Phases: settle at rest; learn P1 (area 1) with feedback; then learn a new pattern P2
  (area 2) with feedback for ``relearn_s`` — the recall of P1 after it measures
  whether the stored pattern survived new learning.

Lesions are pharmacological clamps: the level is held in the dynamics, at every area's
receptors (what the area model derives from it follows) and in the published record
(:class:`engs.services.validate.sim.Clamp`, SN-78).

Read-outs per condition: convergence time (first time the 1-s running mean of A_1
reaches ``criterion``), final accuracy (mean A_1 over the last 2 s of learning), peak
accuracy, the unclipped contrast C_1 (peak of its 1-s mean, final 2-s mean), recall of P1
after P2, fraction of edges at g_max, the rise of the background
areas' mean conductance over the learning phase (what admitted irrelevant inputs imprint
where nothing was taught), irrelevant inputs offered and admitted, field energy, and the
field entropy (reported by the causality assay).

Arousal sweep (issue 13; Yerkes–Dodson, Aston-Jones & Cohen 2005): the same task with N
clamped at each of ``arousal_levels`` (N = 1 is the panic lesion's run); the prediction
asks for an interior peak of the final accuracy with both ends ``arousal_drop`` below it.
What N does in the model: the speed gain 1 + N² (no effect on an off-resonant drive),
the relevance gate τ(N), the couplings to D and S (plasticity and elasticity gates), and
the gain of the areas' saturating response to their inputs (docs/areas.md §7a): low gain
under-responds (the taught input barely leads the resting one), high gain drives every
input, relevant or not, to the ceiling (SN-73).

S = 0 (SN-74, SN-77): the elastic force λ(S) pulls the metric to its consolidated value;
without it ongoing activity potentiates every edge it reaches, the taught contrast erodes
while still presented, and P1 does not survive learning P2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import numpy as np

from engs.services.orchestrator.gates import relevance_gate
from engs.services.orchestrator.inputs import CycleInputs
from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress, pmap
from engs.services.validate.sim import Clamp, Constant, Mechanisms, Sim, running_mean
from engs.shared.config import Config

NAME = "lesions"
TITLE = "1. Virtual lesions: control vs D = 0, S = 0, N = 1 on a feedback task"

#: The N = 1 condition with N's input side held calm (see CONDITIONS).
CALM_INPUT = "N=1, input calm"

CONDITIONS: dict[str, Clamp] = {
    "control": Clamp(),
    "D=0": Clamp(dopamine=0.0),
    "S=0": Clamp(serotonin=0.0),
    "N=1": Clamp(norepinephrine=1.0),
    #: N = 1 with its input side held calm — the relevance gate at its calm τ and the
    #: areas' response gain at 1: isolates what N = 1 lets in (admitted irrelevant inputs,
    #: every input driving its area harder) from everything else N = 1 does (D up, S down,
    #: the speed gain, PANIC).
    CALM_INPUT: Clamp(norepinephrine=1.0),
}


@dataclass(frozen=True)
class Params:
    settle_s: float = 3.0
    learn_s: float = 25.0
    relearn_s: float = 4.0
    rest_input: float = 0.4
    pattern_input: float = 0.8
    feedback_every_s: float = 0.5
    feedback_gain: float = 0.25
    target_contrast: float = 1.0
    criterion: float = 0.8
    distractor_rate_hz: float = 1.0
    distractor_relevance: float = 0.2
    distractor_s: float = 0.5
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    """Which conditions to run (default all; a prediction is judged only when the
    conditions it needs ran)."""
    arousal_levels: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    """N clamps of the arousal sweep (the same task at each; empty: no sweep)."""
    arousal_drop: float = 0.2
    """Inverted U: both ends at least this fraction below the peak's accuracy."""


@dataclass
class ConditionRun:
    """The traces of one condition, one sample per control cycle."""

    name: str
    t: np.ndarray[Any, Any]
    phase: np.ndarray[Any, Any]  # 0 settle, 1 learn P1, 2 learn P2
    accuracy1: np.ndarray[Any, Any]
    accuracy2: np.ndarray[Any, Any]
    contrast1: np.ndarray[Any, Any]  # C_1 unclipped (conductance units)
    dopamine: np.ndarray[Any, Any]
    serotonin: np.ndarray[Any, Any]
    norepinephrine: np.ndarray[Any, Any]
    plasticity_gate: np.ndarray[Any, Any]
    elasticity_gate: np.ndarray[Any, Any]
    relevance_gate: np.ndarray[Any, Any]
    entropy: np.ndarray[Any, Any]  # H / log2(n_nodes)
    energy: np.ndarray[Any, Any]  # field energy per node
    area_g: np.ndarray[Any, Any]  # (cycles, n_areas)
    offered: int = 0
    admitted: int = 0
    saturated_fraction: float = 0.0
    critical_cycles: int = 0
    nonfinite_ticks: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)


def arousal_condition(level: float) -> str:
    """The condition name of one arousal-sweep level (N = 1 is the panic lesion's run)."""
    return "N=1" if level == 1.0 else f"N={level:g} (sweep)"


def _clamp_for(name: str) -> Clamp:
    if name in CONDITIONS:
        return CONDITIONS[name]
    if name.startswith("N=") and name.endswith(" (sweep)"):
        return Clamp(norepinephrine=float(name[2:].split(" ", 1)[0]))
    raise ValueError(f"unknown lesion condition {name!r}, expected one of {list(CONDITIONS)}")


def _targets(n_areas: int) -> tuple[int, int, list[int]]:
    """P1's area, P2's area and the background areas (never a target)."""
    if n_areas < 3:
        raise ValueError(f"the lesion task needs at least 3 areas, the config has {n_areas}")
    return 1, 2, [a for a in range(n_areas) if a not in (1, 2)]


def _calm_tau(cfg: Config) -> float:
    oc = cfg.orchestrator
    ne = oc.norepinephrine
    return relevance_gate(
        oc.coupling.n_eq,
        ne.relevance_base,
        ne.relevance_slope,
        ne.relevance_floor,
        ne.relevance_ceiling,
    )


def run_condition(
    cfg: Config,
    params: Params,
    name: str,
    clamp: Clamp,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
) -> ConditionRun:
    """Run the feedback task for one condition (deterministic in ``seed``)."""
    if name == CALM_INPUT:
        mechanisms = replace(
            mechanisms or Mechanisms(),
            relevance_gate=Constant(_calm_tau(cfg)),
            response_gain=Constant(1.0),
        )
    sim = Sim(cfg, seed=seed, clamp=clamp, mechanisms=mechanisms)
    p = params
    n = sim.n_areas
    t1, t2, background = _targets(n)
    rng = np.random.default_rng([seed, 0xD157])
    sim.drive_gain[:] = p.rest_input
    dt = sim.dt
    phases = [(0, None, p.settle_s), (1, t1, p.learn_s), (2, t2, p.relearn_s)]
    total = sum(round(s / dt) for _, _, s in phases)
    cols: dict[str, list[float]] = {
        k: []
        for k in ["t", "phase", "a1", "a2", "c1", "D", "S", "N", "plast", "elast", "tau", "H", "E"]
    }
    area_g: list[np.ndarray[Any, Any]] = []
    fb_every = max(1, round(p.feedback_every_s / dt))
    distract_cycles = max(1, round(p.distractor_s / dt))
    distract_left = np.zeros(n, dtype=np.int64)
    offered = admitted = 0
    nodes = sim.field.lattice.n_nodes
    k_total = 0
    saturated = 0.0
    g_max = sim.config.physics.conductance_max
    for phase, target, seconds in phases:
        for k in range(round(seconds / dt)):
            g = sim.area_conductance()
            acc = [_accuracy(g, a, background, p.target_contrast) for a in (t1, t2)]
            reward = 0.0
            if target is not None and k % fb_every == 0:
                reward = p.feedback_gain * acc[0 if target == t1 else 1]
            if target is not None and rng.random() < p.distractor_rate_hz * dt:
                choices = [a for a in range(n) if a != target]
                area = int(choices[int(rng.integers(len(choices)))])
                offered += 1
                if sim.admit(p.distractor_relevance):
                    admitted += 1
                    distract_left[area] = distract_cycles
            extra = np.where(distract_left > 0, p.pattern_input - p.rest_input, 0.0)
            if target is not None:
                extra[target] = p.pattern_input - p.rest_input
            sim.drive_extra[:] = extra
            np.subtract(distract_left, 1, out=distract_left, where=distract_left > 0)
            sim.cycle(CycleInputs(reward=reward) if reward else CycleInputs())
            st = sim.state
            for key, value in (
                ("t", sim.t_s),
                ("phase", phase),
                ("a1", acc[0]),
                ("a2", acc[1]),
                ("c1", float(g[t1] - g[background].mean())),
                ("D", float(st["dopamine"])),
                ("S", float(st["serotonin"])),
                ("N", float(st["norepinephrine"])),
                ("plast", float(st["plasticity_gate"])),
                ("elast", float(st["elasticity_gate"])),
                ("tau", float(st["relevance_gate"])),
                ("H", sim.entropy_fraction()),
                ("E", float(sim.tel["energy"]) / nodes),
            ):
                cols[key].append(value)
            area_g.append(g)
            k_total += 1
            if progress is not None:
                progress.update(NAME, f"{name} cycle", k_total, total)
        if phase == 1:
            gg = sim.conductance()
            saturated = float(np.mean(gg >= g_max - 1e-3))
    a = {k: np.asarray(v) for k, v in cols.items()}
    return ConditionRun(
        name=name,
        t=a["t"],
        phase=a["phase"].astype(np.int64),
        accuracy1=a["a1"],
        accuracy2=a["a2"],
        contrast1=a["c1"],
        dopamine=a["D"],
        serotonin=a["S"],
        norepinephrine=a["N"],
        plasticity_gate=a["plast"],
        elasticity_gate=a["elast"],
        relevance_gate=a["tau"],
        entropy=a["H"],
        energy=a["E"],
        area_g=np.asarray(area_g),
        offered=offered,
        admitted=admitted,
        saturated_fraction=saturated,
        critical_cycles=sim.critical_cycles,
        nonfinite_ticks=sim.nonfinite_ticks,
    )


def _accuracy(
    g: np.ndarray[Any, Any], area: int, background: list[int], target_contrast: float
) -> float:
    """A = clip((ḡ_area - mean ḡ_background) / C*, 0, 1)."""
    return float(np.clip((g[area] - g[background].mean()) / target_contrast, 0.0, 1.0))


def summarize(run: ConditionRun, params: Params, dt: float) -> dict[str, Any]:
    """Convergence time, final / peak accuracy, recall and the levels of one run."""
    learn = run.phase == 1
    relearn = run.phase == 2
    acc = run.accuracy1[learn]
    smooth = running_mean(acc, max(1, round(1.0 / dt)))
    hit = np.nonzero(smooth >= params.criterion)[0]
    tail = max(1, round(2.0 / dt))
    recall_tail = max(1, round(0.5 / dt))
    _, _, background = _targets(run.area_g.shape[1])
    g_settle = run.area_g[run.phase == 0][-1][background].mean() if (run.phase == 0).any() else 1.0
    g_learnt = run.area_g[learn][-1][background].mean()
    settled = run.energy[run.phase == 0][-tail:]
    e_settle = float(settled.mean()) if settled.size else float(run.energy[0])
    contrast = running_mean(run.contrast1[learn], max(1, round(1.0 / dt)))
    return {
        "convergence_s": float((hit[0] + 1) * dt) if hit.size else None,
        "peak_contrast": float(contrast.max()),
        "final_contrast": float(run.contrast1[learn][-tail:].mean()),
        "final_accuracy": float(acc[-tail:].mean()),
        "peak_accuracy": float(smooth.max()),
        "recall_p1_after_p2": float(run.accuracy1[relearn][-recall_tail:].mean())
        if relearn.any()
        else math.nan,
        "p2_accuracy": float(run.accuracy2[relearn][-recall_tail:].mean())
        if relearn.any()
        else math.nan,
        "saturated_edge_fraction": run.saturated_fraction,
        "background_g_rise": float(g_learnt - g_settle),
        "mean_D": float(run.dopamine[learn].mean()),
        "mean_S": float(run.serotonin[learn].mean()),
        "mean_N": float(run.norepinephrine[learn].mean()),
        "plasticity_gate": float(run.plasticity_gate[learn].mean()),
        "elasticity_gate": float(run.elasticity_gate[learn].mean()),
        "relevance_gate": float(run.relevance_gate[learn].mean()),
        "irrelevant_offered": run.offered,
        "irrelevant_admitted": run.admitted,
        "admitted_fraction": run.admitted / run.offered if run.offered else math.nan,
        "energy_per_node_settled": e_settle,
        "energy_peak_ratio": float(run.energy[run.phase > 0].max() / max(e_settle, 1e-12)),
        "critical_cycles": run.critical_cycles,
        "nonfinite_ticks": run.nonfinite_ticks,
    }


_CACHE: dict[tuple[Any, ...], dict[str, ConditionRun]] = {}


def simulate(
    cfg: Config,
    params: Params,
    *,
    seed: int,
    jobs: int = 1,
    progress: Progress | None = None,
    mechanisms: Mechanisms | None = None,
) -> dict[str, ConditionRun]:
    """The four condition runs (cached per process for the same arguments, so the
    causality assay's entropy comparison reuses the lesion assay's runs)."""
    key = (msgspec.json.encode(cfg), params, seed, repr(mechanisms))
    if key in _CACHE:
        return _CACHE[key]
    unknown = set(params.conditions) - CONDITIONS.keys()
    if unknown:
        raise ValueError(
            f"unknown lesion conditions {sorted(unknown)}, expected {list(CONDITIONS)}"
        )
    names = list(params.conditions)
    names += [c for c in map(arousal_condition, params.arousal_levels) if c not in names]
    calls = [(cfg, params, name, _clamp_for(name), mechanisms, seed, progress) for name in names]
    runs = pmap(run_condition, calls, jobs)
    out = {r.name: r for r in runs}
    _CACHE.clear()
    _CACHE[key] = out
    return out


def measure(ctx: Context, params: Params) -> Findings:
    cfg, seed, jobs, progress, mechanisms = ctx
    runs = simulate(cfg, params, seed=seed, jobs=jobs, progress=progress, mechanisms=mechanisms)
    dt = cfg.orchestrator.dt
    m = {name: summarize(r, params, dt) for name, r in runs.items()}
    preds = [fn(m, params) for needs, fn in _PREDICTIONS if set(needs) <= m.keys()]
    sweep = [arousal_condition(n) for n in params.arousal_levels]
    if len(sweep) >= 3:
        preds.append(_arousal_inverted_u(m, params, sweep))
    series = {
        name: {
            "t": r.t.tolist(),
            "phase": r.phase.tolist(),
            "accuracy1": r.accuracy1.tolist(),
            "accuracy2": r.accuracy2.tolist(),
            "dopamine": r.dopamine.tolist(),
            "serotonin": r.serotonin.tolist(),
            "norepinephrine": r.norepinephrine.tolist(),
            "energy": r.energy.tolist(),
            "area_g": r.area_g.tolist(),
        }
        for name, r in runs.items()
        if name in params.conditions
    }
    arousal = {
        "N": list(params.arousal_levels),
        "final_accuracy": [m[c]["final_accuracy"] for c in sweep],
        "final_contrast": [m[c]["final_contrast"] for c in sweep],
        "peak_accuracy": [m[c]["peak_accuracy"] for c in sweep],
        "mean_D": [m[c]["mean_D"] for c in sweep],
        "mean_S": [m[c]["mean_S"] for c in sweep],
        "admitted_fraction": [_frac(m[c]) for c in sweep],
    }
    return Findings(
        predictions=preds,
        numbers=m,
        series={"runs": series, "criterion": params.criterion, "arousal": arousal},
    )


def _frac(m: dict[str, Any]) -> float:
    f = m["admitted_fraction"]
    return 0.0 if f is None or (isinstance(f, float) and math.isnan(f)) else float(f)


def _s(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f} s"


Summary = dict[str, dict[str, Any]]


def _control_learns(m: Summary, params: Params) -> Prediction:
    c, crit = m["control"], params.criterion
    conv = c["convergence_s"]
    return Prediction(
        id="lesion.control.learns",
        statement="The healthy system adapts to feedback: the target pattern is learned "
        "and held while it is presented.",
        criterion=f"control reaches accuracy {crit} (1-s mean) and its final accuracy "
        f"(last 2 s of learning) is >= {crit}",
        measured=f"convergence {_s(conv)}, final accuracy {c['final_accuracy']:.2f}, "
        f"peak {c['peak_accuracy']:.2f}, field energy peak {c['energy_peak_ratio']:.1f}x "
        "its settled level",
        passed=conv is not None and c["final_accuracy"] >= crit,
        numbers={k: c[k] for k in ("convergence_s", "final_accuracy", "peak_accuracy")},
    )


def _d_no_adaptation(m: Summary, params: Params) -> Prediction:
    d = m["D=0"]
    ref = f" (control {m['control']['peak_accuracy']:.2f})" if "control" in m else ""
    return Prediction(
        id="lesion.D.no_adaptation",
        statement="D clamped to 0 (Parkinsonian): the learning rate η → 0 and the system "
        "fails to adapt to feedback (seed 003 GAP-029).",
        criterion="published plasticity gate <= 0.05, never reaches the criterion, "
        "peak accuracy <= 0.2",
        measured=f"plasticity gate {d['plasticity_gate']:.3f}, convergence "
        f"{_s(d['convergence_s'])}, peak accuracy {d['peak_accuracy']:.2f}{ref}",
        passed=d["plasticity_gate"] <= 0.05
        and d["convergence_s"] is None
        and d["peak_accuracy"] <= 0.2,
        numbers={k: d[k] for k in ("plasticity_gate", "convergence_s", "peak_accuracy")},
    )


def _s_overwritten(m: Summary, params: Params) -> Prediction:
    s = m["S=0"]
    peak, final = s["peak_contrast"], s["final_contrast"]
    return Prediction(
        id="lesion.S.overwritten",
        statement="S clamped to 0: metric elasticity λ → 0, nothing holds the metric to what "
        "was consolidated and ongoing activity overwrites the stored pattern ('manic "
        "instability': every edge that activity reaches is potentiated).",
        criterion="published elasticity gate <= 0.05; the pattern is learned (peak "
        "accuracy >= 0.5) and then lost while still presented: its contrast C_1 "
        "(unclipped, 1-s mean) ends <= 0.5 x its peak, with >= 50 % of edges at g_max",
        measured=f"elasticity gate {s['elasticity_gate']:.3f}, edges at g_max "
        f"{100 * s['saturated_edge_fraction']:.0f} %, peak accuracy "
        f"{s['peak_accuracy']:.2f}; contrast peak {peak:.2f} then final {final:.2f} "
        f"({final / peak if peak > 0 else math.nan:.2f} x)",
        passed=s["elasticity_gate"] <= 0.05
        and s["peak_accuracy"] >= 0.5
        and final <= 0.5 * peak
        and s["saturated_edge_fraction"] >= 0.5,
        numbers={
            k: s[k]
            for k in (
                "elasticity_gate",
                "saturated_edge_fraction",
                "peak_accuracy",
                "final_accuracy",
                "peak_contrast",
                "final_contrast",
            )
        },
    )


def _s_specific(m: Summary, params: Params) -> Prediction:
    c, s = m["control"], m["S=0"]
    return Prediction(
        id="lesion.S.specific",
        statement="The forgetting is the lesion's: the healthy system still recalls the "
        "pattern after the same new learning.",
        criterion="recall of P1 after P2: control - (S = 0) >= 0.2",
        measured=f"recall control {c['recall_p1_after_p2']:.2f} vs S = 0 "
        f"{s['recall_p1_after_p2']:.2f}",
        passed=c["recall_p1_after_p2"] - s["recall_p1_after_p2"] >= 0.2,
        numbers={"recall_control": c["recall_p1_after_p2"], "recall_S0": s["recall_p1_after_p2"]},
    )


def _n_admits(m: Summary, params: Params) -> Prediction:
    c, nn = m["control"], m["N=1"]
    return Prediction(
        id="lesion.N.admits_irrelevant",
        statement="N clamped to 1 (panic): the relevance gate drops to its floor and "
        "irrelevant inputs are admitted (seed 003 GAP-029).",
        criterion="published relevance gate <= 0.05, N = 1 admits >= 90 % of irrelevant "
        "inputs and the control <= 10 %",
        measured=f"τ {nn['relevance_gate']:.2f} (control {c['relevance_gate']:.2f}); "
        f"admitted {nn['irrelevant_admitted']}/{nn['irrelevant_offered']} vs control "
        f"{c['irrelevant_admitted']}/{c['irrelevant_offered']}",
        passed=nn["relevance_gate"] <= 0.05 and _frac(nn) >= 0.9 and _frac(c) <= 0.1,
        numbers={
            "relevance_gate_N1": nn["relevance_gate"],
            "relevance_gate_control": c["relevance_gate"],
            "admitted_fraction_N1": nn["admitted_fraction"],
            "admitted_fraction_control": c["admitted_fraction"],
        },
    )


def _n_spurious(m: Summary, params: Params) -> Prediction:
    nn, nc = m["N=1"], m[CALM_INPUT]
    ref = f"; control {m['control']['background_g_rise']:+.2f}" if "control" in m else ""
    rise, calm = nn["background_g_rise"], nc["background_g_rise"]
    need = 0.2 * params.target_contrast
    return Prediction(
        id="lesion.N.spurious_imprint",
        statement="What N = 1 lets in is stored as spurious connections ('hallucinated "
        "connections'): the relevance gate admits every irrelevant input and the response "
        "gain drives every area, taught or not, towards saturation, so areas that were "
        "never taught anything are potentiated.",
        criterion="rise of the background areas' mean conductance over the learning phase: "
        f"(N = 1) - (N = 1 with its input side calm: τ at its calm value, response gain 1) "
        f">= {need:g} (a fifth of the target contrast C*; the same lesion with the "
        "irrelevant input kept out isolates its effect from N's couplings to D and S)",
        measured=f"background Δḡ N = 1 {rise:+.2f} vs N = 1 with input calm {calm:+.2f}{ref}; "
        f"final accuracy {nn['final_accuracy']:.2f} vs {nc['final_accuracy']:.2f}",
        passed=rise - calm >= need,
        numbers={"background_rise_N1": rise, "background_rise_N1_tau_calm": calm},
    )


def _arousal_inverted_u(m: Summary, params: Params, sweep: list[str]) -> Prediction:
    # Performance is the learned contrast C_1 (unclipped): the clipped accuracy has a
    # ceiling at C*, so an easy protocol (strong input, long training) lets every level
    # reach it and hides the differences a Yerkes–Dodson curve is about.
    perf = [m[c]["final_contrast"] for c in sweep]
    acc = [m[c]["final_accuracy"] for c in sweep]
    levels = params.arousal_levels
    k = int(np.argmax(perf))
    peak = perf[k]
    bar = (1.0 - params.arousal_drop) * peak
    shown = ", ".join(
        f"N={n:g}: {c:.2f} ({a:.2f})" for n, c, a in zip(levels, perf, acc, strict=True)
    )
    return Prediction(
        id="lesion.arousal.inverted_u",
        statement="Arousal has an inverted U (Yerkes–Dodson; Aston-Jones & Cohen 2005, "
        "adaptive gain): too little norepinephrine under-responds, too much drives every "
        "input, relevant or not, and admits irrelevant input; performance peaks in between.",
        criterion="performance = the taught pattern's final contrast C_1 (unclipped, "
        f"conductance units) vs N clamped at {', '.join(f'{n:g}' for n in levels)}: the "
        f"peak is interior and both ends are >= {params.arousal_drop:.0%} below it",
        measured=f"contrast (accuracy) {shown} (peak at N = {levels[k]:g})",
        passed=0 < k < len(perf) - 1 and perf[0] <= bar and perf[-1] <= bar,
        numbers={"N": list(levels), "final_contrast": perf, "final_accuracy": acc},
    )


#: (conditions a prediction needs, the function that judges it), in report order.
_PREDICTIONS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("control",), _control_learns),
    (("D=0",), _d_no_adaptation),
    (("S=0",), _s_overwritten),
    (("control", "S=0"), _s_specific),
    (("control", "N=1"), _n_admits),
    (("N=1", CALM_INPUT), _n_spurious),
)


run = Assay[Params](NAME, TITLE, __doc__, measure).run
