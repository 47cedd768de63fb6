"""Backend selection: NumPy on the CPU or CuPy on a CUDA GPU.

``select_backend("auto")`` probes the GPU with a tiny kernel and falls back to NumPy,
saying why, instead of failing: ``engs up`` must run on a machine without a GPU
(ARCHITECTURE §5). CuPy is imported only here and in :mod:`gpu`, and only when the GPU
backend is asked for, so the CPU path never pays for (or depends on) it. The
``ENGS_BACKEND`` environment variable is applied by ``engs.shared.config``; this module
takes the resulting name.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np

from engs.shared.errors import NotAvailable

BackendName = Literal["numpy", "cupy"]

#: ``PhysicsTelemetry.backend`` codes.
BACKEND_CODES: dict[str, int] = {"numpy": 0, "cupy": 1}


@dataclass(frozen=True)
class Backend:
    """The array module the physics runs on, and why it was chosen."""

    name: BackendName
    xp: ModuleType
    reason: str

    @property
    def code(self) -> int:
        """The ``PhysicsTelemetry.backend`` code: 0 numpy, 1 cupy."""
        return BACKEND_CODES[self.name]


def numpy_backend(reason: str = "requested") -> Backend:
    return Backend("numpy", np, reason)


def probe_cupy() -> tuple[ModuleType | None, str]:
    """Import CuPy and run a tiny elementwise kernel on the default device.

    Returns ``(cupy, "")`` on success, ``(None, reason)`` otherwise; never raises.
    The kernel is compiled and launched, so a missing driver, no device, or a broken
    NVRTC all show here rather than at the first physics tick."""
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
    return cp, ""


#: Largest lattice ``auto`` falls back to NumPy for: above it a NumPy tick takes most of
#: a second (6⁹ ≈ 10⁷ nodes: seconds per tick), which is a broken service, not a fallback.
CPU_FALLBACK_MAX_NODES = 1 << 21


def select_backend(name: str, n_nodes: int | None = None) -> Backend:
    """The backend for ``name`` in ``"auto" | "numpy" | "cupy"``.

    ``auto``: CuPy when the probe passes, else NumPy with the probe's reason — unless the
    lattice (``n_nodes``, when given) exceeds :data:`CPU_FALLBACK_MAX_NODES`: then
    :class:`~engs.shared.errors.NotAvailable` names the reason and the way to insist
    (``backend = "numpy"``). ``cupy``: CuPy or NotAvailable naming the reason.
    """
    if name == "numpy":
        return numpy_backend("requested")
    if name not in ("auto", "cupy"):
        raise ValueError(f"backend must be auto, numpy or cupy, got {name!r}")
    cp, why = probe_cupy()
    if cp is not None:
        return Backend("cupy", cp, "requested" if name == "cupy" else "auto: GPU probe passed")
    if name == "cupy":
        raise NotAvailable(f"backend cupy requested but unavailable: {why}")
    if n_nodes is not None and n_nodes > CPU_FALLBACK_MAX_NODES:
        raise NotAvailable(
            f"backend auto: no usable GPU ({why}), and a lattice of {n_nodes:,} nodes is "
            f"too large for the NumPy fallback (at most {CPU_FALLBACK_MAX_NODES:,}: a tick "
            "would take seconds); fix the GPU, shrink `$.physics.shape`, or set "
            '`$.physics.backend = "numpy"` (ENGS_BACKEND=numpy) to run it anyway'
        )
    return numpy_backend(f"auto: falling back to numpy ({why})")
