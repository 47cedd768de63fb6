"""Assay 7 — homeostasis: an area's input stepped down and back (seeds 000 and 002).

Protocol: the field runs at the published drive; after ``settle_s`` the input of one
area (the second, ``area``) is scaled by ``low_gain`` for ``low_s`` (deprivation), then
restored for ``after_s``. Read-outs: the area's activity (telemetry ``area_activity``,
mean |Ψ|² over its nodes) against its set point (the mean over the last second before
the step), and the receptor density of that area if the running system has one. Three
runs with the same seed: the step with the homeostat learning, the step with it frozen
(what the field does on its own), and a sham without the step (the density's own drift,
e.g. away from its calibration).

Predictions (homeostatic plasticity, e.g. synaptic scaling, Turrigiano 2008; seed 000's
density network trained on a signalling-efficiency objective): activity falls at the
step; during the deprivation a homeostatic mechanism brings it back towards its set
point, with the receptor density up-regulated; when the input returns, the raised
density makes activity overshoot, and both re-adjust to baseline.

The receptor density is read through a :class:`Homeostat`. :func:`find_homeostat`
finds the ENGS's own area neurochemistry (seeds 000/002, ``orchestrator.areas``) by what
it exposes — the receptor networks' density output per area site — and freezes it by
turning off its Homeostasis Module and receptor learning. Without it (``areas.enabled =
false``) the predictions that need a density fail with "mechanism absent" while the
activity read-outs are still measured. A homeostat can also be plugged into the loop
from outside (``homeostat=``), which is how the tests show that the assay passes when a
working mechanism is present and fails when the same mechanism is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engs.services.validate.assay import Assay, Context, Findings
from engs.services.validate.report import Prediction
from engs.services.validate.runner import Progress, pmap
from engs.services.validate.sim import Mechanisms, Sim
from engs.shared.config import Config

NAME = "homeostasis"
TITLE = "7. Homeostasis: an area's input stepped down and back"


class Homeostat(Protocol):
    """A receptor-homeostasis mechanism the assay can read, install and freeze."""

    name: str

    def install(self, sim: Sim) -> None:
        """Hook into the loop (e.g. ``sim.controllers.append``); nothing if internal."""

    def freeze(self, sim: Sim) -> None:
        """Stop its learning (the reference run: what the field does without it)."""

    def density(self, sim: Sim, area: int) -> float | None:
        """The area's receptor density (any positive unit), or None if not modelled."""


class EngsAreaHomeostat:
    """The ENGS's own area neurochemistry (seeds 000/002): receptor density per area is
    the density network's output summed over the receptor types of the area's site;
    freezing turns off its Homeostasis Module and receptor learning."""

    name = "ENGS area neurochemistry (receptor density network)"

    def __init__(self, model: Any) -> None:
        self._model = model

    @staticmethod
    def find(engs: Any) -> EngsAreaHomeostat | None:
        """The area-neurochemistry object among the ENGS's attributes, if any (found by
        what it exposes, not by attribute name)."""
        for value in vars(engs).values():
            nets = getattr(value, "nets", None)
            if hasattr(nets, "y") and hasattr(value, "n0") and hasattr(value, "n_areas"):
                return EngsAreaHomeostat(value)
        return None

    def install(self, sim: Sim) -> None:
        return None

    def freeze(self, sim: Sim) -> None:
        for flag in ("hm_learning", "receptor_learning"):
            if hasattr(self._model, flag):
                setattr(self._model, flag, False)

    def density(self, sim: Sim, area: int) -> float | None:
        """The density of the receptors the area's drive passes through (activity
        scaling, relative to calibration); a model without them: the density networks'
        output summed over the receptor types of the area's site."""
        from engs.services.orchestrator.areas.receptors import DENSITY  # noqa: PLC0415

        m = self._model
        if not 0 <= area < int(m.n_areas):
            return None
        scaling = getattr(m, "scaling", None)
        if scaling is not None and scaling.cfg.enabled:
            return float(scaling.density[area])
        return float(np.asarray(m.nets.y)[DENSITY, int(m.n0) + area].sum())


def find_homeostat(sim: Sim) -> Homeostat | None:
    """The running system's own receptor-density model, if it has one."""
    return EngsAreaHomeostat.find(sim.engs)


@dataclass(frozen=True)
class Params:
    settle_s: float = 5.0
    low_s: float = 240.0
    """Two time constants of the ENGS's activity scaling (τ = 120 s, docs/areas.md §7a):
    homeostatic scaling is slow against learning, so its protocol is long."""
    after_s: float = 300.0
    low_gain: float = 0.5
    area: int = 1
    drop: float = 0.2
    recovery: float = 0.5
    recovery_band: float = 0.2
    """Activity at the end of the deprivation within this fraction of its set point."""
    overshoot_max: float = 0.5
    """Peak after the return at most this fraction above the set point."""
    density_change: float = 0.05
    overshoot: float = 0.05
    tolerance: float = 0.1


@dataclass
class Trace:
    activity: np.ndarray[Any, Any]
    density: np.ndarray[Any, Any]
    phase: np.ndarray[Any, Any]
    homeostat: str | None


