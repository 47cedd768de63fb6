"""The CUDA kernels compute what the NumPy twin computes.

Without a GPU the source is still exercised two ways: NVRTC and ptxas compile it for
sm_90 (registers and spills checked), and the host build — the kernels' per-node and
per-thread functions compiled by the C++ compiler, each block's threads run in turn — is
stepped next to the NumPy twin, in the parity build and in the FMA-contracted stand-in
for the production build. On a GPU the fused kernels themselves are compared with the
twin (``gpu`` marker)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from engs.services.physics import cuda_check, noise
from engs.services.physics.backend import probe_cupy, select_backend
from engs.services.physics.cfl import area_lambda_bound, previous_area
from engs.services.physics.coefficients import (
    Coefficients,
    PhysicsParams,
    TickTable,
    derive_tick_table,
)
from engs.services.physics.cuda_source import (
    BLOCK,
    FORCE_MIN_BLOCKS,
    KERNEL_NAMES,
    MAX_NODES_PER_THREAD,
    MIN_BLOCKS,
    NVRTC_OPTIONS,
    NVRTC_PARITY_OPTIONS,
    SETTLE_MIN_BLOCKS,
    chunks,
    index_dtype,
    module_source,
    red_layout,
    red_len,
)
from engs.services.physics.field import Field, make_field
from engs.services.physics.host_kernels import HostExecutor, HostKernelField, compiler
from engs.services.physics.lattice import Lattice
from engs.services.physics.reductions import StepResult
from engs.shared.config import PhysicsConfig
from tests.services.physics.support import (
    assert_reports_and_recovers_nonfinite,
    config,
    random_field,
)

SHAPES = [(40,), (12, 10), (6, 5, 4), (3,) * 9]


_CUPY, _WHY = probe_cupy()
needs_gpu = pytest.mark.skipif(_CUPY is None, reason=f"needs CuPy and a CUDA device: {_WHY}")


def cuda_field(cfg: PhysicsConfig, parity: bool, sliced: bool) -> Field:
    from engs.services.physics.gpu import CudaField

    build = type("Build", (CudaField,), {"parity": parity, "spread_metric_grad": sliced})
    return build(cfg, select_backend("cupy"))


def workload(n_areas: int) -> Coefficients:
    """Everything on: drive, stimulus, noise, plasticity, different speeds (one above
    the CFL limit), per-area damping."""
    c = Coefficients(n_areas)
    c.drive[:] = np.linspace(1.0, 0.0, n_areas)
    c.stimulus[:] = 0.5
    c.speed[:] = [1.0, 30.0, 0.7][:n_areas]
    c.plasticity[:] = [2.0, 1.0, 0.0][:n_areas]
    c.elasticity[:] = [0.5, 3.0, 1.0][:n_areas]
    c.damping[:] = [0.0, 5.0, 1.0][:n_areas]
    return c


def reported(r: StepResult) -> tuple[list[float], int, list[float]]:
    """What a step reported: (the float figures, the CFL clamps, the speed factors)."""
    names = ("energy", "hamiltonian", "entropy_bits", "kinetic_cost", "metabolic_cost")
    floats = [getattr(r, name) for name in names]
    floats += [*r.area_activity, *r.area_metric_grad]
    return floats, r.cfl_clamps, list(r.speed_factor)


def run_pair(a: Field, b: Field, ticks: int) -> list[tuple[float, float]]:
    """Step both fields through the same ``ticks`` ticks (plus the lag of the slower
    reporter, so both report every tick) and pair their reports tick by tick."""
    n = a.lattice.n_areas
    c = workload(n)
    psi = random_field(a.lattice.shape, 1)
    for f in (a, b):
        f.set_state(psi=psi, pi=random_field(a.lattice.shape, 2, 10.0), coeffs=c)
    seen: list[dict[int, tuple[list[float], int, list[float]]]] = [{}, {}]
    for t in range(ticks + max(a.report_lag, b.report_lag)):
        for f, got in zip((a, b), seen, strict=True):
            r = f.step(c, critical=(t % 7 == 3))
            if r.tick >= 0:
                assert r.tick not in got and r.tick == t - f.report_lag
                got[r.tick] = reported(r)
            else:  # a lagged field's first steps: no tick behind them yet
                assert t < f.report_lag and r.tick == -1 and r.energy == 0.0 == r.cfl_clamps
        c.stimulus[:] = 0.0
    pairs = []
    for t in range(ticks):
        (fa, clamps_a, speed_a), (fb, clamps_b, speed_b) = seen[0][t], seen[1][t]
        assert clamps_a == clamps_b and clamps_a >= 1
        np.testing.assert_allclose(speed_a, speed_b, rtol=1e-6)  # g agrees to ~1e-7
        pairs += list(zip(fa, fb, strict=True))
    return pairs


def assert_same_trajectory(a: Field, b: Field, ticks: int = 60) -> None:
    pairs = run_pair(a, b, ticks)
    x, y = np.array(pairs).T
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-9)
    for get in ("psi_host", "pi_host"):
        u, v = getattr(a, get)(), getattr(b, get)()
        assert np.abs(u - v).max() <= 1e-5 * np.abs(u).max()
    np.testing.assert_allclose(a.g_host(), b.g_host(), rtol=1e-6)


needs_cxx = pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the host build")

try:
    with open("/proc/cpuinfo", encoding="ascii") as _f:
        _FMA_CPU = "fma" in _f.read().split()
except OSError:
    _FMA_CPU = False
# the FMA stand-in is compiled with -mfma: it would fault on a CPU without FMA
needs_fma = pytest.mark.skipif(not _FMA_CPU, reason="this CPU has no FMA instructions")


class FmaHostField(HostKernelField):
    fma = True


class SlicedHostField(HostKernelField):
    spread_metric_grad = True


class LaggedHostField(HostKernelField):
    lagged = True


class PipelinedHostField(HostKernelField):
    pipelined = True


class ProductionHostField(HostKernelField):  # the GPU's build and schedule, metric whole
    fma = True
    pipelined = True


class GpuLikeHostField(ProductionHostField):  # ... and its metric gradient sliced
    spread_metric_grad = True


@needs_cxx
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(HostKernelField, id="parity"),
        pytest.param(FmaHostField, id="fma", marks=needs_fma),
        pytest.param(LaggedHostField, id="lagged"),
        pytest.param(PipelinedHostField, id="pipelined"),
        pytest.param(ProductionHostField, id="production", marks=needs_fma),
    ],
)
def test_host_build_of_cuda_source_matches_numpy_twin(
    shape: tuple[int, ...], build: type[HostKernelField]
) -> None:
    # The FMA build (the production stand-in) stays inside the same stated tolerance
    # (docs/physics.md §7: measured 7e-6 relative on the sums, 7e-7 of max|Ψ|).
    cfg = config(shape, areas=3, noise_amplitude=0.5)
    assert_same_trajectory(Field(cfg), build(cfg))


@needs_cxx
@needs_fma
def test_fma_build_really_contracts_multiply_adds() -> None:
    # else the tolerance test above would not be measuring the production build's drift
    cfg = config((12, 10), areas=3, noise_amplitude=0.5)
    builds, c = [HostKernelField(cfg), FmaHostField(cfg)], workload(3)
    for f in builds:
        f.set_state(psi=random_field((12, 10), 1), pi=random_field((12, 10), 2, 10.0), coeffs=c)
        for _ in range(5):
            f.step(c)
    assert not np.array_equal(builds[0].psi_host(), builds[1].psi_host())


def node_metric_grad(g: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """|∇g| at every node, flat (float64 reference of the kernels' node_metric_grad)."""
    g = g.astype(np.float64)
    s = sum(((np.roll(g, -1, axis=1 + j) - g) ** 2).sum(axis=0) for j in range(g.ndim - 1))
    return np.sqrt(s).reshape(-1)


@pytest.mark.parametrize("shape", [(40,), (12, 10), (3,) * 9], ids=str)
@pytest.mark.parametrize(
    "where",
    [
        pytest.param("host", marks=needs_cxx),
        pytest.param("host-pipelined", marks=[needs_cxx, needs_fma]),
        pytest.param("gpu", marks=[pytest.mark.gpu, needs_gpu]),
    ],
)
def test_sliced_metric_gradient_covers_each_node_once_per_window(
    shape: tuple[int, ...], where: str
) -> None:
    every = 4
    cfg = config(shape, areas=3, metric_grad_every=every)
    builds = {"host": SlicedHostField, "host-pipelined": GpuLikeHostField}
    f = builds[where](cfg) if where in builds else cuda_field(cfg, parity=True, sliced=True)
    lat, ch, c = f.lattice, f.executor.chunks, workload(3)  # type: ignore[attr-defined]
    f.set_state(psi=random_field(shape, 1), pi=random_field(shape, 2, 10.0), coeffs=c)
    slices = ch.slices(every)
    first = ch.first.astype(np.int64)
    measured = np.zeros(lat.n_nodes)  # |∇g| of each node, when its slice was measured
    want: dict[int, list[float]] = {}  # per publishing tick, the area means expected
    compared = 0
    reset = 11  # g replaced mid-window (ticks 9..12): slices 0 and 1 become void
    behind = int(f.pipelined)  # a pipelined step runs the force of the tick before
    for t in range(23 + f.report_lag):
        if t == reset:  # (a pipelined field completes its pending half tick first)
            f.set_state(g=np.full((lat.ndim, *shape), 1.5, np.float32), coeffs=c)
        r = f.step(c)
        tm = t - behind  # the tick whose force (and metric slice) this step ran
        if tm >= 0 and not (behind and t == reset):  # (else the step only kicked)
            g = f.g.get() if hasattr(f.g, "get") else f.g  # raw: g_host() would settle
            per_node = node_metric_grad(g)
            j = (tm - 1) % every
            lo, hi = first[slices[j][0]], first[slices[j][1]]
            measured[lo:hi] = per_node[lo:hi]
            if tm % every == 0:
                # this window's slices, and any not measured since the window began (the
                # first publication, and the one after set_state), are taken at this tick
                window = range(tm - every + 1, tm + 1)
                fresh = [(u - 1) % every for u in window if u >= 0 and not u < reset <= tm]
                for k in set(range(every)) - set(fresh):
                    lo, hi = first[slices[k][0]], first[slices[k][1]]
                    measured[lo:hi] = per_node[lo:hi]
                want[tm] = [
                    measured[b0 * lat.row_size : b1 * lat.row_size].mean()
                    for b0, b1 in itertools.pairwise(lat.area_bounds)
                ]
        if r.tick in want:  # the tick it reports (late when lagged) published
            np.testing.assert_allclose(r.area_metric_grad, want[r.tick], rtol=1e-6)
            compared += 1
    assert compared == 6  # publishing ticks 0, 4, ..., 20


@needs_cxx
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(HostKernelField, id="sync"),
        pytest.param(GpuLikeHostField, id="gpu-like", marks=needs_fma),
    ],
)
def test_fused_sums_are_the_same_bit_for_bit_run_to_run(build: type[HostKernelField]) -> None:
    cfg = config((24, 20), areas=3, noise_amplitude=0.5)
    runs = []
    for _ in range(2):
        f, c = build(cfg), workload(3)
        f.set_state(psi=random_field((24, 20), 1), coeffs=c)
        runs.append([reported(f.step(c)) for _ in range(12)])
    assert runs[0] == runs[1]


