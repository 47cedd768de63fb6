"""PNG plots of the assays (matplotlib, the optional ``validate`` extra).

:func:`available` says whether matplotlib can be imported (and why not);
:func:`render` draws one assay's figures from its ``AssayResult.series`` into
``out_dir`` and returns their file names. matplotlib is imported lazily, with the
non-interactive Agg backend, so the rest of the package works without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engs.services.validate.report import AssayResult
from engs.services.validate.stats import fmt_p

COLORS = {
    "control": "#222222",
    "D=0": "#d62728",
    "S=0": "#1f77b4",
    "N=1": "#ff7f0e",
    "N=1, input calm": "#bcbd22",
    "critic": "#2ca02c",
    "energy": "#9467bd",
}
AREA_COLORS = ("#8c564b", "#d62728", "#1f77b4", "#7f7f7f", "#17becf", "#e377c2")


def available() -> tuple[bool, str]:
    """(True, "") if matplotlib imports, else (False, the reason)."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: PLC0415
    except Exception as exc:  # ImportError, or a broken install
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def render(result: AssayResult, out_dir: Path) -> list[str]:
    """Draw ``result``'s figures into ``out_dir``; returns the file names written."""
    fn = _RENDERERS.get(result.name)
    if fn is None:
        return []
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 110})
    out_dir.mkdir(parents=True, exist_ok=True)
    names = fn(plt, result, out_dir)
    plt.close("all")
    return names


def _save(plt: Any, fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name)
    plt.close(fig)
    return name


def _verdict(result: AssayResult, pid: str) -> str:
    for p in result.predictions:
        if p.id == pid:
            return "PASS" if p.passed else "FAIL"
    return "?"


# ---------------------------------------------------------------------------- lesions


def _lesions(plt: Any, r: AssayResult, out: Path) -> list[str]:
    runs = r.series["runs"]
    crit = r.series["criterion"]
    names = []
    fig, axes = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    ax = axes[0]
    for name, s in runs.items():
        ax.plot(s["t"], s["accuracy1"], color=COLORS.get(name), label=name, lw=1.2)
    _phases(ax, runs["control"])
    ax.axhline(crit, color="k", ls=":", lw=0.8)
    ax.set_ylabel("accuracy on P1 (target contrast / C*)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Feedback task: learning P1, then P2 (shaded)")
    ax.legend(loc="center right", fontsize=8)
    ax = axes[1]
    for name, s in runs.items():
        ax.semilogy(s["t"], np.maximum(s["energy"], 1e-6), color=COLORS.get(name), lw=1.0)
    _phases(ax, runs["control"])
    ax.set_ylabel("field energy per node")
    ax.set_xlabel("time (s)")
    ax.set_title("Field energy (a rise far above the input's level is resonance)")
    names.append(_save(plt, fig, out, "lesions_accuracy.png"))

    n = len(runs)
    cols = 3
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3.2 * rows), sharex=True, sharey=True)
    axes = np.atleast_1d(axes).ravel()
    for ax, (name, s) in zip(axes, runs.items(), strict=False):
        g = np.asarray(s["area_g"])
        for a in range(g.shape[1]):
            label = {1: "area 1 (P1)", 2: "area 2 (P2)"}.get(a, f"area {a}")
            ax.plot(s["t"], g[:, a], color=AREA_COLORS[a % len(AREA_COLORS)], lw=1.0, label=label)
        _phases(ax, s)
        ax.set_title(
            f"{name}: D {np.mean(s['dopamine']):.2f}, S {np.mean(s['serotonin']):.2f}, "
            f"N {np.mean(s['norepinephrine']):.2f}"
        )
        ax.set_xlabel("time (s)")
    for ax in axes[n:]:
        ax.axis("off")
    axes[0].set_ylabel("mean conductance ḡ")
    axes[0].legend(fontsize=7)
    names.append(_save(plt, fig, out, "lesions_metric.png"))
    return names


def _phases(ax: Any, s: dict[str, Any]) -> None:
    t = np.asarray(s["t"])
    ph = np.asarray(s["phase"])
    for value, color in ((0, "#eeeeee"), (2, "#e8f0ff")):
        idx = np.nonzero(ph == value)[0]
        if idx.size:
            ax.axvspan(t[idx[0]], t[idx[-1]], color=color, zorder=0)


# ---------------------------------------------------------------------------- RPE


