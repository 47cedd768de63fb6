"""The field stepped by the fused kernels of :mod:`cuda_source`.

:class:`FusedField` is :class:`~engs.services.physics.field.Field` with ``_advance``
replaced by the kernels (``kick_drift``, then the force step and its sums) on an
:class:`Executor`, one upload of the per-area tick table and one download of the
reduction buffer. Everything around the kernels — the tick table, the CFL bound,
the entropy, the costs, telemetry, recovery — is the base class's, so both backends
share one semantics by construction.

Two executors run the same source: :class:`engs.services.physics.gpu.CupyExecutor` (CUDA,
the GPU backend) and :class:`engs.services.physics.host_kernels.HostExecutor` (the source
compiled for the CPU, used to test the kernels' arithmetic without a GPU); the fused CPU
backend's :class:`engs.services.physics.cpu_kernels.NumbaExecutor` is a third.

**The metric gradient, sliced** (``spread_metric_grad``, the GPU backend's production
path): instead of measuring Σ|∇g| over the whole lattice inside the publishing tick, the
field measures one slice of the chunks (:class:`cuda_source.Chunks`) per tick, slice j
at ticks ≡ j + 1 (mod ``metric_grad_every``), and the publishing tick (≡ 0) finishes
the sum: each area's figure is then taken over the g of the last ``metric_grad_every``
ticks, each node's at one of them, rather than all at the publishing tick — g moves by
at most h·η·|Ψ|² + h·λ·|g − c| per tick, and the figure is an area mean. A window that
is incomplete (the first publication, or g replaced by ``set_state`` or a non-finite
recovery) is completed at the publishing tick on the g of that tick, so every
publication covers every node exactly once.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from engs.services.physics.cuda_source import Chunks
from engs.services.physics.field import Field
from engs.services.physics.integrator import RowTable
from engs.services.physics.noise import tick_base
from engs.services.physics.reductions import NSUM


class Executor(Protocol):
    """Runs the kernels of :mod:`cuda_source` on one lattice's arrays.

    Arrays are on the executor's array module; ``table`` and ``out`` are host numpy.
    """

    def upload_table(self, table: np.ndarray[Any, np.dtype[np.float32]]) -> None: ...

    def kick_drift(
        self, psi: Any, pi: Any, force: Any, noise_base: int, noise_on: bool,
        shift_on: bool, h: float, half_h: float,
    ) -> None: ...  # fmt: skip

    def force(
        self, psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
    ) -> None: ...  # fmt: skip

    def download_red(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None: ...

    def metric_grad(self, g: Any, out: np.ndarray[Any, np.dtype[np.float64]]) -> None: ...


class SlicedMetric(Protocol):
    """An executor that measures the metric gradient a chunk range at a time."""

    chunks: Chunks

    def metric_grad_part(self, g: Any, c0: int, c1: int) -> None:
        """Σ|∇g| of chunks ``[c0, c1)`` into their partial rows (on the executor)."""

    def metric_grad_finish(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        """The partial rows summed per area into ``out`` (host, shape ``(n_areas,)``)."""


class HostSums:
    """For executors that run on the host: the kernels write their sums straight into
    the field's reduction buffer, so ``download_red`` only checks it is that buffer."""

    def __init__(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.red = red

    def download_red(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        if out is not self.red:
            raise RuntimeError("a host executor writes its sums into the field's buffer only")


class FusedField(Field):
    """A field whose tick runs the fused kernels; subclasses supply the executor."""

    #: Measure the metric gradient one slice per tick (see the module docstring); the
    #: executor must then be a :class:`SlicedMetric`.
    spread_metric_grad = False

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        """The executor; ``red`` is the host buffer :meth:`Executor.download_red` fills
        (host executors write their sums straight into it)."""
        raise NotImplementedError

    def _init_backend(self) -> None:
        xp, lat = self.xp, self.lattice
        self.red = np.zeros(NSUM + lat.n_areas + lat.ndim * lat.n_areas, dtype=np.float64)
        self.executor = self._make_executor(self.red)
        self._mg_sums = np.zeros(lat.n_areas, dtype=np.float64)
        self.entropy_exact = True  # the exact Σ e log e is one more term of the fused sum
        if self.spread_metric_grad:
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            self._mg_slices = sliced.chunks.slices(self.params.metric_grad_every)
            self._mg_done = np.zeros(len(self._mg_slices), dtype=bool)
        # set-up path only (refresh_force): the xp-generic Laplacian and its scratch
        self.rt = RowTable(xp, lat)
        self._scratch = tuple(xp.zeros(lat.shape, dtype=xp.complex64) for _ in range(3))

    def _advance(self) -> None:
        p, tt, lat, ex = self.params, self.table, self.lattice, self.executor
        half_h = 0.5 * p.h
        ex.upload_table(tt.table)
        ex.kick_drift(
            self.psi, self.pi, self.force, tick_base(self.noise_key, self.tick, lat.n_nodes),
            tt.noise_on, tt.shift_on, p.h, half_h,
        )  # fmt: skip
        ex.force(
            self.psi, self.pi, self.force, self.g, self.g_next, self.g_anchor, half_h,
            p.g_min, p.g_max, self._kappa_h if tt.consolidate_on else 0.0,
            self._mu_h if tt.consolidate_on else 0.0,
        )  # fmt: skip
        self.g, self.g_next = self.g_next, self.g
        if self.spread_metric_grad:
            j = (self.tick - 1) % len(self._mg_slices)  # the window ends at ticks ≡ 0
            if j == 0:
                self._mg_done[:] = False
            self._metric_slice(j)
        ex.download_red(self.red)
        n, d = lat.n_areas, lat.ndim
        np.copyto(self.sums, self.red[:NSUM])
        np.copyto(self.area_e, self.red[NSUM : NSUM + n])
        np.copyto(self.g_area_max, self.red[NSUM + n :].reshape(d, n))
        self._t_se = 0.0

    def _metric_slice(self, j: int) -> None:
        c0, c1 = self._mg_slices[j]
        if c1 > c0:
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            sliced.metric_grad_part(self.g, c0, c1)
        self._mg_done[j] = True

    def _metric_gradient(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        if self.spread_metric_grad:
            for j in np.flatnonzero(~self._mg_done):  # an incomplete window: finish it now
                self._metric_slice(int(j))
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            sliced.metric_grad_finish(self._mg_sums)
        else:
            self.executor.metric_grad(self.g, self._mg_sums)
        np.divide(self._mg_sums, self._area_nodes, out=out)

    def _g_replaced(self) -> None:
        if self.spread_metric_grad:
            self._mg_done[:] = False  # slices measured on the old g are void

    def _count_nonfinite(self) -> int:
        xp = self.xp
        bad = xp.zeros(self.lattice.shape, dtype=bool)  # failure path: allocation is fine
        for a in (self.psi, self.pi):
            bad |= ~xp.isfinite(a)
        return int(xp.count_nonzero(bad))

    def _refresh_scratch(self) -> tuple[Any, Any, Any]:
        return self._scratch
