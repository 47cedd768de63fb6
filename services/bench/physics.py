"""``engs bench physics``: tick time and throughput of the physics step.

For each lattice shape: ticks per second as node-steps/s, tick time p50/p99 (each
tick timed alone with ``perf_counter_ns``; on the GPU a step launches its tick and
waits for the previous tick's sums to land, so back-to-back steps run at the device's
pace and the time is the device's tick time once the pipeline is full), and the memory
traffic of
a tick next to a bandwidth bound measured in the same run:

* bound: a large copy (128 MiB with NumPy on one core; 1 GiB device-to-device with
  CuPy), best of several, counted as bytes read + bytes written per second;
* ``bytes_min``: the traffic a tick cannot avoid — every state array read and
  written once (:meth:`Field.bytes_per_step`; the fused kernels are built to move
  this, neighbour loads assumed to hit cache);
* ``bytes_moved``: NumPy: counted, not estimated — one tick runs through a proxy of
  the numpy module that adds up the ``nbytes`` of every array argument and ``out``
  of every call (inputs read, outputs written); CuPy: ``bytes_min``;
* ``fused_fraction``: bytes_min / tick p50 / bound — how close the tick comes to a
  kernel that moves only what it must at the copy bound (issue 18's measure; the
  fused backends' goal is >= 0.5 at 256×256);
* ``fraction``: bytes_moved / mean tick time / bound, the traffic the tick actually
  generates. Above 1 means the working set lives in cache (small lattices on the
  CPU), which the table flags.

Every backend available here runs by default (NumPy, the fused CPU kernels, CuPy),
shape by shape in turn so each comparison shares the machine's state, and the table
puts them side by side with the speed-up over NumPy. With the fused CPU kernels, two
fresh processes also time their start to the first tick of a 256×256 lattice: with an
empty compile cache (cold: numba compiles) and with the cache the first one left
(warm).

The lattice settings of ``[physics]`` in ``--config`` (backend aside: ``--backend``)
apply to every shape; only ``shape`` and ``areas`` are the bench's. Called as every
target is (:mod:`engs.services.bench`): :func:`add_arguments`, :func:`run_args`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
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
from engs.shared.errors import EngsError, NotAvailable

CPU_SHAPES: tuple[str, ...] = (
    "4096",
    "64x64",
    "256x256",
    "512x512",
    "32x32x32",
    "8x8x8x8x8",
    "3x3x3x3x3x3x3x3x3",
)
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
    if backend.name != "cupy" and n > GPU_ONLY_NODES:
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


_START_PROBE = """
import sys, time
from engs.services.physics.backend import select_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import make_field
from engs.shared.config import PhysicsConfig
cfg = PhysicsConfig(shape=[int(n) for n in sys.argv[1].split("x")])
field = make_field(cfg, select_backend("numba"))
field.step(Coefficients(len(cfg.areas)))
print(time.perf_counter() - float(sys.argv[2]))
"""


def numba_start_times(shape: tuple[int, ...] = (256, 256)) -> dict[str, float]:
    """Seconds from launching a fresh Python to the end of the first fused-CPU tick of
    ``shape``: ``cold_s`` with an empty numba cache (the kernels compile), ``warm_s``
    with the cache the cold run left (the start every later ``engs up`` sees). The child
    measures up to its first tick from the parent's launch time (``perf_counter`` is one
    system-wide monotonic clock on Linux), so its exit is not counted."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="engs-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for key in ("cold_s", "warm_s"):
            t0 = time.perf_counter()
            r = subprocess.run(
                [sys.executable, "-c", _START_PROBE, shape_name(shape), repr(t0)],
                capture_output=True, text=True, env=env, timeout=600, check=False,
            )  # fmt: skip
            if r.returncode != 0:
                raise RuntimeError(f"the numba start probe failed: {r.stderr.strip()[-500:]}")
            out[key] = float(r.stdout.split()[-1])  # measured by the child: no teardown
    return out