def _rpe(plt: Any, r: AssayResult, out: Path) -> list[str]:
    s = r.series
    dt, delay = s["dt"], s["delay_s"]
    names = []
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharey="row")
    for row, model in enumerate(("critic", "energy")):
        for col, (key, title) in enumerate(
            (
                ("first", "naive (first trial)"),
                ("trained", "trained"),
                ("omission", "omission probe"),
            )
        ):
            ax = axes[row, col]
            trace = (s.get(key) or {}).get(model) or []
            t = np.arange(len(trace)) * dt
            ax.plot(t, trace, color=COLORS[model], lw=1.2)
            ax.axvline(0.0, color="k", ls="--", lw=0.8)
            ax.axvline(delay, color="#d62728" if key != "omission" else "#aaaaaa", ls="--", lw=0.8)
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set_title(f"{model} value: {title}")
            if col == 0:
                ax.set_ylabel("TD error δ (per cycle)")
            if row == 1:
                ax.set_xlabel("time from cue (s); red: reward")
    names.append(_save(plt, fig, out, "rpe_traces.png"))

    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    ax = axes[0]
    rewarded = np.asarray(s["rewarded"], dtype=bool)
    trials = np.arange(rewarded.size) + 1
    for model in ("critic", "energy"):
        cue = np.asarray(s["cue_by_trial"][model])
        rew = np.asarray(s["reward_by_trial"][model])
        ax.plot(trials, cue, "o-", ms=3, color=COLORS[model], label=f"{model}: cue")
        ax.plot(
            trials[rewarded],
            rew[rewarded],
            "s--",
            ms=3,
            color=COLORS[model],
            alpha=0.6,
            label=f"{model}: reward",
        )
    ax.set_xlabel(f"training trial (p = 1, CS–US {delay:g} s)")
    ax.set_ylabel("phasic response summed over 50 ms")
    ax.set_title("Transfer of the response from reward to cue")
    ax.legend(fontsize=7)
    ax = axes[1]
    for model in ("critic", "energy"):
        per = s["per_probability"][model]
        ps = [float(k) for k in per]
        ax.plot(
            ps, [v["cue"] for v in per.values()], "o-", color=COLORS[model], label=f"{model}: cue"
        )
        ax.plot(
            ps,
            [v["reward"] for v in per.values()],
            "s--",
            color=COLORS[model],
            alpha=0.6,
            label=f"{model}: reward",
        )
    ax.set_xlabel("reward probability p")
    ax.set_ylabel("mean response, second half of training")
    ax.set_title("Fiorillo et al. 2003: response vs p")
    ax.legend(fontsize=7)
    ax = axes[2]
    per_delay = s["per_delay"]["critic"]
    ds = [float(k) for k in per_delay]
    for key, label, style in (
        ("cue_td_fraction", "cue / TD value γ^T", "o-"),
        ("reward_fraction", "predicted reward / naive", "s--"),
        ("uncued_fraction", "uncued reward / naive", "^:"),
    ):
        ax.plot(ds, [x[key] for x in per_delay.values()], style, label=label)
    ax.plot(ds, [x["omission"] for x in per_delay.values()], "v-.", label="omission dip")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("CS–US interval T (s)")
    ax.set_title("Critic at every interval (second half)")
    ax.legend(fontsize=7)
    ax = axes[3]
    for model in ("critic", "energy"):
        mg = s["magnitude"].get(model) or {}
        if mg.get("levels"):
            ax.plot(mg["levels"], mg["mean_response"], "o-", color=COLORS[model], label=model)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("reward size (expected: the mean size)")
    ax.set_ylabel("phasic response at the reward")
    ax.set_title("Bayer & Glimcher 2005: compressed negative RPEs")
    ax.legend(fontsize=7)
    names.append(_save(plt, fig, out, "rpe_learning.png"))
    return names


# ---------------------------------------------------------------------------- risk


