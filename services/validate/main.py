"""``engs validate [--out DIR] [--quick]``: the neuro-psychometric profile (seed 003 GAP-029).

Runs the seven assays headless on the real step functions (:mod:`engs.services.validate.sim`),
writes ``report.md``, ``report.json`` and the PNG plots into ``--out``, prints one line
per prediction, and exits 1 if any prediction fails (0 if all pass). ``--quick`` (CI)
runs fewer assays (:data:`QUICK_ASSAYS`), each with the full run's parameters: a weaker
run of an assay (fewer trials, shorter phases) can reach a different verdict, so a quick
verdict is always the full run's verdict for that prediction (issue 13); the report
names the assays it left out. Progress goes to stderr. Plots need matplotlib (the
``validate`` extra); without it the text report is still written and the command says so.

The CLI wiring (``engs.services.cli``) calls :func:`add_arguments` on the ``validate``
sub-parser and :func:`run_args` with the loaded configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from engs.services.validate import (
    causality,
    foraging,
    homeostasis,
    lesions,
    plots,
    risk,
    rpe,
    stability,
)
from engs.services.validate.report import AssayResult, Prediction, write_report
from engs.services.validate.runner import Progress
from engs.services.validate.sim import assay_shape
from engs.shared.config import Config

#: Every assay, in report order (the order they run in).
MODULES: dict[str, ModuleType] = {
    "lesions": lesions,
    "rpe": rpe,
    "risk": risk,
    "foraging": foraging,
    "causality": causality,
    "stability": stability,
    "homeostasis": homeostasis,
}
ASSAYS = tuple(MODULES)
#: What ``--quick`` runs: the assays that finish in about a minute each at full strength
#: on a two-core host (the RPE and foraging assays need minutes of simulated trials).
QUICK_ASSAYS = ("lesions", "risk", "causality", "stability")
DEFAULT_OUT = "engs-validation"
EX_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT,
        help=f"directory for report.md, report.json and the plots (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"run only {', '.join(QUICK_ASSAYS)}, at full strength (CI)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed offset of every run (default 0)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="processes for independent runs (default: CPUs, at most 4)",
    )
    parser.add_argument(
        "--only",
        metavar="ASSAY",
        action="append",
        choices=ASSAYS,
        help="run only this assay (repeatable); default: all",
    )


def _params() -> dict[str, Any]:
    """Every assay's full-strength parameters (``--quick`` selects assays, never weaker
    parameters)."""
    return {name: m.Params() for name, m in MODULES.items()}


def run_assays(
    cfg: Config,
    *,
    quick: bool,
    seed: int = 0,
    jobs: int = 1,
    only: tuple[str, ...] | list[str] | None = None,
    progress: Progress | None = None,
) -> list[AssayResult]:
    """Run the selected assays (all by default; ``quick``: those of :data:`QUICK_ASSAYS`)
    in order; an assay that raises is reported as one failed prediction carrying the
    error (the others still run)."""
    params = _params()
    progress = progress or Progress()
    selected = selected_assays(quick, only)
    # The causality assay's entropy comparison reuses the lesion assay's runs.
    options: dict[str, dict[str, Any]] = {"causality": {"lesion_params": params["lesions"]}}
    results = []
    for name in selected:
        progress.note(f"{name}: started")
        t0 = time.monotonic()
        try:
            result = MODULES[name].run(
                cfg, params[name], seed=seed, jobs=jobs, progress=progress, **options.get(name, {})
            )
        except Exception as exc:
            traceback.print_exc()
            result = AssayResult(
                name=name,
                title=name,
                method="",
                predictions=[
                    Prediction(
                        id=f"{name}.ran",
                        statement="The assay runs to completion.",
                        criterion="no exception",
                        measured=f"{type(exc).__name__}: {exc}",
                        passed=False,
                    )
                ],
                elapsed_s=time.monotonic() - t0,
            )
        passed = sum(p.passed for p in result.predictions)
        progress.note(
            f"{name}: done in {result.elapsed_s:.1f} s, "
            f"{passed}/{len(result.predictions)} predictions pass"
        )
        results.append(result)
    return results


def selected_assays(quick: bool, only: tuple[str, ...] | list[str] | None) -> list[str]:
    """The assays a run covers, in report order."""
    pool = QUICK_ASSAYS if quick else ASSAYS
    return [a for a in ASSAYS if a in pool and (only is None or a in only)]


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Run the suite as ``engs validate`` does; returns the exit code."""
    t0 = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ok, why = plots.available()
    plots_note = ""
    if not ok:
        plots_note = (
            f"matplotlib is not installed ({why}): no plots were drawn. Install the extra "
            "with `pip install 'engs[validate]'` (or `.[validate]`) and run again."
        )
        print(f"engs validate: {plots_note} The text report is still written.", file=sys.stderr)
    progress = Progress()
    results = run_assays(
        cfg,
        quick=args.quick,
        seed=args.seed,
        jobs=max(1, args.jobs),
        only=args.only,
        progress=progress,
    )
    if ok:
        for r in results:
            try:
                r.plots = plots.render(r, out)
            except Exception as exc:  # a plot must not lose the verdicts
                traceback.print_exc()
                print(f"engs validate: plotting {r.name} failed: {exc}", file=sys.stderr)
    oc = cfg.orchestrator
    meta = {
        "quick": bool(args.quick),
        "seed": args.seed,
        "elapsed_s": time.monotonic() - t0,
        "lattice": "x".join(str(n) for n in assay_shape(cfg)),
        "ticks_per_cycle": max(1, round(cfg.physics.tick_hz / oc.cycle_hz)),
        "value_model": oc.dopamine.value_model,
        "physics": {
            "wave_speed": cfg.physics.wave_speed,
            "damping": cfg.physics.damping,
            "drive_hz": cfg.physics.carrier_hz,
            "plasticity_rate": cfg.physics.plasticity_rate,
            "elasticity_rate": cfg.physics.elasticity_rate,
            "configured_shape": list(cfg.physics.shape),
        },
        "area_model": _area_model_enabled(cfg),
        "plots": ok,
        "plots_note": plots_note,
        "not_run": [
            a
            for a in ASSAYS
            if (args.only is None or a in args.only) and a not in selected_assays(args.quick, None)
        ],
    }
    write_report(out, results, meta)
    total = sum(len(r.predictions) for r in results)
    failed = 0
    for r in results:
        for p in r.predictions:
            failed += not p.passed
            print(f"{'PASS' if p.passed else 'FAIL'}  {p.id}: {p.measured}")
    print(
        f"{total - failed}/{total} predictions pass ({time.monotonic() - t0:.0f} s); "
        f"report: {out / 'report.md'}"
    )
    return EX_FAILED if failed else 0


def _area_model_enabled(cfg: Config) -> bool | None:
    areas = getattr(cfg.orchestrator, "areas", None)
    return None if areas is None else bool(getattr(areas, "enabled", False))
