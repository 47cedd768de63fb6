"""``engs bench area``: the cost of one area-neurochemistry cycle.

For the shipped projection graph (4 areas, 29 edges) and for synthetic graphs of 100,
1 000 and 10 000 edges, each edge carrying all seven neuromodulators
(:func:`projections.synthetic_graph`: about one area per 25 edges, a fifth of the edges
area → area), it times :meth:`AreaNeurochemistry.step` cycle by cycle
(``perf_counter_ns``) with everything on — transfer, both learning modules, the activity
regression, a DMN report every 37 cycles — and again with both modules frozen (the
forward half plus bookkeeping), and reports p50 / p99 / mean per cycle. The target
(issue #5) is ≤ 2 ms per cycle at 1 000 edges; the control cycle's budget is 10 ms.

Inputs vary every cycle (levels around rest, per-area activity) so that no branch is
skipped; the generator is seeded, the run is deterministic but for the clock.

The area model is built from ``--config`` (``[orchestrator.areas]``). Called as every
target is (:mod:`engs.services.bench`): :func:`add_arguments`, :func:`run_args`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.model import AreaNeurochemistry
from engs.services.orchestrator.areas.projections import Graph, synthetic_graph
from engs.shared.config import Config, load_config
from engs.shared.errors import EngsError

EDGES: tuple[int, ...] = (100, 1_000, 10_000)
TARGET_EDGES = 1_000
TARGET_S = 2e-3


def _cycle_inputs(rng: np.random.Generator, n_areas: int, cycle: int) -> dict[str, Any]:
    return {
        "cycle": cycle,
        "levels": tuple(float(v) for v in np.clip(rng.normal([0.5, 0.5, 0.3, 0.9], 0.05), 0, 1)),
        "cortisol": 0.1,
        "boredom": 0.2,
        "napping": False,
        "dmn": (0.01, 0.0, 0.01, 1.0, 0.0),
        "dmn_new": cycle % 37 == 0,
        "node": "3.6",
        "activity": rng.uniform(0.5, 2.0, n_areas),
        "dream": None,
        "rng": rng,
    }


def _time(model: AreaNeurochemistry, cycles: int, max_seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    for i in range(min(20, cycles)):  # warm-up: caches, first refits
        model.step(**_cycle_inputs(rng, model.n_areas, i))
    times: list[int] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < cycles and (len(times) < 10 or time.perf_counter() < deadline):
        args = _cycle_inputs(rng, model.n_areas, len(times) + 20)
        t0 = time.perf_counter_ns()
        model.step(**args)
        times.append(time.perf_counter_ns() - t0)
    return np.asarray(times, dtype=np.float64) * 1e-9


def bench_graph(
    cfg: Config, graph: Graph | None, cycles: int, max_seconds: float, seed: int = 0
) -> dict[str, Any]:
    """Time one graph (None: the configured projections over ``physics.areas``)."""
    t0 = time.perf_counter()
    model = AreaNeurochemistry(cfg.orchestrator, cfg.physics.areas, graph=graph)
    build_s = time.perf_counter() - t0
    full = _time(model, cycles, max_seconds, seed)
    model.hm_learning = model.receptor_learning = False
    frozen = _time(model, cycles, max_seconds, seed)
    g = model.graph
    return {
        "graph": "default" if graph is None else "synthetic",
        "edges": g.n_edges,
        "edge_nt": int((model.kin.mask > 0).sum()),
        "sites": g.n_sites,
        "areas": g.n_areas,
        "parameters": int(model.params.theta.size),
        "build_s": build_s,
        "cycles": len(full),
        "step_p50_s": float(np.percentile(full, 50)),
        "step_p99_s": float(np.percentile(full, 99)),
        "step_mean_s": float(full.mean()),
        "frozen_p50_s": float(np.percentile(frozen, 50)),
    }


def run(
    edges: Sequence[int] | None = None,
    cycles: int = 300,
    max_seconds: float = 3.0,
    seed: int = 0,
    config: Config | None = None,
) -> dict[str, Any]:
    """Benchmark the default graph and synthetic graphs of ``edges`` edges (default
    :data:`EDGES`). Returns ``{"target", "rows": [...]}``; each row has the graph size,
    learned parameters and per-cycle times in seconds."""
    cfg = config if config is not None else load_config(env={})
    rows = [bench_graph(cfg, None, cycles, max_seconds, seed)]
    for n in edges if edges is not None else EDGES:
        if n < 1:
            raise ValueError(f"edge counts must be positive, got {n}")
        rows.append(bench_graph(cfg, synthetic_graph(n, seed), cycles, max_seconds, seed))
    target = next(
        (r for r in rows if r["graph"] == "synthetic" and r["edges"] == TARGET_EDGES), None
    )
    return {
        "target": {
            "edges": TARGET_EDGES,
            "limit_s": TARGET_S,
            "p50_s": None if target is None else target["step_p50_s"],
            "met": None if target is None else target["step_p50_s"] <= TARGET_S,
        },
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s result."""
    lines = [
        f"{'graph':>9} {'edges':>6} {'edge·NT':>7} {'sites':>5} {'params':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'mean ms':>7} {'frozen p50':>10}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['graph']:>9} {r['edges']:>6} {r['edge_nt']:>7} {r['sites']:>5} "
            f"{r['parameters']:>8} {r['step_p50_s'] * 1e3:>7.3f} {r['step_p99_s'] * 1e3:>7.3f} "
            f"{r['step_mean_s'] * 1e3:>7.3f} {r['frozen_p50_s'] * 1e3:>10.3f}"
        )
    t = result["target"]
    if t["p50_s"] is not None:
        verdict = "met" if t["met"] else "NOT met"
        lines.append(
            f"target: p50 <= {t['limit_s'] * 1e3:.1f} ms at {t['edges']} edges: {verdict} "
            f"({t['p50_s'] * 1e3:.3f} ms)"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments of ``engs bench area`` (the CLI builds its parser with this)."""
    ap.add_argument("--json", action="store_true", help="print JSON for machines")
    ap.add_argument(
        "--edges", type=int, action="append", default=None,
        help="synthetic graph size in edges (repeat; default 100, 1000, 10000)",
    )  # fmt: skip
    ap.add_argument("--cycles", type=int, default=300, help="timed cycles per graph (300)")
    ap.add_argument("--max-seconds", type=float, default=3.0, help="time cap per graph (3 s)")
    ap.add_argument("--seed", type=int, default=0, help="graph and input seed (0)")


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Run with the configuration and parsed arguments; 0 on success, 2 on bad arguments
    or config."""
    try:
        result = run(args.edges, args.cycles, args.max_seconds, args.seed, cfg)
    except (ValueError, EngsError) as exc:
        print(f"engs bench area: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