def _risk(plt: Any, r: AssayResult, out: Path) -> list[str]:
    s = r.series
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    labels, ps, errs = [], [], []
    for key, level in (("high", s["s_high"]), ("low", s["s_low"])):
        c = np.asarray(s[key]["choices"])
        p = float(np.mean(c == 0))
        labels.append(f"S = {level:g}")
        ps.append(p)
        errs.append(1.96 * math.sqrt(max(p * (1 - p), 1e-12) / max(c.size, 1)))
    ax.bar(labels, ps, yerr=errs, color=["#1f77b4", "#ff7f0e"], capsize=6)
    ax.axhline(0.5, color="k", ls=":", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(choose safe) ± 95 % CI")
    ax.set_title(f"Equal expected value; {_verdict(r, 'risk.serotonin_shifts_choice')}")
    ax = axes[1]
    for key, color in (("high", "#1f77b4"), ("low", "#ff7f0e")):
        c = np.asarray(s[key]["choices"]) == 0
        run = np.cumsum(c) / (np.arange(c.size) + 1)
        ax.plot(np.arange(c.size) + 1, run, color=color, label=f"S {key}")
        ax.plot(np.arange(c.size) + 1, s[key]["p_model"], color=color, alpha=0.3, lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("free-choice trial")
    ax.set_ylabel("running P(safe); faint: policy")
    ax.legend(fontsize=8)
    return [_save(plt, fig, out, "risk_choice.png")]


# ---------------------------------------------------------------------------- foraging


def _foraging(plt: Any, r: AssayResult, out: Path) -> list[str]:
    s = r.series
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    curve = s["charnov"]
    ax.plot([float(k) for k in curve], list(curve.values()), color="k", lw=1.2, label="t* (MVT)")
    colors = {1.0: "#222222"}
    for env in s["environments"]:
        if len(env["gains"]) != 1:
            continue
        g = env["gains"][0]
        ys = [v["residence_s"] for v in env["visits"]]
        color = colors.get(g, "#2ca02c" if g > 1 else "#8c564b")
        ax.scatter(np.full(len(ys), env["travel_s"]), ys, s=14, color=color, alpha=0.7)
        ax.plot(env["travel_s"], np.mean(ys), "D", ms=7, color=color, mec="k", label=f"G = {g:g}")
    ax.set_xlabel("travel time T (s)")
    ax.set_ylabel("residence time in patch (s)")
    ax.set_title("Patch leaving (opportunity cost) vs Charnov's t*")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    ax = axes[1]
    for env in s["environments"]:
        if len(env["gains"]) < 2:
            continue
        for g, color in zip(sorted(set(env["gains"])), ("#8c564b", "#2ca02c"), strict=True):
            ys = [v["residence_s"] for v in env["visits"] if v["gain"] == g]
            ax.scatter(np.full(len(ys), g), ys, s=14, color=color)
            ax.plot(g, np.mean(ys), "D", ms=7, color=color, mec="k")
        ax.set_xscale("log")
        ax.set_title(f"Mixed environment (T = {env['travel_s']:g} s): richer kept longer")
    ax.set_xlabel("patch gain G")
    ax.set_ylabel("residence time in patch (s)")
    return [_save(plt, fig, out, "foraging_mvt.png")]


# ---------------------------------------------------------------------------- causality


def _causality(plt: Any, r: AssayResult, out: Path) -> list[str]:
    s = r.series
    dt = s["dt"] * s["every"]
    d = np.asarray(s["dopamine"])
    g = np.asarray(s["conductance"])
    n = min(d.size, round(20.0 / dt))
    t = np.arange(n) * dt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.plot(t, d[:n], color="#d62728", lw=1.0)
    ax.set_ylabel("dopamine D", color="#d62728")
    ax2 = ax.twinx()
    ax2.plot(t, g[:n], color="#1f77b4", lw=1.0)
    ax2.set_ylabel("mean conductance ḡ", color="#1f77b4")
    ax.set_xlabel("time (s)")
    ax.set_title("D and the metric under random rewards")
    ax = axes[1]
    lags_ms = np.asarray(s["xcorr_lags_s"]) * 1000.0
    ax.bar(lags_ms, s["xcorr"], width=0.8 * (lags_ms[1] - lags_ms[0]), color="#555555")
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("lag of Δḡ after ΔD (ms)")
    ax.set_ylabel("cross-correlation")
    fwd = r.numbers["granger_forward"]
    ax.set_title(f"ΔD leads Δḡ: Granger F = {fwd['statistic']:.0f}, {fmt_p(fwd['p_value'])}")
    ax = axes[2]
    blocks = s["entropy_blocks"]
    for i, (name, vals) in enumerate(blocks.items()):
        ax.scatter(
            np.full(len(vals), i) + np.linspace(-0.2, 0.2, len(vals)),
            vals,
            s=8,
            color=COLORS.get(name, "#555555"),
            alpha=0.7,
        )
        ax.plot([i - 0.25, i + 0.25], [np.mean(vals)] * 2, color="k", lw=2)
    ax.set_xticks(range(len(blocks)), list(blocks), rotation=20)
    ax.set_ylabel("field entropy H / log₂ n (1-s blocks)")
    ax.set_title("Entropy, healthy vs lesioned (lesion-task runs)")
    return [_save(plt, fig, out, "causality_entropy.png")]


# ---------------------------------------------------------------------------- stability


def _stability(plt: Any, r: AssayResult, out: Path) -> list[str]:
    s = r.series
    num = r.numbers
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    ax = axes[0, 0]
    eig = np.asarray(num["eigenvalues"])
    ax.scatter(eig[:, 0], eig[:, 1], color="#d62728", zorder=3, label="eigenvalues of M")
    m = np.asarray(s["matrix"])
    for i in range(m.shape[0]):
        radius = float(np.abs(m[i]).sum() - abs(m[i, i]))
        ax.add_patch(
            plt.Circle(
                (m[i, i], 0.0),
                radius,
                fill=False,
                ls="--",
                lw=0.8,
                color=AREA_COLORS[i],
                label=f"Gershgorin disc, row {'DSNA'[i]}",
            )
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("Re λ (1/s)")
    ax.set_ylabel("Im λ (1/s)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title("Spectrum and Gershgorin discs")
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    scan = s["lambda_d_scan"]
    real = np.asarray(scan["real_parts"])
    for j in range(real.shape[1]):
        ax.plot(
            scan["lambda_d"],
            real[:, j],
            color="#222222" if j == 0 else "#999999",
            lw=1.2 if j == 0 else 0.8,
            label="max Re λ" if j == 0 else None,
        )
    ax.axhline(0, color="k", lw=0.5)
    b = num["boundaries"]
    if b["lambda_d"] is not None:
        ax.axvline(
            b["lambda_d"], color="#d62728", ls="--", label=f"boundary λ_D* = {b['lambda_d']:.3g}"
        )
    ax.axvline(b["gershgorin_lambda_d"], color="#1f77b4", ls=":", label="Gershgorin row-D bound")
    ax.axvline(m[0, 0] * -1, color="#2ca02c", ls="-.", label="default λ_D")
    ax.set_xlabel("λ_D (1/s)")
    ax.set_ylabel("Re λ of the four modes (1/s)")
    ax.set_title("Where it turns unstable (bisection on λ_D)")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    dec = s["decay"]
    if dec:
        t = np.arange(len(dec["trace"])) * dec["trace_dt"]
        ax.plot(t, dec["trace"], color="#222222", label="ENGS step (deviation / initial)")
        ax.axhline(num["transient_peak"], color="#d62728", ls="--", label="max_t ‖e^(Mt)‖")
        ax.legend(fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_title("Return to equilibrium, real step function")
    ax = axes[1, 1]
    for key, color in (("plastic", "#d62728"), ("frozen", "#1f77b4")):
        fs = s["field"][key]
        t = np.arange(len(fs["energy"])) * fs["series_dt"]
        ax.semilogy(t, np.maximum(fs["energy"], 1e-6), color=color, lw=1.0, label=f"metric {key}")
        ax.axhline(fs["energy_implied"], color=color, ls=":", lw=0.8)
    ax.axvline(s["field"]["plastic"]["step_at_s"], color="k", ls="--", lw=0.8)
    ax.set_xlabel("time (s); dashed: input step; dotted: energy the input implies")
    ax.set_ylabel("field energy per node")
    ax.set_title(f"Field under an input step: {_verdict(r, 'stability.field_bounded_under_input')}")
    ax.legend(fontsize=7)
    return [_save(plt, fig, out, "stability.png")]


# ---------------------------------------------------------------------------- homeostasis


def _homeostasis(plt: Any, r: AssayResult, out: Path) -> list[str]:
    s = r.series
    act = np.asarray(s["activity"])
    t = np.arange(act.size) * s["dt"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, act, color="#222222", lw=1.0, label="activity (homeostat running)")
    if s.get("activity_frozen") is not None:
        ax.plot(
            t, s["activity_frozen"], color="#aaaaaa", lw=1.0, label="activity (homeostat frozen)"
        )
    ax.axhline(s["set_point"], color="#2ca02c", ls=":", label="set point")
    ax.axvspan(s["step_s"], s["return_s"], color="#fde0dd", zorder=0, label="input stepped down")
    ax.set_xlabel("time (s)")
    ax.set_yscale("log")
    ax.set_ylabel("area activity (mean |Ψ|², log scale)")
    dens = np.array([np.nan if x is None else x for x in s["density"]], dtype=float)
    if np.isfinite(dens).any():
        ax2 = ax.twinx()
        ax2.plot(t, dens, color="#1f77b4", lw=1.2, label="density (step)")
        if s.get("density_sham") is not None:
            sham = np.array([np.nan if x is None else x for x in s["density_sham"]], dtype=float)
            ax2.plot(t, sham, color="#1f77b4", lw=1.0, ls="--", label="density (sham: no step)")
        ax2.set_ylabel("receptor density of the area", color="#1f77b4")
        ax2.legend(fontsize=7, loc="upper right")
        ax.set_title("Homeostasis: activity and receptor density")
    else:
        ax.set_title("Homeostasis: activity (no receptor-density model in this build)")
    ax.legend(fontsize=7, loc="upper left")
    return [_save(plt, fig, out, "homeostasis.png")]


_RENDERERS: dict[str, Callable[[Any, AssayResult, Path], list[str]]] = {
    "lesions": _lesions,
    "rpe": _rpe,
    "risk": _risk,
    "foraging": _foraging,
    "causality": _causality,
    "stability": _stability,
    "homeostasis": _homeostasis,
}
