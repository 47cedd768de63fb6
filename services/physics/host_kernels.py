"""The CUDA source compiled for the CPU: a verification executor, not a backend.

:func:`build` compiles :func:`cuda_source.host_source` — the kernels' per-node and
per-thread functions, unchanged, plus a harness that runs each block's threads one
after another — with the system C++ compiler and loads it with ctypes. The parity build
(``-O2 -ffp-contract=off``) matches NVRTC's ``--fmad=false``; ``fma=True`` builds it
with multiply-adds contracted (``-ffp-contract=fast -mfma``), the host's stand-in for
the production ``--fmad=true`` build, to measure how far FMA moves a trajectory.
:class:`HostKernelField` steps a field with it, so the tests can compare the CUDA
arithmetic — chunks, partial rows and the finishing reduction included — with the NumPy
twin on a machine without a GPU. Only the warp-shuffle block reductions are left to the
GPU tests.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np

from engs.services.physics.coefficients import NCOEF
from engs.services.physics.cuda_source import chunks, host_source, red_layout
from engs.services.physics.fused import Executor, FusedField, HostSums
from engs.services.physics.lattice import Lattice
from engs.services.physics.reductions import NSUM
from engs.shared.errors import NotAvailable

CXXFLAGS = ("-O2", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC")

#: The production stand-in: multiply-adds contracted into FMA, as NVRTC's --fmad=true.
CXXFLAGS_FMA = ("-O2", "-std=c++17", "-ffp-contract=fast", "-mfma", "-shared", "-fPIC")


def compiler() -> str | None:
    """The C++ compiler to use (``$CXX``, else g++, else c++), or None."""
    env = os.environ.get("CXX")
    if env and shutil.which(env):
        return env
    return shutil.which("g++") or shutil.which("c++")


def build(lat: Lattice, fma: bool = False) -> ctypes.CDLL:
    """Compile and load the host build of ``lat``'s kernels (``fma``: contracted).

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
            [cxx, *(CXXFLAGS_FMA if fma else CXXFLAGS), src, "-o", lib],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cxx} failed on the host build of the kernels:\n{proc.stderr}")
        return ctypes.CDLL(lib)  # the mapping outlives the deleted file


def _ptr(a: np.ndarray[Any, Any]) -> ctypes.c_void_p:
    if not a.flags.c_contiguous:
        raise ValueError("kernel arrays must be C-contiguous")
    return ctypes.c_void_p(a.ctypes.data)