def available_backends() -> tuple[list[Backend], dict[str, str]]:
    """NumPy, then the fused CPU kernels and CuPy where they work here; and, for those
    that do not, why."""
    found, missing = [select_backend("numpy")], {}
    for name in ("numba", "cupy"):
        try:
            found.append(select_backend(name))
        except NotAvailable as exc:
            missing[name] = str(exc)
    return found, missing


def run(
    shapes: Sequence[str | Sequence[int]] | None = None,
    ticks: int = 300,
    backend: str | Backend | Sequence[str | Backend] | None = None,
    max_seconds: float = 3.0,
    base: PhysicsConfig | None = None,
    start_times: bool = False,
) -> dict[str, Any]:
    """Benchmark ``shapes`` (default: :data:`CPU_SHAPES`, plus 6^9 with a GPU) on each
    of ``backend`` (a name, a :class:`Backend` or a list of them; default: every one
    available here, :func:`available_backends`) with the physics settings ``base``.

    Returns ``{"bound_bytes_per_s", "bound_method", ["gpu_bound_bytes_per_s",
    "gpu_bound_method"], "runs": [{"backend", "backend_reason", "shapes": [...]}],
    ["numba_start"]}``; each shape row's ``fused_fraction`` and ``fraction`` are over
    the bound of the backend's device. ``start_times``: also time the fused CPU
    kernels' cold and warm start (:func:`numba_start_times`) when they are benched."""
    missing: dict[str, str] = {}
    if backend is None:
        backends, missing = available_backends()
    else:
        wanted = [backend] if isinstance(backend, (str, Backend)) else list(backend)
        backends = [b if isinstance(b, Backend) else select_backend(b) for b in wanted]
    if shapes is None:
        shapes = GPU_SHAPES if any(b.name == "cupy" for b in backends) else CPU_SHAPES
    parsed = [parse_shape(s) if isinstance(s, str) else tuple(s) for s in shapes]
    result: dict[str, Any] = {}
    bounds: dict[str, float] = {}
    if any(b.name != "cupy" for b in backends):
        bounds["cpu"] = cpu_copy_bandwidth()
        result.update(
            bound_bytes_per_s=bounds["cpu"], bound_method="np.copyto of 128 MiB, one core"
        )
    for b in backends:
        if b.name == "cupy" and "gpu" not in bounds:
            bounds["gpu"] = gpu_copy_bandwidth(b.xp)
            result.update(gpu_bound_bytes_per_s=bounds["gpu"],
                          gpu_bound_method="device-to-device copy of 1 GiB")  # fmt: skip
    rows: list[list[dict[str, Any]]] = [[] for _ in backends]
    for shape in parsed:  # shape by shape: each comparison shares the machine's state
        for b, done in zip(backends, rows, strict=True):
            row = bench_shape(shape, b, ticks, max_seconds, base)
            if "bytes_per_s" in row:
                bound = bounds["gpu" if b.name == "cupy" else "cpu"]
                row["fraction"] = row["bytes_per_s"] / bound
                row["fused_fraction"] = row["bytes_min"] / row["tick_p50_s"] / bound
            done.append(row)
    result["runs"] = [
        {"backend": b.name, "backend_reason": b.reason, "shapes": done}
        for b, done in zip(backends, rows, strict=True)
    ]
    if missing:
        result["unavailable"] = missing
    if start_times and any(b.name == "numba" for b in backends):
        result["numba_start"] = numba_start_times()
    return result


