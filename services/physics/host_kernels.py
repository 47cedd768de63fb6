"""The CUDA source compiled for the CPU: a verification executor, not a backend.

:func:`build` compiles :func:`cuda_source.host_source` — the kernels' per-node
functions, unchanged, plus a sequential loop over nodes — with the system C++
compiler (``-O2 -ffp-contract=off``, like NVRTC's ``--fmad=false``) and loads it with
ctypes. :class:`HostKernelField` steps a field with it, so the tests can compare the
CUDA arithmetic with the NumPy twin on a machine without a GPU. Only the kernels'
block reductions and atomics are left to the GPU tests.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np

from engs.services.physics.cuda_source import host_source
from engs.services.physics.fused import Executor, FusedField, HostSums
from engs.services.physics.lattice import Lattice
from engs.shared.errors import NotAvailable

CXXFLAGS = ("-O2", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC")


def compiler() -> str | None:
    """The C++ compiler to use (``$CXX``, else g++, else c++), or None."""
    env = os.environ.get("CXX")
    if env and shutil.which(env):
        return env
    return shutil.which("g++") or shutil.which("c++")


def build(lat: Lattice) -> ctypes.CDLL:
    """Compile and load the host build of ``lat``'s kernels.

    Raises :class:`~engs.shared.errors.NotAvailable` without a compiler, and
    ``RuntimeError`` with the compiler's output if the source does not compile."""
    cxx = compiler()
    if cxx is None:
        raise NotAvailable("no C++ compiler found (set CXX, or install g++)")
    with tempfile.TemporaryDirectory(prefix="engs-host-kernels-") as tmp:
        src = os.path.join(tmp, "kernels.cpp")
        lib = os.path.join(tmp, "kernels.so")
        with open(src, "w", encoding="utf-8") as f:
            f.write(host_source(lat))
        proc = subprocess.run(
            [cxx, *CXXFLAGS, src, "-o", lib], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cxx} failed on the host build of the kernels:\n{proc.stderr}")
        return ctypes.CDLL(lib)  # the mapping outlives the deleted file


def _ptr(a: np.ndarray[Any, Any]) -> ctypes.c_void_p:
    if not a.flags.c_contiguous:
        raise ValueError("kernel arrays must be C-contiguous")
    return ctypes.c_void_p(a.ctypes.data)


class HostExecutor(HostSums):
    """:class:`~engs.services.physics.fused.Executor` over the host build (numpy arrays)."""

    def __init__(self, lat: Lattice, red: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        super().__init__(red)
        self.lib = build(lat)
        self.area_of_row = np.ascontiguousarray(lat.area_of_row, dtype=np.int32)
        self.coef = np.zeros((lat.n_areas, 0), dtype=np.float32)
        vp, f, i, u64 = ctypes.c_void_p, ctypes.c_float, ctypes.c_int, ctypes.c_uint64
        self.lib.host_kick_drift.argtypes = [vp, vp, vp, vp, vp, u64, i, i, f, f]
        self.lib.host_force.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, vp, f, f, f, f, f]
        self.lib.host_metric_grad.argtypes = [vp, vp, vp]

    def upload_table(self, table: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        self.coef = np.ascontiguousarray(table, dtype=np.float32)

    def kick_drift(
        self, psi: Any, pi: Any, force: Any, noise_base: int, noise_on: bool,
        shift_on: bool, h: float, half_h: float,
    ) -> None:  # fmt: skip
        self.lib.host_kick_drift(
            _ptr(psi), _ptr(pi), _ptr(force), _ptr(self.area_of_row), _ptr(self.coef),
            noise_base, int(noise_on), int(shift_on), h, half_h,
        )  # fmt: skip

    def force(
        self, psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
    ) -> None:  # fmt: skip
        self.lib.host_force(
            _ptr(psi), _ptr(pi), _ptr(force), _ptr(g), _ptr(g_next), _ptr(anchor),
            _ptr(self.area_of_row), _ptr(self.coef), _ptr(self.red), half_h, g_min, g_max,
            kappa_h, mu_h,
        )  # fmt: skip

    def metric_grad(self, g: Any, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.lib.host_metric_grad(_ptr(g), _ptr(self.area_of_row), _ptr(out))


class HostKernelField(FusedField):
    """A field stepped by the host build of the CUDA kernels (tests, verification)."""

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        return HostExecutor(self.lattice, red)
