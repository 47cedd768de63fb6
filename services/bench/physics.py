"""``engs bench physics``: tick time and throughput of the physics step.

For each lattice shape: ticks per second as node-steps/s, tick time p50/p99 (each
tick timed alone with ``perf_counter_ns``; on the GPU a tick ends with the download
of its sums, so the time is the real, synchronised one), and the memory traffic of
a tick next to a bandwidth bound measured in the same run:

* bound: a large copy (128 MiB with NumPy on one core; 1 GiB device-to-device with
  CuPy), best of several, counted as bytes read + bytes written per second;
* ``bytes_min``: the traffic a tick cannot avoid — every state array read and
  written once (:meth:`Field.bytes_per_step`; the fused kernels are built to move
  this, neighbour loads assumed to hit cache);
* ``bytes_moved``: NumPy: counted, not estimated — one tick runs through a proxy of
  the numpy module that adds up the ``nbytes`` of every array argument and ``out``
  of every call (inputs read, outputs written); CuPy: ``bytes_min``;
* ``fraction``: bytes_moved / tick time / bound. Above 1 means the working set
  lives in cache (small lattices on the CPU), which the table flags.

The lattice settings of ``[physics]`` in ``--config`` (backend aside: ``--backend``)
apply to every shape; only ``shape`` and ``areas`` are the bench's. Called as every
target is (:mod:`engs.services.bench`): :func:`add_arguments`, :func:`run_args`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from engs.services.physics.backend import Backend, select_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field, make_field
from engs.shared.config import Config, PhysicsConfig
from engs.shared.errors import EngsError

CPU_SHAPES: tuple[str, ...] = ("4096", "64x64", "256x256", "32x32x32", "3x3x3x3x3x3x3x3x3")
GPU_SHAPES: tuple[str, ...] = (*CPU_SHAPES, "6x6x6x6x6x6x6x6x6")
GPU_ONLY_NODES = 1 << 21  # a NumPy tick over more nodes than this takes seconds
AREAS: tuple[str, ...] = ("sensory", "motor", "association", "limbic")


def parse_shape(text: str) -> tuple[int, ...]:
    """``"64x64"`` → ``(64, 64)``; also ``"6^9"`` → ``(6,) * 9``."""
    try:
        if "^" in text:
            n, d = text.split("^")
            shape = (int(n),) * int(d)
        else:
            shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape must look like 64x64 or 6^9, got {text!r}") from None
    if not 1 <= len(shape) <= 9 or min(shape) < 2:
        raise ValueError(f"shape needs 1..9 axes of >= 2 nodes, got {text!r}")
    return shape


def shape_name(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)


# ---------------------------------------------------------------- bandwidth bound


def cpu_copy_bandwidth(nbytes: int = 128 << 20, repeats: int = 5) -> float:
    """Bytes/s of ``np.copyto`` on one core (read + write), best of ``repeats``."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        np.copyto(dst, src)
        best = min(best, time.perf_counter_ns() - t0)
    return 2.0 * src.nbytes / (best * 1e-9)


