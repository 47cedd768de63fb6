"""The field stepped by the fused kernels of :mod:`cuda_source`.

:class:`FusedField` is :class:`~engs.services.physics.field.Field` with ``_advance``
replaced by the kernels on an :class:`Executor`, one upload of the per-area tick table
and one readback of the reduction buffer per tick. Everything around the kernels — the
tick table, the entropy, the costs, telemetry, recovery — is the base class's, so the
backends share one semantics by construction.

Three executors run the same source: :class:`engs.services.physics.gpu.CupyExecutor` (CUDA,
the GPU backend) and :class:`engs.services.physics.host_kernels.HostExecutor` (the source
compiled for the CPU, used to test the kernels without a GPU); the fused CPU backend's
:class:`engs.services.physics.cpu_kernels.NumbaExecutor` runs its own kernels through the
same interface.

Three schedules, chosen by class attributes (the GPU backend runs the last; the host
build runs each in the tests, so the schedule the GPU runs is tested without one):

* **synchronous** (default): upload the table (clamped on the host), kick-drift, force
  with its sums, read the sums back; the step reports the tick it ran.
* **lagged** (``lagged``): the CFL clamp runs on the executor (``clamp_table``, bit for
  bit the host's), and the sums are read back asynchronously: the step starts the copy
  of this tick's buffer and reports the previous tick's, which has long landed when the
  device keeps up — the host never waits for the device's tick to end.
* **pipelined** (``pipelined``, implies lagged): one kernel runs the force half of tick
  n − 1 and the kick-drift half of tick n, node by node (``force_kick_drift``): F stays
  in registers and Ψ and Π are read once, so a tick moves 40 bytes a node fewer (the
  byte counts are in docs/physics.md §7); Ψ_{n+1} goes to a second buffer (neighbours
  still read Ψ_n). A step then leaves tick n's force pending, and reports tick n − 2.
  Reading or replacing the state first completes the pending half (``_settle``, the
  force kernel alone); the sums of a half completed that way are not reported.

A step with no measured tick behind it (the first ones after a start, or after the state
was replaced or recovered) reports ``tick = -1`` with zero sums.

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


class Pipelined(SlicedMetric, Protocol):
    """An executor for the lagged and pipelined schedules. It holds two table slots:
    ``upload_table`` makes the other one current, so the one before stays available."""

    def upload_speeds(self, s_req: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        """The requested speed factors of the current slot's tick (float64, per area)."""

    def clamp(self, v0: float, v0h: float, previous: bool = False) -> None:
        """Clamp the current (``previous``: the other) slot's speeds by the CFL bound of
        the per-area max g the executor holds; the applied factors and clamps go to its
        buffer."""

    def set_gmax(self, g_area_max: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        """Replace the per-area max g it holds (after g was replaced on the host)."""

    def force(
        self, psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
        previous: bool = False,
    ) -> None: ...  # fmt: skip

    def force_kick_drift(
        self,
        psi: Any,
        psi_out: Any,
        pi: Any,
        g: Any,
        g_next: Any,
        anchor: Any,
        half_h: float,
        g_min: float,
        g_max: float,
        kappa_h: float,
        mu_h: float,
        noise_base: int,
        noise_on: bool,
        shift_on: bool,
        h: float,
    ) -> None:
        """The force half with the other slot's table, the kick-drift half with the
        current slot's, Ψ_{n+1} into ``psi_out``; the sums finished into the buffer."""

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

    #: The lagged schedule (module docstring); the executor must be :class:`Pipelined`.
    lagged = False

    #: The pipelined schedule (module docstring); implies ``lagged``.
    pipelined = False

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        """The executor; ``red`` is the host buffer :meth:`Executor.download_red` fills
        (host executors write their sums straight into it)."""
        raise NotImplementedError

    def _init_backend(self) -> None:
        xp, lat = self.xp, self.lattice
        self.lagged = self.lagged or self.pipelined
        self.red = np.zeros(red_len(lat), dtype=np.float64)
        self._red_parts = red_layout(lat)
        self._red_views = tuple(self.red[self._red_parts[k]] for k in ("sums", "area_e", "gmax"))
        self._g_area_max_flat = self.g_area_max.reshape(-1)  # a view: (d, n_areas) as in red
        self.executor = self._make_executor(self.red)
        self._mg_sums = np.zeros(lat.n_areas, dtype=np.float64)
        self.entropy_exact = True  # the exact Σ e log e is one more term of the fused sum
        if self.spread_metric_grad or self.lagged:
            sliced: SlicedMetric = self.executor  # type: ignore[assignment]
            every = self.params.metric_grad_every if self.spread_metric_grad else 1
            self._mg_slices = sliced.chunks.slices(every)
            self._mg_done = np.zeros(len(self._mg_slices), dtype=bool)
        self._reported = 0  # the tick the last step reported (-1: none)
        if self.lagged:
            self.report_lag = 2 if self.pipelined else 1
            self._tick_bound = np.zeros(lat.n_areas, dtype=np.float64)  # clamped on device
            self._s_eff_report = np.zeros(lat.n_areas, dtype=np.float64)
            self._nothing = np.zeros_like(self.red)  # what a step with no tick behind reports
            self._in_flight_tick = -1  # the tick being read back (-1: none) ...
            self._in_flight_slot = 0  # ... into this host slot
            self._gmax_stale = True  # the device's per-area max g must be uploaded
            self._pending = False  # pipelined: a tick's force half is still to run
            self._pending_consolidate = False
            if self.pipelined:
                self._psi_next = xp.zeros_like(self.psi)
        # set-up path only (refresh_force): the xp-generic Laplacian and its scratch
        self.rt = RowTable(xp, lat)
        self._scratch = tuple(xp.zeros(lat.shape, dtype=xp.complex64) for _ in range(3))

    # ------------------------------------------------------------------ the tick

    def _consolidation(self, on: bool) -> tuple[float, float]:
        return (self._kappa_h, self._mu_h) if on else (0.0, 0.0)

    def _advance(self) -> None:
        p, tt, lat, ex = self.params, self.table, self.lattice, self.executor
        half_h = 0.5 * p.h
        dev: Pipelined = self.executor  # type: ignore[assignment]
        if self.lagged and self._gmax_stale:
            dev.set_gmax(self.g_area_max)  # measured on the host after g was replaced
            self._gmax_stale = False
        ex.upload_table(tt.table)
        base = tick_base(self.noise_key, self.tick, lat.n_nodes)
        if self.pipelined:
            dev.upload_speeds(tt.s_eff)  # requested: no host bound; clamped next step
            measured = -1
            if self._pending:  # tick n - 1's force, then this tick's kick-drift
                dev.clamp(p.v0, p.v0 * p.h, previous=True)
                kap_h, mu_h = self._consolidation(self._pending_consolidate)
                dev.force_kick_drift(
                    self.psi, self._psi_next, self.pi, self.g, self.g_next, self.g_anchor,
                    half_h, p.g_min, p.g_max, kap_h, mu_h, base, tt.noise_on, tt.shift_on, p.h,
                )  # fmt: skip
                self.psi, self._psi_next = self._psi_next, self.psi
                self.g, self.g_next = self.g_next, self.g
                measured = self.tick - 1
            else:  # nothing pending (start, settled, recovered): the cached force
                ex.kick_drift(self.psi, self.pi, self.force, base, tt.noise_on, tt.shift_on,
                              p.h, half_h)  # fmt: skip
            self._pending, self._pending_consolidate = True, tt.consolidate_on
            red = self._exchange(dev, measured)
        else:
            if self.lagged:
                dev.upload_speeds(tt.s_eff)
                dev.clamp(p.v0, p.v0 * p.h)
            ex.kick_drift(self.psi, self.pi, self.force, base, tt.noise_on, tt.shift_on,
                          p.h, half_h)  # fmt: skip
            kap_h, mu_h = self._consolidation(tt.consolidate_on)
            ex.force(
                self.psi, self.pi, self.force, self.g, self.g_next, self.g_anchor, half_h,
                p.g_min, p.g_max, kap_h, mu_h,
            )  # fmt: skip
            self.g, self.g_next = self.g_next, self.g
            if self.lagged:
                red = self._exchange(dev, self.tick)
            else:
                if self.spread_metric_grad:
                    self._metric_slice_of(self.tick)
                ex.download_red(self.red)
                red, self._reported = self.red, self.tick
        if red is self.red:  # the synchronous schedules: views made once
            sums, area_e, gmax = self._red_views
        else:
            parts = self._red_parts
            sums, area_e, gmax = red[parts["sums"]], red[parts["area_e"]], red[parts["gmax"]]
        np.copyto(self.sums, sums)
        np.copyto(self.area_e, area_e)
        np.copyto(self._g_area_max_flat, gmax)
        self._t_se = 0.0

    def _exchange(self, dev: Pipelined, measured: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Lagged schedules: finish tick ``measured`` (-1: none this step) on the device
        — its metric slice, its metric gradient when it publishes — and start reading its
        buffer back; return the buffer read back by the step before (zeros when none)."""
        slot = self.tick & 1
        if measured >= 0:
            if self.spread_metric_grad:
                self._metric_slice_of(measured)
            if measured % self.params.metric_grad_every == 0:
                self._complete_metric_window()
                dev.metric_grad_finish_red()
            dev.submit_red(slot)
        red = self._nothing if self._in_flight_tick < 0 else dev.collect_red(self._in_flight_slot)
        self._reported = self._in_flight_tick
        self._in_flight_tick, self._in_flight_slot = measured, slot
        parts = self._red_parts
        np.copyto(self._s_eff_report, red[parts["s_eff"]])
        self.result.cfl_clamps = int(np.count_nonzero(red[parts["clamped"]]))
        self._mg_reported = red[parts["mg"]]
        return red

    def _report_tick(self) -> int:
        return self._reported

    # ------------------------------------------------------------------ metric gradient

    def _metric_slice_of(self, tick: int) -> None:
        """The slice of ``tick``'s window (the window ends at ticks ≡ 0)."""
        j = (tick - 1) % len(self._mg_slices)
        if j == 0:
            self._mg_done[:] = False
        self._metric_slice(j)

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

    # ------------------------------------------------------------------ state

    def _settle(self) -> None:
        """Pipelined: run the pending force half alone (its sums are not reported), so
        Ψ, Π, F and g are those at the end of the last tick stepped."""
        if not (self.pipelined and self._pending):
            return
        p = self.params
        dev: Pipelined = self.executor  # type: ignore[assignment]
        dev.clamp(p.v0, p.v0 * p.h)  # the pending tick's table is the current slot
        kap_h, mu_h = self._consolidation(self._pending_consolidate)
        dev.force(
            self.psi, self.pi, self.force, self.g, self.g_next, self.g_anchor, 0.5 * p.h,
            p.g_min, p.g_max, kap_h, mu_h,
        )  # fmt: skip
        self.g, self.g_next = self.g_next, self.g
        self._pending = False

    def _g_replaced(self) -> None:
        if self.spread_metric_grad or self.lagged:
            self._mg_done[:] = False  # slices measured on the old g are void
        if self.lagged:
            self._gmax_stale = True
            self._in_flight_tick = -1  # the tick behind described the replaced state

    def bytes_per_step(self) -> int:
        """The pipelined schedule's compulsory traffic: one kernel reads Ψ, Π, g, c and
        writes Ψ', Π, g', c (4 × 8 B + 4d × 4 B per node), 40 B a node fewer than the
        two-pass minimum of :meth:`Field.bytes_per_step` (F never leaves registers)."""
        if not self.pipelined:
            return super().bytes_per_step()
        return self.lattice.n_nodes * (4 * 8 + 4 * self.lattice.ndim * 4)

    def recover_nonfinite(self) -> int:
        if self.lagged:
            self._pending = False  # a pending half of a non-finite state: dropped
        return super().recover_nonfinite()

    def _count_nonfinite(self) -> int:
        xp = self.xp
        bad = xp.zeros(self.lattice.shape, dtype=bool)  # failure path: allocation is fine
        for a in (self.psi, self.pi):
            bad |= ~xp.isfinite(a)
        return int(xp.count_nonzero(bad))

    def _refresh_scratch(self) -> tuple[Any, Any, Any]:
        return self._scratch