_NO_NVRTC = cuda_check.available()
needs_nvrtc = pytest.mark.skipif(bool(_NO_NVRTC), reason=f"no CUDA compiler: {_NO_NVRTC}")

# every dimensionality, the 6^9 target, a long 1-D and a lopsided 2-D (1 << 16 rows)
COMPILE_SHAPES = [
    (4096,), (64, 64), (32, 32, 32), (4,) * 4, (8,) * 5, (4,) * 6, (4,) * 7, (6,) * 7,
    (3,) * 8, (6,) * 8, (3,) * 9, (6,) * 9, (1 << 16, 2),
]  # fmt: skip


@needs_nvrtc
@pytest.mark.parametrize("shape", COMPILE_SHAPES, ids=str)
def test_cuda_module_compiles_for_sm90_without_spills(shape: tuple[int, ...]) -> None:
    # NVRTC (as CuPy runs it) and ptxas, no GPU needed: a CUDA-only error shows here.
    lat = Lattice.build(shape, ["a", "b", "c"])
    for options in (NVRTC_OPTIONS, NVRTC_PARITY_OPTIONS):
        usage = cuda_check.ptxas_usage(cuda_check.compile_ptx(module_source(lat), options))
        assert set(usage) == set(KERNEL_NAMES)
        for name, u in usage.items():
            assert u.spill_stores == 0 and u.spill_loads == 0, (name, options, u)
        hot, settle = usage["force_kick_drift"], usage["force_kick_plasticity"]
        assert hot.registers * BLOCK * FORCE_MIN_BLOCKS <= 65536, hot
        assert settle.registers * BLOCK * SETTLE_MIN_BLOCKS <= 65536, settle


