"""The field: the preallocated physics state and its one-tick step.

:class:`Field` owns Ψ (complex64), Π = ∂Ψ/∂t (complex64), the cached force
F = v² L_g Ψ (complex64), the edge conductances g and their next values (float32,
shape ``(d, *shape)``, double-buffered and swapped each tick), and every scratch
buffer a tick needs. :meth:`Field.step` allocates no array: every kernel writes into
these buffers (host-side it creates only Python scalars).

Writer: the physics loop, one thread. Readers: the same thread (``result``,
``write_telemetry``); nothing here is shared between processes — the loop publishes
the telemetry record through the seqlock.

One tick (ARCHITECTURE §3, seed 003 GAP-022 for the phase coherence):

1. :func:`~engs.services.physics.coefficients.derive_tick_table`: the per-area constants
   from one coherent :class:`~engs.services.physics.coefficients.Coefficients` snapshot,
   the CFL clamp (:mod:`cfl`) and, if ``critical``, the emergency damping;
2. the leapfrog with plasticity (:mod:`integrator`): NumPy twin here, fused CUDA
   kernels in :class:`engs.services.physics.gpu.CudaField`;
3. the reductions (:mod:`reductions`, :mod:`entropy`) and the non-finite check.

Non-finite values are never hidden: a NaN/Inf anywhere in Ψ or Π makes the energy sum
non-finite, the step then counts the bad nodes into ``result.nonfinite`` and reports
the non-finite sums as they are. The field stays non-finite until the loop calls
:meth:`Field.recover_nonfinite` (zero Ψ, Π, F; reset bad conductances to 1).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from engs.services.physics import entropy as ent
from engs.services.physics.backend import Backend, numpy_backend
from engs.services.physics.cfl import area_lambda_bound, previous_area
from engs.services.physics.coefficients import (
    Coefficients,
    PhysicsParams,
    TickTable,
    derive_tick_table,
)
from engs.services.physics.integrator import (
    RowTable,
    SweepScratch,
    drift,
    force_sweep,
    half_kick,
    noise_kick,
)
from engs.services.physics.laplacian import laplacian
from engs.services.physics.lattice import Lattice
from engs.services.physics.noise import NoiseScratch, complex_normal, stream_key
from engs.services.physics.reductions import (
    NSUM,
    S_DG,
    S_GRAD2,
    S_KIN,
    S_POT,
    S_SHADOW,
    S_T,
    S_V,
    FieldSums,
    MetricGradient,
    StepResult,
    hamiltonian,
)
from engs.shared.config import PhysicsConfig

#: Offset of the entropy estimator's stream from the configured seed (the noise uses
#: the seed itself through :func:`noise.stream_key`).
ENTROPY_SEED_OFFSET = 0x5EED


class Field:
    """The physics state of one lattice and the step that advances it (NumPy twin).

    ``cfg``: the physics configuration (shape, areas, constants). ``backend``: from
    :func:`~engs.services.physics.backend.select_backend`; use :func:`make_field` to get the
    GPU subclass when the backend is CuPy.
    """

    #: Ticks between the tick a step runs and the tick its result reports (0: the same;
    #: the GPU backend reports two ticks late, see fused.py).
    report_lag = 0

    def __init__(self, cfg: PhysicsConfig, backend: Backend | None = None) -> None:
        self.cfg = cfg
        self.params = PhysicsParams.from_config(cfg)
        self.lattice = Lattice.build(cfg.shape, cfg.areas)
        self.backend = backend if backend is not None else numpy_backend()
        xp = self.xp
        lat = self.lattice
        n_areas, d = lat.n_areas, lat.ndim
        self.psi = xp.zeros(lat.shape, dtype=xp.complex64)
        self.pi = xp.zeros(lat.shape, dtype=xp.complex64)
        self.force = xp.zeros(lat.shape, dtype=xp.complex64)
        self.g = xp.ones((d, *lat.shape), dtype=xp.float32)
        self.g_next = xp.ones((d, *lat.shape), dtype=xp.float32)
        #: c: the consolidated metric g relaxes to (plasticity.py), updated in place.
        self.g_anchor = xp.ones((d, *lat.shape), dtype=xp.float32)
        self._kappa_h = self.params.h * self.params.kappa
        self._mu_h = self.params.h * self.params.mu
        self.tick = 0
        self.noise_key = stream_key(self.params.seed)
        # host-side per-tick state, shared by both backends
        self.table = TickTable(n_areas)
        self.sums = np.zeros(NSUM, dtype=np.float64)
        self.area_e = np.zeros(n_areas, dtype=np.float64)
        self.g_area_max = np.ones((d, n_areas), dtype=np.float64)
        self.lambda_bound = np.zeros(n_areas, dtype=np.float64)
        self._prev_area = previous_area(n_areas)
        self._lambda_scratch = np.zeros((d, n_areas), dtype=np.float64)
        self._area_nodes = lat.area_nodes.astype(np.float64)
        self._inv_s2_rows = np.zeros(lat.shape[0], dtype=np.float64)
        self._t_se = 0.0  # standard error of T when sampled (0 when exact)
        self.entropy_exact = True
        self.result = StepResult(
            area_activity=np.zeros(n_areas),
            area_metric_grad=np.zeros(n_areas),
            speed_factor=np.zeros(n_areas),
        )
        self._neutral = Coefficients(n_areas)
        #: the bound each tick's table is clamped with on the host (a backend that
        #: clamps on the device passes zeros: no limit, the device applies it)
        self._tick_bound = self.lambda_bound
        #: the speed factors and clamp count the reported tick applied
        self._s_eff_report = self.table.s_eff
        self._init_backend()
        self._update_lambda_bound()

    # ------------------------------------------------------------------ set-up

    @property
    def xp(self) -> ModuleType:
        return self.backend.xp

    def _init_backend(self) -> None:
        """Allocate the NumPy twin's scratch buffers."""
        xp, lat = self.xp, self.lattice
        self.rt = RowTable(xp, lat)
        self.sweep = SweepScratch(xp, lat)
        self.fsums = FieldSums(xp, lat)
        self.metric = MetricGradient(xp, lat)
        self.noise = NoiseScratch(xp, lat.n_nodes)
        self.xi = xp.zeros(lat.shape, dtype=xp.complex64)
        self.g_area_max_dev = xp.zeros((lat.ndim, lat.n_areas), dtype=xp.float32)
        self.entropy_exact = lat.n_nodes <= self.params.entropy_exact_max_nodes
        self.sampler = ent.Sampler(
            np.random.default_rng(self.params.seed + ENTROPY_SEED_OFFSET),
            self.params.entropy_samples,
        )

    # ------------------------------------------------------------------ the tick

    def step(self, coeffs: Coefficients, critical: bool = False, out: Any = None) -> StepResult:
        """Advance the field by one tick with one coherent coefficient snapshot.

        ``coeffs``: the per-area multipliers of this tick (filled by the loop with
        :meth:`Coefficients.load_state`). ``critical``: a CRITICAL interrupt is set at
        this tick's start: damping is raised to ``emergency_damping``. ``out``: a
        ``engs.shared.layout.telemetry_dtype`` record to fill (:meth:`write_telemetry`), or
        None. Returns :attr:`result` (the same object every tick, overwritten).
        """
        r = self.result
        # Overflow and NaN are reported through ``nonfinite``, not through numpy's
        # warnings machinery (no warning/logging I/O in the 1 kHz loop).
        with np.errstate(all="ignore"):
            r.cfl_clamps = derive_tick_table(
                coeffs, self.params, self._tick_bound, self.tick, critical, self.table
            )
            self._advance()
            np.copyto(self.table.drive_prev, coeffs.drive)  # S(t_{n+1}) now holds A
            self._finish()
        self.tick += 1
        if out is not None:
            self.write_telemetry(out)
        return r

    def _advance(self) -> None:
        """The leapfrog with plasticity, then the sums (NumPy twin of the kernels)."""
        xp, lat, p, tt, rt, s = self.xp, self.lattice, self.params, self.table, self.rt, self.sweep
        half_h = 0.5 * p.h
        rt.load(tt.table)
        half_kick(xp, self.pi, self.force, rt.damp, half_h, s.flux)
        if tt.noise_on:
            complex_normal(xp, self.noise_key, self.tick, self.xi, self.noise)
            noise_kick(xp, self.pi, self.xi, rt.noise)
        drift(xp, self.psi, self.pi, p.h, rt.shift if tt.shift_on else None, s.flux)
        pot, grad2, dg = force_sweep(
            xp, lat, self.psi, self.g, self.g_next, self.pi, self.force, rt, half_h,
            p.g_min, p.g_max, s, self.g_area_max_dev, self.g_anchor,
            self._kappa_h if tt.consolidate_on else 0.0, self._mu_h if tt.consolidate_on else 0.0,
        )  # fmt: skip
        self.g, self.g_next = self.g_next, self.g
        sums = self.sums
        rows = self.fsums.energy_rows(self.psi)
        sums[S_V] = float(rows.sum())
        self.fsums.area_sums(rows, self.area_e)
        if self.entropy_exact:
            sums[S_T] = ent.exact_t(xp, self.fsums.e, s.tmp)
            self._t_se = 0.0
        else:
            sums[S_T], self._t_se = self.sampler.estimate_t(self.fsums.e.reshape(-1))
        np.take(tt.inv_s2, lat.area_of_row, out=self._inv_s2_rows)
        sums[S_KIN] = self.fsums.weighted_square_sum(self.pi, self._inv_s2_rows)
        sums[S_SHADOW] = self.fsums.weighted_square_sum(self.force, self._inv_s2_rows)
        sums[S_POT], sums[S_GRAD2], sums[S_DG] = pot, grad2, dg
        np.copyto(self.g_area_max, self.g_area_max_dev)

    def _metric_gradient(self, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        self.metric.compute(self.g, out)

    def _count_nonfinite(self) -> int:
        return self.fsums.count_nonfinite(self.psi, self.pi)

    def _settle(self) -> None:
        """Hook: complete a half-run tick before the state is read or replaced (the
        pipelined GPU schedule leaves one pending between steps; fused.py)."""

    def _report_tick(self) -> int:
        """The tick this step's result describes (-1: none; see ``report_lag``)."""
        return self.tick

    def _g_replaced(self) -> None:
        """Hook: the conductances were replaced outside the tick (set_state, recovery)."""

    def _finish(self) -> None:
        """Turn the sums into the reported quantities (host, shared by both backends)."""
        p, r, sums = self.params, self.result, self.sums
        r.tick = self._report_tick()
        finite = math.isfinite(float(sums.sum()))  # one NaN/Inf anywhere shows here
        r.nonfinite = 0 if finite else max(1, self._count_nonfinite())
        v = float(sums[S_V])
        r.energy = v
        r.hamiltonian = hamiltonian(sums, p.v0, p.h)
        if self.entropy_exact:
            r.entropy_bits = ent.entropy_from_sums(v, float(sums[S_T]))
            r.entropy_err_bits = 0.0
        else:
            r.entropy_bits, r.entropy_err_bits = ent.sampled_entropy(
                v, float(sums[S_T]), self._t_se
            )
        r.kinetic_cost = float(sums[S_GRAD2]) * p.h
        r.plasticity_work = float(sums[S_DG])
        r.metabolic_cost = (
            p.cost_wave_weight * r.kinetic_cost + p.cost_plasticity_weight * r.plasticity_work
        )
        np.divide(self.area_e, self._area_nodes, out=r.area_activity)
        np.copyto(r.speed_factor, self._s_eff_report)
        if r.tick >= 0 and r.tick % p.metric_grad_every == 0:
            self._metric_gradient(r.area_metric_grad)
        self._update_lambda_bound()

    def _update_lambda_bound(self) -> None:
        area_lambda_bound(self.g_area_max, self._prev_area, self._lambda_scratch, self.lambda_bound)

    # ------------------------------------------------------------------ telemetry

    def write_telemetry(self, out: Any) -> None:
        """Fill the physics-owned fields of a ``telemetry_dtype`` record from
        :attr:`result`: n_nodes, cfl_clamps and nonfinite (this tick's counts), n_areas,
        backend, energy, hamiltonian, entropy_bits, entropy_err_bits, kinetic_cost,
        metabolic_cost, area_activity, area_metric_grad (rows beyond n_areas zeroed).
        The loop fills the timing, ``applied_*``, interrupt and mode fields."""
        r = self.result
        n = self.lattice.n_areas
        out["n_nodes"] = self.lattice.n_nodes
        out["cfl_clamps"] = r.cfl_clamps
        out["nonfinite"] = r.nonfinite
        out["n_areas"] = n
        out["backend"] = self.backend.code
        out["energy"] = r.energy
        out["hamiltonian"] = r.hamiltonian
        out["entropy_bits"] = r.entropy_bits
        out["entropy_err_bits"] = r.entropy_err_bits
        out["kinetic_cost"] = r.kinetic_cost
        out["metabolic_cost"] = r.metabolic_cost
        for name, src in (
            ("area_activity", r.area_activity),
            ("area_metric_grad", r.area_metric_grad),
        ):
            dst = out[name]
            dst[:n] = src
            dst[n:] = 0.0

    # ------------------------------------------------------------------ recovery

    def recover_nonfinite(self) -> int:
        """Documented recovery after a non-finite tick: zero Ψ, Π and F everywhere and
        reset every non-finite conductance to 1 (the identity metric).

        Why zero the whole field rather than the bad nodes: one tick of the stencil
        spreads a NaN to all 2d neighbours, and partial repair would leave a field
        inconsistent with its cached force. Learned conductances that are finite are
        kept. Returns the number of non-finite conductances reset. Call it from the
        loop when ``result.nonfinite`` > 0 (and raise SCRAM); it allocates (a mask).
        """
        xp = self.xp
        for a in (self.psi, self.pi, self.force):
            a.fill(0)
        reset = 0
        for g in (self.g, self.g_next):
            bad = ~xp.isfinite(g)
            reset += int(xp.count_nonzero(bad)) if g is self.g else 0
            xp.copyto(g, xp.float32(1.0), where=bad)
        xp.copyto(self.g_anchor, xp.float32(1.0), where=~xp.isfinite(self.g_anchor))
        self._measure_g_area_max()
        self._update_lambda_bound()
        self._g_replaced()
        return reset

    # ------------------------------------------------------------------ state access

    def set_state(
        self,
        psi: Any = None,
        pi: Any = None,
        g: Any = None,
        coeffs: Coefficients | None = None,
        anchor: Any = None,
    ) -> None:
        """Replace (parts of) the state and make the cached force consistent with it.

        ``psi``, ``pi``: complex, lattice shape (field units, field/s). ``g``: float,
        shape ``(d, *shape)``, clamped to [g_min, g_max]; the consolidated metric becomes
        ``anchor`` (same shape, clamped alike) or, when only ``g`` is given, g itself (a
        metric set from outside is taken as consolidated). ``coeffs``: the coefficients
        the first tick will use (neutral if None), so that the first half kick uses
        F = v² L_g Ψ at the speeds that tick applies. Not for the hot loop.
        """
        self._settle()
        xp = self.xp
        if psi is not None:
            xp.copyto(self.psi, xp.asarray(psi, dtype=xp.complex64))
        if pi is not None:
            xp.copyto(self.pi, xp.asarray(pi, dtype=xp.complex64))
        if g is not None:
            xp.copyto(self.g, xp.asarray(g, dtype=xp.float32))
            xp.clip(self.g, self.params.g_min, self.params.g_max, out=self.g)
            xp.copyto(self.g_next, self.g)
        if anchor is not None or g is not None:
            xp.copyto(self.g_anchor, self.g if anchor is None else xp.asarray(anchor, xp.float32))
            xp.clip(self.g_anchor, self.params.g_min, self.params.g_max, out=self.g_anchor)
        self._measure_g_area_max()
        self._update_lambda_bound()
        if g is not None:
            self._g_replaced()
        self.refresh_force(coeffs if coeffs is not None else self._neutral)

    def refresh_force(self, coeffs: Coefficients) -> None:
        """Recompute the cached force F = v² L_g Ψ with ``coeffs``' (clamped) speeds."""
        self._settle()
        xp, lat = self.xp, self.lattice
        derive_tick_table(coeffs, self.params, self.lambda_bound, self.tick, False, self.table)
        rt = self._refresh_rows()
        rt.load(xp.asarray(self.table.table))
        lap, diff, flux = self._refresh_scratch()
        laplacian(xp, lat, self.psi, self.g, lap, diff, flux)
        xp.multiply(lap, rt.c2, out=self.force)

    def _refresh_rows(self) -> RowTable:
        return self.rt

    def _refresh_scratch(self) -> tuple[Any, Any, Any]:
        s = self.sweep
        return s.lap, s.nb, s.flux

    def warm_up(self) -> None:
        """Run every array operation of the rare paths once, on scratch copies: the
        non-finite count, the recovery's masked resets and the per-area maxima of g.
        A backend that compiles a kernel on its first use (CuPy's elementwise and
        reduction kernels: tens to hundreds of ms each) then does it at start-up, not
        inside the tick that first meets a NaN. Leaves the state untouched."""
        xp = self.xp
        self._count_nonfinite()
        for a in (self.psi, self.g, self.g_anchor):
            scratch = a.copy()
            bad = ~xp.isfinite(scratch)
            int(xp.count_nonzero(bad))
            xp.copyto(scratch, a.dtype.type(1.0), where=bad)
            scratch.fill(0)
        b = self.lattice.area_bounds
        float(self.g[0, b[0] : b[1]].max())

    def _measure_g_area_max(self) -> None:
        """G_{a,k} from the current g (set-up and recovery path; loops over areas)."""
        lat = self.lattice
        b = lat.area_bounds
        for k in range(lat.ndim):
            for a in range(lat.n_areas):
                self.g_area_max[k, a] = float(self.g[k, b[a] : b[a + 1]].max())

    def psi_host(self) -> np.ndarray[Any, np.dtype[np.complex64]]:
        """A host copy of Ψ (complex64, lattice shape)."""
        self._settle()
        return np.array(_to_host(self.psi), dtype=np.complex64)

    def pi_host(self) -> np.ndarray[Any, np.dtype[np.complex64]]:
        self._settle()
        return np.array(_to_host(self.pi), dtype=np.complex64)

    def g_host(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A host copy of the conductances (float32, ``(d, *shape)``)."""
        self._settle()
        return np.array(_to_host(self.g), dtype=np.float32)

    def anchor_host(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A host copy of the consolidated metric c (float32, ``(d, *shape)``)."""
        self._settle()
        return np.array(_to_host(self.g_anchor), dtype=np.float32)

    def bytes_per_step(self) -> int:
        """Compulsory memory traffic of one tick, in bytes (see :mod:`bench`).

        NumPy twin: its ufunc passes each stream whole arrays; this counts the
        *algorithmic minimum* both backends share (the fused kernels reach it):
        kick-drift reads Ψ, Π, F and writes Ψ, Π (5 × 8 B per node); the force
        sweep reads Ψ, Π, g, c and writes Π, F, g', c (4 × 8 B + 4d × 4 B per node),
        assuming the 2d neighbour reads of Ψ and g hit cache."""
        d = self.lattice.ndim
        return self.lattice.n_nodes * (5 * 8 + 4 * 8 + 4 * d * 4)


def _to_host(a: Any) -> Any:
    get = getattr(a, "get", None)
    return get() if callable(get) else a


def make_field(cfg: PhysicsConfig, backend: Backend) -> Field:
    """The field for ``backend``: :class:`Field` on NumPy, the fused kernels of
    :class:`engs.services.physics.cpu_kernels.NumbaField` on numba and of
    :class:`engs.services.physics.gpu.CudaField` on CuPy (each imported only then)."""
    if backend.name == "cupy":
        from engs.services.physics.gpu import CudaField  # noqa: PLC0415 - lazy: this imports cupy

        return CudaField(cfg, backend)
    if backend.name == "numba":
        from engs.services.physics.cpu_kernels import NumbaField  # noqa: PLC0415 - lazy: numba

        return NumbaField(cfg, backend)
    return Field(cfg, backend)
