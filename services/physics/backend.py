"""Backend selection: the NumPy twin, the fused CPU kernels (numba), or CuPy on a GPU.

``select_backend("auto")`` probes the GPU with a tiny kernel, then the fused CPU
kernels, and falls back step by step, saying why, instead of failing: ``engs up``
must run on a machine without a GPU (ARCHITECTURE §5). CuPy and numba are imported
only here and in the modules of their backends, and only when asked for, so the
other paths never pay for (or depend on) them. The ``ENGS_BACKEND`` environment
variable is applied by ``engs.shared.config``; this module takes the resulting name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np

from engs.shared.errors import NotAvailable

BackendName = Literal["numpy", "numba", "cupy"]

#: ``PhysicsTelemetry.backend`` codes.
BACKEND_CODES: dict[str, int] = {"numpy": 0, "cupy": 1, "numba": 2}


@dataclass(frozen=True)
class Backend:
    """The array module the physics runs on, the kernels that step it, and why."""

    name: BackendName
    xp: ModuleType
    reason: str

    @property
    def code(self) -> int:
        """The ``PhysicsTelemetry.backend`` code: 0 numpy, 1 cupy, 2 numba."""
        return BACKEND_CODES[self.name]


def numpy_backend(reason: str = "requested") -> Backend:
    return Backend("numpy", np, reason)


def probe_cupy() -> tuple[ModuleType | None, str]:
    """Import CuPy, run a tiny elementwise kernel on the default device, and compile the
    physics' own CUDA module (for a 4×4 lattice) with its NVRTC options.

    Returns ``(cupy, "")`` on success, ``(None, reason)`` otherwise; never raises.
    The kernels are compiled and one is launched, so a missing driver, no device, a
    broken NVRTC or a source this toolkit rejects all show here — and ``auto`` falls
    back — rather than at the first physics tick."""
    try:
        import cupy as cp  # noqa: PLC0415 - lazy: GPU backend only
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        return None, f"cupy not importable: {type(exc).__name__}: {exc}"
    try:
        n = cp.cuda.runtime.getDeviceCount()
        if n < 1:
            return None, "cupy imported but no CUDA device is visible"
        twice = cp.ElementwiseKernel("float32 x", "float32 y", "y = 2.0f * x", "engs_probe")
        x = cp.arange(4, dtype=cp.float32)
        y = twice(x).get()
        if not np.array_equal(y, np.arange(4, dtype=np.float32) * 2):
            return None, f"GPU probe kernel returned {y!r}, expected [0, 2, 4, 6]"
    except Exception as exc:  # CUDA driver / runtime / compiler errors
        return None, f"GPU probe failed: {type(exc).__name__}: {exc}"
    try:
        from engs.services.physics.cuda_source import (  # noqa: PLC0415 - with cupy only
            KERNEL_NAMES,
            NVRTC_OPTIONS,
            module_source,
        )
        from engs.services.physics.lattice import Lattice  # noqa: PLC0415

        module = cp.RawModule(
            code=module_source(Lattice.build((4, 4), ["probe"])), options=NVRTC_OPTIONS
        )
        for kernel in KERNEL_NAMES:
            module.get_function(kernel)  # compiles the module (NVRTC) and loads it
    except Exception as exc:  # NVRTC compile errors, a module the driver cannot load
        return None, f"the physics' CUDA module does not compile: {type(exc).__name__}: {exc}"
    return cp, ""


def probe_numba() -> str:
    """Import the fused CPU kernels and compile (or load from the on-disk cache) and run
    them on a tiny lattice. Returns "" on success, else the reason; never raises."""
    try:
        from engs.services.physics.cpu_kernels import self_test  # noqa: PLC0415 - lazy

        self_test()
    except Exception as exc:  # ImportError, an LLVM/compile error, a wrong result
        return f"fused CPU kernels unavailable: {type(exc).__name__}: {exc}"
    return ""


#: Largest lattice ``auto`` falls back to a CPU backend for: above it even the fused
#: CPU tick takes tens of milliseconds (6⁹ ≈ 10⁷ nodes: ~0.2 s; the NumPy twin seconds),
#: which is a broken service, not a fallback.
CPU_FALLBACK_MAX_NODES = 1 << 21


def select_backend(name: str, shape: Sequence[int] | None = None) -> Backend:
    """The backend for ``name`` in ``"auto" | "numpy" | "numba" | "cupy"`` and a lattice
    of ``shape`` (when given).

    ``auto``: CuPy when the GPU probe passes; else the fused CPU kernels when they
    compile; else NumPy — the reason of each step down kept in :attr:`Backend.reason`.
    Without a GPU, a lattice over :data:`CPU_FALLBACK_MAX_NODES` nodes is refused with
    :class:`~engs.shared.errors.NotAvailable` naming the reason and the way to insist.
    ``cupy`` / ``numba``: that backend (any shape) or NotAvailable naming why.
    """
    if name == "numpy":
        return numpy_backend("requested")
    if name == "numba":
        why = probe_numba()
        if why:
            raise NotAvailable(f"backend numba requested but unavailable: {why}")
        return Backend("numba", np, "requested")
    if name not in ("auto", "cupy"):
        raise ValueError(f"backend must be auto, numpy, numba or cupy, got {name!r}")
    cp, why = probe_cupy()
    if cp is not None:
        return Backend("cupy", cp, "requested" if name == "cupy" else "auto: GPU probe passed")
    if name == "cupy":
        raise NotAvailable(f"backend cupy requested but unavailable: {why}")
    n_nodes = math.prod(shape) if shape else 0
    if n_nodes > CPU_FALLBACK_MAX_NODES:
        raise NotAvailable(
            f"backend auto: no usable GPU ({why}), and a lattice of {n_nodes:,} nodes is "
            f"too large for a CPU fallback (at most {CPU_FALLBACK_MAX_NODES:,}: a tick "
            "would take far longer than its deadline); fix the GPU, shrink "
            '`$.physics.shape`, or set `$.physics.backend = "numba"` (ENGS_BACKEND=numba) '
            "to run it anyway"
        )
    why_cpu = probe_numba()
    if not why_cpu:
        return Backend("numba", np, f"auto: no usable GPU ({why}); fused CPU kernels")
    return numpy_backend(f"auto: falling back to numpy ({why}; {why_cpu})")