def simulate(
    cfg: Config,
    params: Params,
    external: Homeostat | None,
    frozen: bool,
    mechanisms: Mechanisms | None,
    seed: int,
    progress: Progress | None = None,
    sham: bool = False,
) -> Trace:
    """One run of the protocol; ``frozen``: the homeostat's learning off (reference);
    ``sham``: the same run without the input step (the density's own drift)."""
    sim = Sim(cfg, seed=seed, mechanisms=mechanisms)
    area = params.area % sim.n_areas
    h = external if external is not None else find_homeostat(sim)
    if h is not None:
        if external is None or not frozen:
            h.install(sim)
        if frozen:
            h.freeze(sim)
    dt = sim.dt
    phases = (
        (0, round(params.settle_s / dt), 1.0),
        (1, round(params.low_s / dt), 1.0 if sham else params.low_gain),
        (2, round(params.after_s / dt), 1.0),
    )
    total = sum(n for _, n, _ in phases)
    act, dens, phase_of = np.zeros(total), np.full(total, np.nan), np.zeros(total, dtype=int)
    k = 0
    label = "sham" if sham else "frozen reference" if frozen else "run"
    for phase, n, gain in phases:
        sim.drive_gain[area] = gain
        for _ in range(n):
            sim.cycle()
            act[k] = float(sim.tel["area_activity"][area])
            d = h.density(sim, area) if h is not None else None
            if d is not None:
                dens[k] = d
            phase_of[k] = phase
            k += 1
            if progress is not None:
                progress.update(NAME, f"{label} cycle", k, total)
    return Trace(act, dens, phase_of, h.name if h is not None else None)


