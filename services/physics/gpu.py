"""The GPU backend: the fused kernels of :mod:`cuda_source` launched through CuPy.

Imported only when the CuPy backend is selected (:func:`field.make_field`), so the
CPU path never imports CuPy. Per tick (the pipelined schedule of :mod:`fused`), all on
the current stream and none waited for: the tick table and the requested speeds copied
from pinned staging (two slots, so a copy in flight is never overwritten),
``clamp_table`` (the CFL guard of the previous tick's table, on the device),
``force_kick_drift`` (the previous tick's force half and this tick's kick-drift half),
``finish_sums``, ``metric_grad`` over this tick's slice of the chunks, on publishing
ticks ``metric_finish``, and the reduction buffer copied into a pinned readback slot
behind an event. The host waits only for the *previous* step's event, long since
passed when the GPU keeps up. The parity build and the synchronous schedule remain for
the tests that compare with the NumPy twin tick by tick.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engs.services.physics.coefficients import NCOEF
from engs.services.physics.cuda_source import (
    BLOCK,
    NVRTC_OPTIONS,
    NVRTC_PARITY_OPTIONS,
    chunks,
    module_source,
    red_layout,
    red_len,
)
from engs.services.physics.fused import Executor, FusedField
from engs.services.physics.lattice import Lattice
from engs.services.physics.reductions import NSUM


class CupyExecutor:
    """:class:`~engs.services.physics.fused.Executor` and
    :class:`~engs.services.physics.fused.Pipelined` on a CUDA device (cupy arrays).

    ``parity``: compile without FMA contraction (the build the bit-level tests compare
    with the NumPy twin); production fuses multiply-adds."""

    def __init__(self, cp: Any, lat: Lattice, parity: bool = False) -> None:
        import cupyx  # noqa: PLC0415 - with cupy only

        self.cp = cp
        self.module = cp.RawModule(
            code=module_source(lat), options=NVRTC_PARITY_OPTIONS if parity else NVRTC_OPTIONS
        )
        self.k_clamp = self.module.get_function("clamp_table")
        self.k_kick = self.module.get_function("kick_drift")
        self.k_force = self.module.get_function("force_kick_plasticity")
        self.k_pipelined = self.module.get_function("force_kick_drift")
        self.k_finish = self.module.get_function("finish_sums")
        self.k_metric = self.module.get_function("metric_grad")
        self.k_metric_finish = self.module.get_function("metric_finish")
        self.chunks = chunks(lat)
        n = self.chunks.n
        self.chunk_first = cp.asarray(self.chunks.first)
        self.area_chunk = cp.asarray(self.chunks.area_first)
        self.area_of_row = cp.asarray(lat.area_of_row, dtype=cp.int32)
        self.coef_slots = cp.zeros((2, lat.n_areas, NCOEF), dtype=cp.float32)
        self.s_req_slots = cp.zeros((2, lat.n_areas), dtype=cp.float64)
        self.red = cp.zeros(red_len(lat), dtype=cp.float64)
        self.part = cp.zeros((n, NSUM), dtype=cp.float64)
        self.part_max = cp.zeros((n, lat.ndim), dtype=cp.uint32)
        self.mg_part = cp.zeros(n, dtype=cp.float64)
        self.mg = cp.zeros(lat.n_areas, dtype=cp.float64)
        layout = red_layout(lat)
        self.red_gmax, self.red_mg = self.red[layout["gmax"]], self.red[layout["mg"]]
        # pinned host staging and readback, two slots each (see the module docstring)
        pinned = cupyx.empty_pinned
        self.table_stage = [pinned((lat.n_areas, NCOEF), np.float32) for _ in range(2)]
        self.s_stage = [pinned(lat.n_areas, np.float64) for _ in range(2)]
        self.readback = [pinned(red_len(lat), np.float64) for _ in range(2)]
        self.landed = [cp.cuda.Event(disable_timing=True) for _ in range(2)]
        self.stage = 0
        self.grid_kick = ((lat.n_nodes + BLOCK - 1) // BLOCK,)
        self.block = (BLOCK,)

    @property
    def coef(self) -> Any:
        """The current tick's table (on the device)."""
        return self.coef_slots[self.stage]

    def upload_table(self, table: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        self.stage ^= 1
        staged = self.table_stage[self.stage]
        np.copyto(staged, table)
        self.coef_slots[self.stage].set(staged, stream=self.cp.cuda.get_current_stream())

    def upload_speeds(self, s_req: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        staged = self.s_stage[self.stage]
        np.copyto(staged, s_req)
        self.s_req_slots[self.stage].set(staged, stream=self.cp.cuda.get_current_stream())

    def clamp(self, v0: float, v0h: float, previous: bool = False) -> None:
        slot = self.stage ^ int(previous)
        self.k_clamp(
            (1,), self.block,
            (self.red, self.s_req_slots[slot], self.coef_slots[slot], np.float64(v0),
             np.float64(v0h)),
        )  # fmt: skip

    def set_gmax(self, g_area_max: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.red_gmax.set(np.ascontiguousarray(g_area_max, dtype=np.float64).reshape(-1))

    def submit_red(self, slot: int) -> None:
        stream = self.cp.cuda.get_current_stream()
        self.red.get(stream=stream, out=self.readback[slot], blocking=False)
        self.landed[slot].record(stream)

    def collect_red(self, slot: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        self.landed[slot].synchronize()
        return self.readback[slot]

    def kick_drift(
        self, psi: Any, pi: Any, force: Any, noise_base: int, noise_on: bool,
        shift_on: bool, h: float, half_h: float,
    ) -> None:  # fmt: skip
        self.k_kick(
            self.grid_kick, self.block,
            (psi, pi, force, self.area_of_row, self.coef, np.uint64(noise_base),
             np.int32(noise_on), np.int32(shift_on), np.float32(h), np.float32(half_h)),
        )  # fmt: skip

    def force(
        self, psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
        previous: bool = False,
    ) -> None:  # fmt: skip
        self.k_force(
            (self.chunks.n,), self.block,
            (psi, pi, force, g, g_next, anchor, self.chunk_first, self.area_of_row,
             self.coef_slots[self.stage ^ int(previous)], self.part, self.part_max,
             np.float32(half_h), np.float32(g_min), np.float32(g_max), np.float32(kappa_h),
             np.float32(mu_h)),
        )  # fmt: skip
        self.k_finish((1,), self.block, (self.area_chunk, self.part, self.part_max, self.red))

    def force_kick_drift(
        self, psi: Any, psi_out: Any, pi: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
        noise_base: int, noise_on: bool, shift_on: bool, h: float,
    ) -> None:  # fmt: skip
        self.k_pipelined(
            (self.chunks.n,), self.block,
            (psi, psi_out, pi, g, g_next, anchor, self.chunk_first, self.area_of_row,
             self.coef_slots[self.stage ^ 1], self.coef, self.part, self.part_max,
             np.float32(half_h), np.float32(g_min), np.float32(g_max), np.float32(kappa_h),
             np.float32(mu_h), np.uint64(noise_base), np.int32(noise_on), np.int32(shift_on),
             np.float32(h)),
        )  # fmt: skip
        self.k_finish((1,), self.block, (self.area_chunk, self.part, self.part_max, self.red))

    def download_red(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.red.get(out=out)

    def metric_grad_part(self, g: Any, c0: int, c1: int) -> None:
        self.k_metric((c1 - c0,), self.block, (g, self.chunk_first, np.int32(c0), self.mg_part))

    def metric_grad_finish(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.k_metric_finish((1,), self.block, (self.area_chunk, self.mg_part, self.mg))
        self.mg.get(out=out)

    def metric_grad_finish_red(self) -> None:
        self.k_metric_finish((1,), self.block, (self.area_chunk, self.mg_part, self.red_mg))

    def metric_grad(self, g: Any, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.metric_grad_part(g, 0, self.chunks.n)
        self.metric_grad_finish(out)


class CudaField(FusedField):
    """The field on the GPU (backend ``cupy``): production build, pipelined schedule
    (clamp on the device, sums read back asynchronously, reported two ticks late),
    metric gradient sliced.

    ``parity`` (class attribute): the parity build, for the tests that compare the
    kernels with the NumPy twin."""

    spread_metric_grad = True
    lagged = True
    pipelined = True
    parity = False

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        return CupyExecutor(self.xp, self.lattice, self.parity)
