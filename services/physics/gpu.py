"""The GPU backend: the fused kernels of :mod:`cuda_source` launched through CuPy.

Imported only when the CuPy backend is selected (:func:`field.make_field`), so the
CPU path never imports CuPy. Per tick: one 4·8·n_areas-byte table upload, the
``kick_drift`` and ``force_kick_plasticity`` launches, one download of the reduction
buffer (which synchronises the tick); every ``metric_grad_every`` ticks a memset,
the ``metric_grad`` launch and a download of n_areas doubles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engs.services.physics.coefficients import NCOEF
from engs.services.physics.cuda_source import BLOCK, NVRTC_OPTIONS, module_source, red_len
from engs.services.physics.fused import Executor, FusedField
from engs.services.physics.lattice import Lattice


class CupyExecutor:
    """:class:`~engs.services.physics.fused.Executor` on a CUDA device (cupy arrays)."""

    def __init__(self, cp: Any, lat: Lattice) -> None:
        self.cp = cp
        self.module = cp.RawModule(code=module_source(lat), options=NVRTC_OPTIONS)
        self.k_kick = self.module.get_function("kick_drift")
        self.k_force = self.module.get_function("force_kick_plasticity")
        self.k_metric = self.module.get_function("metric_grad")
        self.area_of_row = cp.asarray(lat.area_of_row, dtype=cp.int32)
        self.coef = cp.zeros((lat.n_areas, NCOEF), dtype=cp.float32)
        self.red = cp.zeros(red_len(lat), dtype=cp.float64)
        self.mg = cp.zeros(lat.n_areas, dtype=cp.float64)
        n = lat.n_nodes
        self.grid = ((n + BLOCK - 1) // BLOCK,)
        self.grid_kick = ((max(n, red_len(lat)) + BLOCK - 1) // BLOCK,)
        self.block = (BLOCK,)

    def upload_table(self, table: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        self.coef.set(table)

    def kick_drift(
        self, psi: Any, pi: Any, force: Any, noise_base: int, noise_on: bool,
        shift_on: bool, h: float, half_h: float,
    ) -> None:  # fmt: skip
        self.k_kick(
            self.grid_kick, self.block,
            (psi, pi, force, self.area_of_row, self.coef, self.red, np.uint64(noise_base),
             np.int32(noise_on), np.int32(shift_on), np.float32(h), np.float32(half_h)),
        )  # fmt: skip

    def force(
        self, psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
    ) -> None:  # fmt: skip
        self.k_force(
            self.grid, self.block,
            (psi, pi, force, g, g_next, anchor, self.area_of_row, self.coef, self.red,
             np.float32(half_h), np.float32(g_min), np.float32(g_max), np.float32(kappa_h),
             np.float32(mu_h)),
        )  # fmt: skip

    def download_red(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.red.get(out=out)

    def metric_grad(self, g: Any, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.mg.fill(0.0)
        self.k_metric(self.grid, self.block, (g, self.area_of_row, self.mg))
        self.mg.get(out=out)

    def synchronize(self) -> None:
        self.cp.cuda.get_current_stream().synchronize()


class CudaField(FusedField):
    """The field on the GPU (backend ``cupy``)."""

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        return CupyExecutor(self.xp, self.lattice)