def _readouts(tr: Trace, dt: float) -> dict[str, float]:
    act, phase_of = tr.activity, tr.phase
    sec = max(1, round(1.0 / dt))
    i_low = int(np.argmax(phase_of == 1))
    i_after = int(np.argmax(phase_of == 2))
    set_point = float(act[i_low - sec : i_low].mean())
    dropped = float(act[i_low : i_low + sec].mean())
    end_low = float(act[i_after - sec : i_after].mean())
    after = act[i_after:]
    peak_after = float(after[: max(sec, after.size // 2)].max())
    end_after = float(act[-sec:].mean())
    out = {
        "set_point": set_point,
        "activity_after_step": dropped,
        "drop_fraction": 1.0 - dropped / set_point,
        "activity_end_of_deprivation": end_low,
        "recovered_fraction": (end_low - dropped) / (set_point - dropped)
        if set_point != dropped
        else 0.0,
        "peak_after_return": peak_after,
        "overshoot_fraction": peak_after / set_point - 1.0,
        "activity_end": end_after,
        "end_error_fraction": end_after / set_point - 1.0,
    }
    if np.isfinite(tr.density).any():
        out |= {
            "density_baseline": float(np.nanmean(tr.density[i_low - sec : i_low])),
            "density_end_of_deprivation": float(np.nanmean(tr.density[i_after - sec : i_after])),
            "density_end": float(np.nanmean(tr.density[-sec:])),
        }
        # drift per second in each phase: tells a response to the step from a trend
        for name, value in (("before", 0), ("deprived", 1), ("after", 2)):
            d = tr.density[phase_of == value]
            if d.size >= 2 and np.isfinite(d).all():
                out[f"density_slope_{name}_per_s"] = float((d[-1] - d[0]) / ((d.size - 1) * dt))
    return out


def measure(
    ctx: Context,
    params: Params,
    *,
    homeostat: Homeostat | None = None,
) -> Findings:
    """``homeostat``: an external mechanism to plug into the loop (tests); by default
    the running ENGS's own, if it has one."""
    cfg, seed, jobs, progress, mechanisms = ctx
    dt = cfg.orchestrator.dt
    # live: the step with the homeostat; frozen: the step with its learning off (what the
    # field does alone); sham: no step (the density's own drift). The ENGS's own
    # homeostat is found inside each worker; an external one lives in this process.
    if homeostat is None:
        own = find_homeostat(Sim(cfg, seed=seed, mechanisms=mechanisms)) is not None
        modes = [(False, False)] + ([(True, False), (False, True)] if own else [])
        calls = [(cfg, params, None, fr, mechanisms, seed, progress, sh) for fr, sh in modes]
        runs = pmap(simulate, calls, jobs)
    else:
        runs = [
            simulate(cfg, params, homeostat, fr, mechanisms, seed, progress, sh)
            for fr, sh in ((False, False), (True, False), (False, True))
        ]
    live = runs[0]
    ref: Trace | None = runs[1] if len(runs) > 1 else None
    sham: Trace | None = runs[2] if len(runs) > 2 else None
    have = live.homeostat is not None
    r = _readouts(live, dt)
    f = _readouts(ref, dt) if ref is not None else None
    have_density = "density_baseline" in r
    absent = "mechanism absent: the running ENGS has no receptor-density model (seed 000)"
    numbers: dict[str, Any] = {"homeostat": live.homeostat, "run": r}
    if f is not None:
        numbers["frozen_reference"] = f
    fr = f["recovered_fraction"] if f is not None else float("nan")
    fo = f["overshoot_fraction"] if f is not None else float("nan")
    d_base = r.get("density_baseline", float("nan"))
    d_low = r.get("density_end_of_deprivation", float("nan"))
    d_end = r.get("density_end", float("nan"))
    sh = _readouts(sham, dt) if sham is not None else {}
    s_low = sh.get("density_end_of_deprivation", float("nan"))
    s_end = sh.get("density_end", float("nan"))
    if sham is not None:
        numbers["sham"] = sh
    p = params
    preds = [
        Prediction(
            id="homeostasis.activity_falls",
            statement="Stepping an area's input down lowers its activity (the perturbation "
            "reaches the field).",
            criterion=f"mean activity in the first second after the step <= "
            f"{1 - p.drop:g} x the set point",
            measured=f"{r['activity_after_step']:.3f} vs set point {r['set_point']:.3f} "
            f"(drop {100 * r['drop_fraction']:.0f} %)",
            passed=r["drop_fraction"] >= p.drop,
            numbers={"drop_fraction": r["drop_fraction"]},
        ),
        Prediction(
            id="homeostasis.activity_recovers",
            statement="During the deprivation, homeostasis brings the area's activity back "
            "towards its set point.",
            criterion=f"by the end of the deprivation activity is within {p.recovery_band:.0%} "
            f"of its set point, >= {p.recovery:g} of the drop is recovered, and >= "
            f"{p.recovery / 2:g} more than with the homeostat frozen (the mechanism, not the "
            "field, does the work)",
            measured=f"recovered {100 * r['recovered_fraction']:.0f} % of the drop (activity "
            f"{r['activity_after_step']:.3f} -> {r['activity_end_of_deprivation']:.3f}, set "
            f"point {r['set_point']:.3f})"
            + (f"; frozen {100 * fr:.0f} %" if f is not None else f"; {absent}"),
            passed=f is not None
            and abs(r["activity_end_of_deprivation"] / r["set_point"] - 1.0) <= p.recovery_band
            and r["recovered_fraction"] >= p.recovery
            and r["recovered_fraction"] - fr >= p.recovery / 2,
            numbers={"recovered_fraction": r["recovered_fraction"], "frozen": fr},
        ),
        Prediction(
            id="homeostasis.density_up",
            statement="Receptor density is up-regulated during the deprivation.",
            criterion="density at the end of the deprivation exceeds the sham run's (same run "
            f"without the step: the density's own drift) by >= {p.density_change:g} of its "
            "baseline",
            measured=f"density {d_base:.4g} -> {d_low:.4g}, sham {s_low:.4g} "
            f"(Δ {100 * (d_low - s_low) / d_base:+.1f} % of baseline)"
            if have_density
            else absent,
            passed=have_density and d_low - s_low >= p.density_change * d_base,
            numbers={"baseline": d_base, "end_of_deprivation": d_low, "sham": s_low},
        ),
        Prediction(
            id="homeostasis.overshoot_and_return",
            statement="When the input returns, the raised density makes activity overshoot its "
            "set point; then activity and density re-adjust to baseline.",
            criterion=f"peak activity after the return >= {1 + p.overshoot:g} x the set point "
            f"(and <= {1 + p.overshoot_max:g} x: proportionate) and {p.overshoot:g} above the "
            "frozen run's; at the end activity within "
            f"{p.tolerance:g} of the set point and density within {p.tolerance:g} (of baseline) "
            "of the sham run's",
            measured=f"peak {100 * r['overshoot_fraction']:+.0f} % (frozen "
            f"{100 * fo:+.0f} %), end {100 * r['end_error_fraction']:+.0f} %"
            + (f", density end {d_end:.4g} vs sham {s_end:.4g}" if have_density else f"; {absent}"),
            passed=have_density
            and p.overshoot <= r["overshoot_fraction"] <= p.overshoot_max
            and r["overshoot_fraction"] - fo >= p.overshoot
            and abs(r["end_error_fraction"]) <= p.tolerance
            and abs(d_end - s_end) <= p.tolerance * d_base,
            numbers={
                "overshoot": r["overshoot_fraction"],
                "frozen_overshoot": fo,
                "end_error": r["end_error_fraction"],
            },
        ),
    ]
    every = 5
    return Findings(
        predictions=preds,
        numbers=numbers,
        notes=[] if have else [absent + "; the activity read-outs are measured all the same."],
        series={
            "dt": dt * every,
            "activity": live.activity[::every].tolist(),
            "activity_frozen": ref.activity[::every].tolist() if ref is not None else None,
            "density": [None if not np.isfinite(x) else float(x) for x in live.density[::every]],
            "density_sham": None
            if sham is None
            else [None if not np.isfinite(x) else float(x) for x in sham.density[::every]],
            "step_s": p.settle_s,
            "return_s": p.settle_s + p.low_s,
            "set_point": r["set_point"],
        },
    )


run = Assay[Params](NAME, TITLE, __doc__, measure).run