class HostExecutor(HostSums):
    """:class:`~engs.services.physics.fused.Executor` (and
    :class:`~engs.services.physics.fused.Pipelined`) over the host build.

    Like the GPU executor it holds two table slots, the current tick's and the one
    before (the pipelined step uses both)."""

    def __init__(
        self, lat: Lattice, red: np.ndarray[Any, np.dtype[np.float64]], fma: bool = False
    ) -> None:
        super().__init__(red)
        self.lib = build(lat, fma)
        self.area_of_row = np.ascontiguousarray(lat.area_of_row, dtype=np.int32)
        self.coef_slots = np.zeros((2, lat.n_areas, NCOEF), dtype=np.float32)
        self.s_req_slots = np.zeros((2, lat.n_areas), dtype=np.float64)
        self.stage = 0
        self.chunks = chunks(lat)
        n = self.chunks.n
        self.part = np.zeros((n, NSUM), dtype=np.float64)
        self.part_max = np.zeros((n, lat.ndim), dtype=np.uint32)
        self.mg_part = np.zeros(n, dtype=np.float64)
        layout = red_layout(lat)
        self._mg, self._gmax = layout["mg"], layout["gmax"]
        self.readback = np.zeros((2, len(red)), dtype=np.float64)
        vp, f, i, u64 = ctypes.c_void_p, ctypes.c_float, ctypes.c_int, ctypes.c_uint64
        dbl = ctypes.c_double
        self.lib.host_clamp_table.argtypes = [vp, vp, vp, dbl, dbl]
        self.lib.host_kick_drift.argtypes = [vp, vp, vp, vp, vp, u64, i, i, f, f]
        self.lib.host_force.argtypes = [vp] * 11 + [f] * 5
        self.lib.host_force_kick_drift.argtypes = [vp] * 12 + [f] * 5 + [u64, i, i, f]
        self.lib.host_finish_sums.argtypes = [vp, vp, vp, vp]
        self.lib.host_metric_grad.argtypes = [vp, vp, i, i, vp]
        self.lib.host_metric_finish.argtypes = [vp, vp, vp]

    @property
    def coef(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The current tick's table."""
        return self.coef_slots[self.stage]

    def upload_table(self, table: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        self.stage ^= 1
        np.copyto(self.coef_slots[self.stage], table)

    def upload_speeds(self, s_req: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        np.copyto(self.s_req_slots[self.stage], s_req)

    def clamp(self, v0: float, v0h: float, previous: bool = False) -> None:
        slot = self.stage ^ int(previous)
        self.lib.host_clamp_table(
            _ptr(self.red), _ptr(self.s_req_slots[slot]), _ptr(self.coef_slots[slot]), v0, v0h
        )

    def set_gmax(self, g_area_max: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.red[self._gmax] = g_area_max.reshape(-1)

    def submit_red(self, slot: int) -> None:
        np.copyto(self.readback[slot], self.red)

    def collect_red(self, slot: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.readback[slot]

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
        previous: bool = False,
    ) -> None:  # fmt: skip
        ch = self.chunks
        self.lib.host_force(
            _ptr(psi), _ptr(pi), _ptr(force), _ptr(g), _ptr(g_next), _ptr(anchor),
            _ptr(ch.first), _ptr(self.area_of_row), _ptr(self.coef_slots[self.stage ^ previous]),
            _ptr(self.part), _ptr(self.part_max), half_h, g_min, g_max, kappa_h, mu_h,
        )  # fmt: skip
        self._finish_sums()

    def force_kick_drift(
        self, psi: Any, psi_out: Any, pi: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
        noise_base: int, noise_on: bool, shift_on: bool, h: float,
    ) -> None:  # fmt: skip
        ch = self.chunks
        self.lib.host_force_kick_drift(
            _ptr(psi), _ptr(psi_out), _ptr(pi), _ptr(g), _ptr(g_next), _ptr(anchor),
            _ptr(ch.first), _ptr(self.area_of_row), _ptr(self.coef_slots[self.stage ^ 1]),
            _ptr(self.coef), _ptr(self.part), _ptr(self.part_max), half_h, g_min, g_max,
            kappa_h, mu_h, noise_base, int(noise_on), int(shift_on), h,
        )  # fmt: skip
        self._finish_sums()

    def _finish_sums(self) -> None:
        self.lib.host_finish_sums(
            _ptr(self.chunks.area_first), _ptr(self.part), _ptr(self.part_max), _ptr(self.red)
        )

    def metric_grad_part(self, g: Any, c0: int, c1: int) -> None:
        self.lib.host_metric_grad(_ptr(g), _ptr(self.chunks.first), c0, c1, _ptr(self.mg_part))

    def metric_grad_finish(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.lib.host_metric_finish(_ptr(self.chunks.area_first), _ptr(self.mg_part), _ptr(out))

    def metric_grad_finish_red(self) -> None:
        self.metric_grad_finish(self.red[self._mg])

    def metric_grad(self, g: Any, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.metric_grad_part(g, 0, self.chunks.n)
        self.metric_grad_finish(out)


class HostKernelField(FusedField):
    """A field stepped by the host build of the CUDA kernels (tests, verification).

    The class attributes choose the build: ``fma`` (production stand-in) and
    ``spread_metric_grad`` (the GPU backend's sliced metric gradient)."""

    fma = False

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        return HostExecutor(self.lattice, red, self.fma)