@needs_nvrtc
def test_cuda_module_compiles_with_more_areas_than_a_block_has_threads() -> None:
    lat = Lattice.build((1024, 4), [f"a{i}" for i in range(300)])  # clamp_table loops
    usage = cuda_check.ptxas_usage(cuda_check.compile_ptx(module_source(lat), NVRTC_OPTIONS))
    assert set(usage) == set(KERNEL_NAMES)


@needs_nvrtc
def test_cuda_compile_errors_name_the_line() -> None:
    lat = Lattice.build((8, 8), ["a"])
    broken = module_source(lat).replace("part_store(p, c, part, part_max);", "part_store(p);")
    with pytest.raises(RuntimeError, match=r"(?s)engs_physics\.cu\(\d+\): error.*part_store\(p\)"):
        cuda_check.compile_ptx(broken, NVRTC_OPTIONS)


@pytest.mark.parametrize("shape", [(40,), (64, 64), (7, 5, 3), (6,) * 9, (1 << 16, 2)], ids=str)
def test_chunks_are_area_pure_and_cover_every_node_once(shape: tuple[int, ...]) -> None:
    lat = Lattice.build(shape, ["a", "b", "c"])
    ch = chunks(lat)
    first = ch.first.astype(np.int64)
    assert first[0] == 0 and first[-1] == lat.n_nodes and np.all(np.diff(first) > 0)
    assert np.all(np.diff(first) <= ch.length) and ch.length % BLOCK == 0
    assert ch.length <= BLOCK * MAX_NODES_PER_THREAD
    area = lat.area_of_row[first[:-1] // lat.row_size]
    last_area = lat.area_of_row[(first[1:] - 1) // lat.row_size]
    np.testing.assert_array_equal(area, last_area)  # a chunk lies in one area
    for a in range(lat.n_areas):
        c0, c1 = ch.area_first[a], ch.area_first[a + 1]
        assert np.all(area[c0:c1] == a)
        assert first[c1] - first[c0] == lat.area_nodes[a]
    for n_slices in (1, 3, 10, ch.n + 5):
        bounds = ch.slices(n_slices)
        assert bounds[0][0] == 0 and bounds[-1][1] == ch.n
        assert all(b[0] == a[1] for a, b in itertools.pairwise(bounds))
    if lat.n_nodes >= BLOCK * MIN_BLOCKS:  # large lattices: about MIN_BLOCKS blocks
        assert MIN_BLOCKS <= ch.n <= 2 * MIN_BLOCKS + lat.n_areas
    assert index_dtype(lat) is (np.int32 if lat.ndim * lat.n_nodes < 2**31 else np.int64)


def test_noise_is_standard_complex_normal_and_counter_based() -> None:
    sc = noise.NoiseScratch(np, 200_000)
    xi = np.empty(200_000, np.complex64)
    key = noise.stream_key(1)
    noise.complex_normal(np, key, 5, xi, sc)
    assert abs(np.mean(np.abs(xi) ** 2) - 1.0) < 0.01
    assert abs(np.var(xi.real) - 0.5) < 0.01 and abs(np.var(xi.imag) - 0.5) < 0.01
    assert abs(np.mean(xi.real * xi.imag)) < 0.01
    again = np.empty_like(xi)
    noise.complex_normal(np, key, 5, again, sc)
    np.testing.assert_array_equal(xi, again)  # a pure function of (seed, tick, node)
    noise.complex_normal(np, key, 6, again, sc)
    assert abs(np.corrcoef(xi.real, again.real)[0, 1]) < 0.01


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", [*SHAPES, (64, 64)], ids=str)
@pytest.mark.parametrize("parity", [True, False], ids=["parity", "production"])
def test_cupy_fused_kernels_match_numpy_twin(shape: tuple[int, ...], parity: bool) -> None:
    cfg = config(shape, areas=3, noise_amplitude=0.5)
    assert_same_trajectory(Field(cfg), cuda_field(cfg, parity, sliced=False))


@pytest.mark.gpu
@needs_gpu
def test_cupy_backend_is_the_production_build_with_the_metric_sliced() -> None:
    f = make_field(config((8, 8)), select_backend("cupy"))
    assert f.spread_metric_grad and f.pipelined and not f.parity  # type: ignore[attr-defined]
    assert f.report_lag == 2


@pytest.mark.gpu
@needs_gpu
def test_cupy_sums_are_the_same_bit_for_bit_run_to_run() -> None:
    # no atomics: each block writes its partial row, one block finishes in area order
    cfg = config((6,) * 6, areas=3, noise_amplitude=0.5)
    runs = []
    for _ in range(2):
        f, c = cuda_field(cfg, parity=False, sliced=True), workload(3)
        f.set_state(psi=random_field((6,) * 6, 1), coeffs=c)
        runs.append([reported(f.step(c)) for _ in range(12)])
    assert runs[0] == runs[1]


@needs_cxx
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(HostKernelField, id="sync"),
        pytest.param(GpuLikeHostField, id="gpu-like", marks=needs_fma),
    ],
)
def test_fused_field_reports_and_recovers_nonfinite(build: type[HostKernelField]) -> None:
    # The non-finite path of the fused (GPU) field, run on the host build.
    assert_reports_and_recovers_nonfinite(build)