def format_table(result: dict[str, Any]) -> str:
    """The human-readable tables of :func:`run`'s result: one per backend, then the
    backends side by side."""
    lines = []
    if "bound_bytes_per_s" in result:  # absent when only CuPy ran
        bound_gbs = result["bound_bytes_per_s"] / 1e9
        lines.append(f"bandwidth bound {bound_gbs:.1f} GB/s ({result['bound_method']})")
    if "gpu_bound_bytes_per_s" in result:
        lines.append(
            f"GPU bandwidth bound {result['gpu_bound_bytes_per_s'] / 1e9:.1f} GB/s "
            f"({result['gpu_bound_method']})"
        )
    for run_ in result["runs"]:
        lines += [
            "",
            f"backend {run_['backend']} ({run_['backend_reason']})",
            f"{'shape':>20} {'nodes':>10} {'node-steps/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'B/step min':>11} {'B/step':>11} {'GB/s':>7} {'of bound':>8} {'fused':>6}",
        ]
        for r in run_["shapes"]:
            if "skipped" in r:
                lines.append(f"{r['shape']:>20} {r['nodes']:>10}  skipped: {r['skipped']}")
                continue
            flag = " (cache)" if r["fraction"] > 1.0 else ""
            lines.append(
                f"{r['shape']:>20} {r['nodes']:>10} {r['node_steps_per_s']:>13.3g} "
                f"{r['tick_p50_s'] * 1e3:>8.3f} {r['tick_p99_s'] * 1e3:>8.3f} "
                f"{r['bytes_min']:>11.3g} {r['bytes_moved']:>11.3g} "
                f"{r['bytes_per_s'] / 1e9:>7.2f} {r['fraction']:>8.2f} "
                f"{r['fused_fraction']:>6.2f}{flag}"
            )
    if len(result["runs"]) > 1:
        names = [r["backend"] for r in result["runs"]]
        lines += ["", "side by side: tick p50 / p99 ms, fused fraction; speed-up over numpy (p50)"]
        lines.append(f"{'shape':>20} " + " ".join(f"{n:>24}" for n in names) + "  speed-up")
        by_shape = zip(*(r["shapes"] for r in result["runs"]), strict=True)
        for rows in by_shape:
            cells, p50 = [], {}
            for name, r in zip(names, rows, strict=True):
                if "skipped" in r:
                    cells.append(f"{'skipped':>24}")
                    continue
                p50[name] = r["tick_p50_s"]
                p50_ms, p99_ms = r["tick_p50_s"] * 1e3, r["tick_p99_s"] * 1e3
                cells.append(f"{p50_ms:>9.3f} /{p99_ms:>7.3f} {r['fused_fraction']:>5.2f}")
            ratio = " ".join(
                f"{n} {p50['numpy'] / p50[n]:.2f}x"
                for n in names
                if n != "numpy" and n in p50 and "numpy" in p50
            )
            lines.append(f"{rows[0]['shape']:>20} " + " ".join(cells) + "  " + ratio)
    for name, why in result.get("unavailable", {}).items():
        lines.append(f"not benched: {name}: {why}")
    if "numba_start" in result:
        st = result["numba_start"]
        lines += [
            "",
            f"fused CPU kernels, start to first 256x256 tick: cold {st['cold_s']:.1f} s "
            f"(compiling), warm {st['warm_s']:.2f} s (from the on-disk cache)",
        ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments of ``engs bench physics`` (the CLI builds its parser with this)."""
    ap.add_argument("--json", action="store_true", help="print JSON for machines")
    ap.add_argument(
        "--backend",
        action="append",
        default=None,
        choices=("numpy", "numba", "cupy"),
        help="array backend (repeat for several; default: every backend available here)",
    )
    ap.add_argument(
        "--shape", action="append", default=None, help="lattice shape, e.g. 64x64 or 6^9 (repeat)"
    )
    ap.add_argument("--ticks", type=int, default=300, help="timed ticks per shape (default 300)")
    ap.add_argument(
        "--max-seconds", type=float, default=3.0, help="time cap per shape (default 3 s)"
    )
    ap.add_argument(
        "--no-start-times",
        dest="start_times",
        action="store_false",
        help="skip timing the fused CPU kernels' cold and warm start (two fresh processes)",
    )


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Run with the configuration and parsed arguments; 0 on success, 2 on a bad shape,
    backend or configuration."""
    try:
        shapes = [parse_shape(s) for s in args.shape] if args.shape else None
        result = run(shapes, args.ticks, args.backend, args.max_seconds, cfg.physics,
                     start_times=args.start_times)  # fmt: skip
    except (ValueError, RuntimeError, EngsError) as exc:
        print(f"engs bench physics: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
