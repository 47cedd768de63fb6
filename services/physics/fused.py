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

from engs.services.physics.cuda_source import Chunks, red_layout, red_len
from engs.services.physics.field import Field
from engs.services.physics.integrator import RowTable
from engs.services.physics.noise import tick_base


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


class Lagged(SlicedMetric, Protocol):
    """An executor that clamps the tick table itself and reads its sums back late."""

    def clamp(self, s_req: np.ndarray[Any, np.dtype[np.float64]], v0: float, v0h: float) -> None:
        """Clamp the uploaded table's speeds ``s_req`` (float64, per area) by the CFL bound
        of the per-area max g it holds; the applied factors and clamps go to its buffer."""

    def set_gmax(self, g_area_max: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        """Replace the per-area max g it holds (after g was replaced on the host)."""

    def metric_grad_finish_red(self) -> None:
        """:meth:`SlicedMetric.metric_grad_finish` into its buffer's ``mg`` part."""

    def submit_red(self, slot: int) -> None:
        """Start copying the buffer to host slot ``slot`` (0 or 1), after this tick."""

    def collect_red(self, slot: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The host slot ``slot``, once its copy has landed."""


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

    #: Clamp on the executor and read the sums back one tick late (see the module
    #: docstring); the executor must then be a :class:`Lagged`.
    lagged = False

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        """The executor; ``red`` is the host buffer :meth:`Executor.download_red` fills
        (host executors write their sums straight into it)."""
        raise NotImplementedError

    def _init_backend(self) -> None:
        xp, lat = self.xp, self.lattice
        self.red = np.zeros(red_len(lat), dtype=np.float64)
        self._red_parts = red_layout(lat)
        self.executor = self._make_executor(self.red)
        self._mg_sums = np.zeros(lat.n_areas, dtype=np.float64)
        self.entropy_exact = True  # the exact Σ e log e is one more term of the fused sum
        if self.spread_metric_grad or self.lagged:
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            every = self.params.metric_grad_every if self.spread_metric_grad else 1
            self._mg_slices = sliced.chunks.slices(every)
            self._mg_done = np.zeros(len(self._mg_slices), dtype=bool)
        if self.lagged:
            self.report_lag = 1
            self._tick_bound = np.zeros(lat.n_areas, dtype=np.float64)  # clamped on device
            self._s_eff_report = np.zeros(lat.n_areas, dtype=np.float64)
            self._nothing = np.zeros_like(self.red)  # what a step with no tick behind reports
            self._in_flight = False  # the previous step's sums are on their way
            self._gmax_stale = True  # the device's per-area max g must be uploaded
        # set-up path only (refresh_force): the xp-generic Laplacian and its scratch
        self.rt = RowTable(xp, lat)
        self._scratch = tuple(xp.zeros(lat.shape, dtype=xp.complex64) for _ in range(3))

    def _advance(self) -> None:
        p, tt, lat, ex = self.params, self.table, self.lattice, self.executor
        half_h = 0.5 * p.h
        dev: Lagged = self.executor  # type: ignore[assignment]
        if self.lagged and self._gmax_stale:
            dev.set_gmax(self.g_area_max)  # measured on the host after g was replaced
            self._gmax_stale = False
        ex.upload_table(tt.table)
        if self.lagged:  # the table holds the requested speeds (no host bound): clamp them
            dev.clamp(tt.s_eff, p.v0, p.v0 * p.h)
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
        if self.lagged:
            red = self._exchange_lagged(dev)
        else:
            ex.download_red(self.red)
            red = self.red
        parts, (d, n) = self._red_parts, self.g_area_max.shape
        np.copyto(self.sums, red[parts["sums"]])
        np.copyto(self.area_e, red[parts["area_e"]])
        np.copyto(self.g_area_max, red[parts["gmax"]].reshape(d, n))
        self._t_se = 0.0

    def _exchange_lagged(self, dev: Lagged) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Finish this tick on the device (its metric gradient when it publishes one),
        start reading its buffer back, and return the previous tick's (zeros when no
        tick is behind this one: the first after a start or a reset)."""
        if self.tick % self.params.metric_grad_every == 0:
            self._complete_metric_window()
            dev.metric_grad_finish_red()
        slot = self.tick & 1
        dev.submit_red(slot)
        red = dev.collect_red(slot ^ 1) if self._in_flight else self._nothing
        self._in_flight = True
        parts = self._red_parts
        np.copyto(self._s_eff_report, red[parts["s_eff"]])
        self.result.cfl_clamps = int(np.count_nonzero(red[parts["clamped"]]))
        self._mg_reported = red[parts["mg"]]
        return red

    def _metric_slice(self, j: int) -> None:
        c0, c1 = self._mg_slices[j]
        if c1 > c0:
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            sliced.metric_grad_part(self.g, c0, c1)
        self._mg_done[j] = True

    def _complete_metric_window(self) -> None:
        """Measure the slices of this window not yet measured (all of them when the
        metric is not spread) on the current g."""
        for j in np.flatnonzero(~self._mg_done):
            self._metric_slice(int(j))
        if not self.spread_metric_grad:
            self._mg_done[:] = False

    def _metric_gradient(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        if self.lagged:  # measured on the device when the reported tick ran
            np.copyto(self._mg_sums, self._mg_reported)
        elif self.spread_metric_grad:
            self._complete_metric_window()
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            sliced.metric_grad_finish(self._mg_sums)
        else:
            self.executor.metric_grad(self.g, self._mg_sums)
        np.divide(self._mg_sums, self._area_nodes, out=out)

    def _g_replaced(self) -> None:
        if self.spread_metric_grad or self.lagged:
            self._mg_done[:] = False  # slices measured on the old g are void
        if self.lagged:
            self._gmax_stale = True
            self._in_flight = False  # the tick behind described the replaced state

    def _count_nonfinite(self) -> int:
        xp = self.xp
        bad = xp.zeros(self.lattice.shape, dtype=bool)  # failure path: allocation is fine
        for a in (self.psi, self.pi):
            bad |= ~xp.isfinite(a)
        return int(xp.count_nonzero(bad))

    def _refresh_scratch(self) -> tuple[Any, Any, Any]:
        return self._scratch