@needs_cxx
def test_device_cfl_clamp_is_the_hosts_bit_for_bit() -> None:
    cfg = config((12, 10, 4), areas=3)
    params, lat = PhysicsParams.from_config(cfg), Lattice.build((12, 10, 4), ["a", "b", "c"])
    red = np.zeros(red_len(lat))
    ex = HostExecutor(lat, red)
    parts = red_layout(lat)
    rng = np.random.default_rng(5)
    bound, scratch = np.zeros(3), np.zeros((3, 3))
    clamped_somewhere = 0
    for trial in range(300):
        gmax = rng.uniform(params.g_min, params.g_max, (3, 3))
        if trial % 10 == 0:
            gmax[rng.integers(3), rng.integers(3)] = np.nan  # a non-finite metric
        c = Coefficients(3)
        c.speed[:] = rng.choice([0.0, 1.0, rng.uniform(0, 3), rng.uniform(3, 200)], 3)
        host, raw = TickTable(3), TickTable(3)
        area_lambda_bound(gmax, previous_area(3), scratch, bound)
        clamps = derive_tick_table(c, params, bound, trial, trial % 3 == 0, host)
        derive_tick_table(c, params, np.zeros(3), trial, trial % 3 == 0, raw)
        ex.set_gmax(gmax)
        ex.upload_table(raw.table)
        ex.upload_speeds(raw.s_eff)
        if trial % 2:  # the previous slot, as the pipelined step clamps it
            ex.upload_table(np.full_like(raw.table, np.nan))
            ex.upload_speeds(np.full(3, np.nan))
        ex.clamp(params.v0, params.v0 * params.h, previous=bool(trial % 2))
        np.testing.assert_array_equal(ex.coef_slots[ex.stage ^ trial % 2], host.table)
        np.testing.assert_array_equal(red[parts["s_eff"]], host.s_eff)
        assert np.count_nonzero(red[parts["clamped"]]) == clamps
        clamped_somewhere += clamps
    assert clamped_somewhere > 100


@needs_cxx
def test_pipelined_schedule_moves_40_bytes_a_node_fewer() -> None:
    cfg = config((6, 5, 4), areas=3)
    two_pass, pipelined = HostKernelField(cfg), ProductionHostField(cfg)
    assert two_pass.bytes_per_step() == 120 * (72 + 16 * 3)
    assert two_pass.bytes_per_step() - pipelined.bytes_per_step() == 40 * 120