def gpu_copy_bandwidth(cp: Any, nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes/s of a device-to-device copy (read + write), best of ``repeats``."""
    src = cp.ones(nbytes // 8, dtype=cp.float64)
    dst = cp.empty_like(src)
    best = math.inf
    for _ in range(repeats):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        cp.copyto(dst, src)
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) * 1e-3)
    del src, dst
    return 2.0 * nbytes / best


# ---------------------------------------------------------------- byte counting


class _CountingNumpy(types.ModuleType):
    """numpy, with every ufunc / function call adding the bytes of its arrays."""

    def __init__(self) -> None:
        super().__init__("numpy")
        self.bytes = 0

    def __getattr__(self, name: str) -> Any:
        obj = getattr(np, name)
        if isinstance(obj, np.ufunc) or (
            callable(obj) and not isinstance(obj, type) and not isinstance(obj, types.ModuleType)
        ):
            return self._counted(obj)
        return obj

    def _counted(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            out = kwargs.get("out")
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            if isinstance(out, np.ndarray):
                arrays.append(out)
            self.bytes += sum(a.nbytes for a in arrays)
            return fn(*args, **kwargs)

        return call


def counted_bytes(cfg: PhysicsConfig, coeffs: Coefficients) -> int:
    """Bytes the NumPy twin's calls touch per tick, averaged over ``metric_grad_every``
    ticks so the periodic metric-gradient pass is amortised as it is in the timing."""
    counter = _CountingNumpy()
    field = Field(cfg, Backend("numpy", counter, "byte counting"))
    field.step(coeffs)  # tick 0 (set-up effects)
    counter.bytes = 0
    ticks = cfg.metric_grad_every
    for _ in range(ticks):
        field.step(coeffs)
    return counter.bytes // ticks


# ---------------------------------------------------------------- the run


def _workload(cfg: PhysicsConfig) -> Coefficients:
    """Neutral coefficients with drive and noise on: the realistic tick."""
    c = Coefficients(len(cfg.areas))
    c.drive[:] = np.linspace(1.0, 0.25, len(cfg.areas), dtype=np.float32)
    return c


def bench_shape(
    shape: tuple[int, ...],
    backend: Backend,
    ticks: int,
    max_seconds: float,
    base: PhysicsConfig | None = None,
) -> dict[str, Any]:
    """One shape: run ``ticks`` ticks (or ``max_seconds``) and return its figures.

    ``base``: the physics settings to bench with (default: the built-in ones); its
    ``shape`` and ``areas`` are replaced by ``shape`` and as many areas as fit."""
    areas = list(AREAS[: min(len(AREAS), shape[0])])
    settings = msgspec.structs.asdict(base or PhysicsConfig())
    cfg = PhysicsConfig(**(settings | {"shape": list(shape), "areas": areas}))
    n = math.prod(shape)
    row: dict[str, Any] = {"shape": shape_name(shape), "ndim": len(shape), "nodes": n}
    if backend.name == "numpy" and n > GPU_ONLY_NODES:
        row["skipped"] = f"{n} nodes is a GPU-only shape"
        return row
    field = make_field(cfg, backend)
    coeffs = _workload(cfg)
    for _ in range(min(20, ticks)):  # warm-up: kernel compilation, caches
        field.step(coeffs)
    times: list[int] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < ticks and (len(times) < 10 or time.perf_counter() < deadline):
        t0 = time.perf_counter_ns()
        field.step(coeffs)
        times.append(time.perf_counter_ns() - t0)
    t = np.asarray(times, dtype=np.float64) * 1e-9
    mean = float(t.mean())
    bytes_min = field.bytes_per_step()
    bytes_moved = counted_bytes(cfg, coeffs) if backend.name == "numpy" else bytes_min
    row.update(
        ticks=len(times),
        tick_p50_s=float(np.percentile(t, 50)),
        tick_p99_s=float(np.percentile(t, 99)),
        tick_mean_s=mean,
        node_steps_per_s=n / mean,
        bytes_min=bytes_min,
        bytes_moved=bytes_moved,
        bytes_per_s=bytes_moved / mean,
        nonfinite=field.result.nonfinite,
    )
    return row


def run(
    shapes: Sequence[str | Sequence[int]] | None = None,
    ticks: int = 300,
    backend: str | Backend = "auto",
    max_seconds: float = 3.0,
    base: PhysicsConfig | None = None,
) -> dict[str, Any]:
    """Benchmark ``shapes`` (default: :data:`CPU_SHAPES`, plus 6^9 on the GPU) with the
    physics settings ``base`` (default: the built-in ones).

    Returns ``{"backend", "backend_reason", "bound_bytes_per_s", "bound_method",
    "shapes": [per-shape dicts]}``; each shape's ``fraction`` is its bytes/s over the
    bound."""
    be = backend if isinstance(backend, Backend) else select_backend(backend)
    if shapes is None:
        shapes = GPU_SHAPES if be.name == "cupy" else CPU_SHAPES
    parsed = [parse_shape(s) if isinstance(s, str) else tuple(s) for s in shapes]
    if be.name == "cupy":
        bound, method = gpu_copy_bandwidth(be.xp), "device-to-device copy of 1 GiB"
    else:
        bound, method = cpu_copy_bandwidth(), "np.copyto of 128 MiB, one core"
    rows = []
    for shape in parsed:
        row = bench_shape(shape, be, ticks, max_seconds, base)
        if "bytes_per_s" in row:
            row["fraction"] = row["bytes_per_s"] / bound
        rows.append(row)
    return {
        "backend": be.name,
        "backend_reason": be.reason,
        "bound_bytes_per_s": bound,
        "bound_method": method,
        "shapes": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s result."""
    lines = [
        f"backend {result['backend']} ({result['backend_reason']})",
        f"bandwidth bound {result['bound_bytes_per_s'] / 1e9:.1f} GB/s ({result['bound_method']})",
        "",
        f"{'shape':>20} {'nodes':>10} {'node-steps/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'B/step min':>11} {'B/step':>11} {'GB/s':>7} {'of bound':>8}",
    ]
    for r in result["shapes"]:
        if "skipped" in r:
            lines.append(f"{r['shape']:>20} {r['nodes']:>10}  skipped: {r['skipped']}")
            continue
        flag = " (cache)" if r["fraction"] > 1.0 else ""
        lines.append(
            f"{r['shape']:>20} {r['nodes']:>10} {r['node_steps_per_s']:>13.3g} "
            f"{r['tick_p50_s'] * 1e3:>8.3f} {r['tick_p99_s'] * 1e3:>8.3f} "
            f"{r['bytes_min']:>11.3g} {r['bytes_moved']:>11.3g} "
            f"{r['bytes_per_s'] / 1e9:>7.2f} {r['fraction']:>8.2f}{flag}"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments of ``engs bench physics`` (the CLI builds its parser with this)."""
    ap.add_argument("--json", action="store_true", help="print JSON for machines")
    ap.add_argument(
        "--backend",
        default=None,
        choices=("auto", "numpy", "cupy"),
        help="array backend (default: [physics] backend of the configuration)",
    )
    ap.add_argument(
        "--shape", action="append", default=None, help="lattice shape, e.g. 64x64 or 6^9 (repeat)"
    )
    ap.add_argument("--ticks", type=int, default=300, help="timed ticks per shape (default 300)")
    ap.add_argument(
        "--max-seconds", type=float, default=3.0, help="time cap per shape (default 3 s)"
    )


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Run with the configuration and parsed arguments; 0 on success, 2 on a bad shape,
    backend or configuration."""
    try:
        shapes = [parse_shape(s) for s in args.shape] if args.shape else None
        backend = args.backend or cfg.physics.backend
        result = run(shapes, args.ticks, backend, args.max_seconds, cfg.physics)
    except (ValueError, RuntimeError, EngsError) as exc:
        print(f"engs bench physics: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
