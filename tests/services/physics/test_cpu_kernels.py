"""The fused CPU backend (numba) computes what the NumPy twin computes.

The tolerance, stated once: with the noise off the fused kernels keep the twin's
operation order node by node, so Ψ, Π and g are **bit-identical** to the twin's on
every dimensionality; only the float64 sums (energy, Hamiltonian, entropy, costs) are
added in another order, within 2·10⁻⁵ relative. With the noise on, the Box–Muller
and entropy terms come from this module's own float32 ln/log₂/sin/cos (≤ 2 ulp, as
NumPy's SIMD loops are) instead of NumPy's, so states differ in the last bits and the
comparison is ``assert_same_trajectory``'s (the same bound the CUDA source's host
build meets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from numba.core.runtime import _nrt_python as nrt_python
from numba.core.runtime import rtsys

from engs.services.physics.backend import select_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.cpu_kernels import (
    NumbaField,
    fused_tick,
    ln_f32,
    log2_f32,
    metric_grad,
    segment_tables,
    self_test,
    sincos_f32,
)
from engs.services.physics.field import Field, make_field
from engs.services.physics.lattice import Lattice
from tests.services.physics.support import (
    TracedAllocations,
    assert_reports_and_recovers_nonfinite,
    config,
    random_field,
)
from tests.services.physics.test_kernels import assert_same_trajectory, run_pair

#: One lattice per dimensionality 1 … 9 (1-D: three areas on one periodic line), with
#: long and short last axes, so both walks (by lines, by runs with neighbour tables) run.
SHAPES = [(40,), (12, 10), (6, 5, 40), (4, 3, 3, 5), *[(3,) * d for d in range(5, 10)]]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fused_cpu_kernels_match_numpy_twin_with_noise(shape: tuple[int, ...]) -> None:
    cfg = config(shape, areas=3, noise_amplitude=0.5)
    assert_same_trajectory(Field(cfg), NumbaField(cfg))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fused_cpu_kernels_are_bit_identical_to_twin_without_noise(shape: tuple[int, ...]) -> None:
    cfg = config(shape, areas=3, noise_amplitude=0.0)
    a, b = Field(cfg), NumbaField(cfg)
    pairs = run_pair(a, b, 40)  # drive, stimulus, plasticity, a CFL clamp, CRITICAL ticks
    np.testing.assert_array_equal(a.psi_host(), b.psi_host())
    np.testing.assert_array_equal(a.pi_host(), b.pi_host())
    np.testing.assert_array_equal(a.g_host(), b.g_host())
    x, y = np.array(pairs).T
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-9)


def test_a_wrong_kernel_is_caught_by_the_parity_check() -> None:
    """The bit-identity check can fail: one flipped bit of Ψ after a tick is seen."""
    cfg = config((12, 10), areas=3)
    a, b = Field(cfg), NumbaField(cfg)
    run_pair(a, b, 2)
    b.psi.reshape(-1).view(np.uint32)[17] ^= 1
    assert not np.array_equal(a.psi_host(), b.psi_host())


@numba.njit
def _eval(x: Any, out: Any) -> None:
    for i in range(x.size):
        out[0, i] = ln_f32(x[i])
        out[1, i] = log2_f32(x[i])
        s, c = sincos_f32(x[i])
        out[2, i] = s
        out[3, i] = c


def _ulps(got: Any, ref: Any) -> Any:
    return np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(np.float32))


def test_float32_transcendentals_are_within_two_ulp() -> None:
    """ln and log₂ over the positive normal float32 (the callers' domain), sin and cos
    over [0, 2π] (the Box–Muller angle), each against float64."""
    rng = np.random.default_rng(3)
    tiny = np.finfo(np.float32).tiny
    x = np.concatenate(
        [rng.uniform(tiny, 1.0, 400_000), np.exp(rng.uniform(-87.0, 88.0, 400_000)),
         [tiny, 0.5, 1.0, 2.0, np.sqrt(2.0), np.sqrt(0.5)]]
    ).astype(np.float32)  # fmt: skip
    x = x[x >= tiny]
    out = np.empty((4, x.size), np.float32)
    _eval(x, out)
    x64 = x.astype(np.float64)
    assert _ulps(out[0], np.log(x64)).max() <= 2.0
    assert _ulps(out[1], np.log2(x64)).max() <= 2.0
    assert out[0][x == 1.0] == 0.0 and out[1][x == 2.0] == 1.0
    th = np.concatenate(
        [rng.uniform(0.0, 2 * np.pi, 800_000), np.arange(9) * np.pi / 4]
    ).astype(np.float32)  # fmt: skip
    out = np.empty((4, th.size), np.float32)
    _eval(th, out)
    t64 = th.astype(np.float64)
    for row, ref in ((2, np.sin(t64)), (3, np.cos(t64))):
        # 2 ulp of the result, plus the argument reduction's |x|·2⁻⁴⁸ near the zeros
        err = np.abs(out[row].astype(np.float64) - ref)
        bound = 2 * np.spacing(np.abs(ref).astype(np.float32)) + t64 * 2.0**-48
        assert (err <= bound).all(), th[err > bound]


def test_energy_drift_is_no_worse_than_the_twin() -> None:
    """Conservative dynamics (no damping, drive, noise or plasticity): the Hamiltonian
    drifts by the integrator's error alone, the same for both backends."""
    cfg = config((16, 16), areas=2)
    c = Coefficients(2)
    c.damping[:] = 0.0
    drift = []
    for f in (Field(cfg), NumbaField(cfg)):
        f.set_state(psi=random_field((16, 16), 5), coeffs=c)
        h0 = f.step(c).hamiltonian
        for _ in range(2000):
            h = f.step(c).hamiltonian
        drift.append(abs(h - h0) / abs(h0))
    assert drift[1] <= drift[0] * (1 + 1e-3) + 1e-9, drift


def test_tick_allocates_nothing() -> None:
    """Neither Python objects that outlive a tick nor numba runtime arrays: the compiled
    tick works in the executor's scratch. numba's NRT counters see one allocation per
    array argument per call (the meminfo wrapping the NumPy array on entry, no data);
    anything allocated inside the kernels would add to that count."""
    shape = (4,) * 8
    f = NumbaField(config(shape, areas=4, noise_amplitude=0.01))
    c = Coefficients(4)
    c.drive[:] = 1.0
    c.stimulus[:] = 0.1
    c.plasticity[:] = 1.0
    for _ in range(12):  # past the first metric-gradient tick
        f.step(c)
    ids = [id(a) for a in (f.psi, f.pi, f.force, f.red)]
    nrt_python.memsys_enable_stats()
    nrt_before = rtsys.get_allocation_stats()
    try:
        with TracedAllocations() as py:
            for _ in range(20):
                f.step(c)
    finally:
        nrt_after = rtsys.get_allocation_stats()
        nrt_python.memsys_disable_stats()
    n_args = {k: sum(isinstance(t, numba.types.Array) for t in k.signatures[0])
              for k in (fused_tick, metric_grad)}  # fmt: skip
    expected = 20 * n_args[fused_tick] + 2 * n_args[metric_grad]  # metric_grad: every 10th
    assert nrt_after.alloc - nrt_before.alloc == expected, (nrt_before, nrt_after, n_args)
    assert nrt_after.free - nrt_before.free == expected
    assert py.peak < 64 * 1024 and py.retained < 16 * 1024
    assert {id(a) for a in (f.psi, f.pi, f.force, f.red)} == set(ids)


def test_fused_cpu_field_reports_and_recovers_nonfinite() -> None:
    assert_reports_and_recovers_nonfinite(NumbaField)


def test_segment_tables_cover_every_node_once_in_area_order() -> None:
    for shape, areas in (((40,), 3), ((6, 5, 4), 3), ((3,) * 9, 2), ((7, 3), 7), ((64, 64), 4)):
        lat = Lattice.build(shape, [f"a{i}" for i in range(areas)])
        w = segment_tables(lat)
        covered = np.zeros(lat.n_nodes, np.int64)
        for start, n, _run, area in w.seg:
            covered[start : start + n] += 1
            assert (lat.area_of_node.reshape(-1)[start : start + n] == area).all()
        assert (covered == 1).all()
        assert w.slab_first[-1] == len(w.seg)


def test_short_trailing_axes_are_walked_as_one_run_with_neighbour_tables() -> None:
    """3⁹: the last four axes (81 nodes) make one run; along each of them the table's
    neighbour of node j is one step from j on that axis alone, periodic."""
    shape = (3,) * 9
    w = segment_tables(Lattice.build(shape, ["a", "b"]))
    t = w.tabs.shape[0]
    assert (t, w.n_run) == (4, 81) and w.nb_plus.shape == (3**5, 5)
    inner = np.array(np.unravel_index(np.arange(w.n_run), shape[-t:]))
    for q in range(t):
        for side, sign in ((0, 1), (1, -1)):
            got = np.array(np.unravel_index(w.tabs[q, side], shape[-t:]))
            want = inner.copy()
            want[q] = (want[q] + sign) % 3
            np.testing.assert_array_equal(got, want)
    assert segment_tables(Lattice.build((64, 64), ["a"])).tabs.shape == (0, 2, 64)


def test_self_test_passes_and_backend_is_selectable() -> None:
    self_test()
    b = select_backend("numba")
    assert b.name == "numba" and b.code == 2
    f = make_field(config((8, 8)), b)
    assert isinstance(f, NumbaField)


_CACHE_PROBE = """
import json, time
t0 = time.perf_counter()
from engs.services.physics.cpu_kernels import fused_tick, self_test
self_test()
s = fused_tick.stats
print(json.dumps({"hits": sum(s.cache_hits.values()), "misses": sum(s.cache_misses.values()),
                  "seconds": time.perf_counter() - t0}))
"""


def test_compiled_kernels_are_cached_on_disk(tmp_path: Path) -> None:
    """A second process loads the machine code from the on-disk cache instead of
    compiling it again (the warm start ``engs bench physics`` times)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = []
    for _ in range(2):
        r = subprocess.run(
            [sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True, env=env,
            timeout=300, check=True,
        )  # fmt: skip
        runs.append(json.loads(r.stdout.splitlines()[-1]))
    assert runs[0]["misses"] >= 1 and runs[0]["hits"] == 0, runs
    assert runs[1]["hits"] >= 1 and runs[1]["misses"] == 0, runs
    assert any(tmp_path.rglob("*.nbi")), "no numba index file written"


def test_kernel_signature_is_compiled_once() -> None:
    """Every lattice shares one compiled signature: no recompilation per shape or per
    dimensionality (a recompile would stall a running loop for seconds)."""
    for shape in ((40,), (6, 5, 4), (3,) * 9):
        f = NumbaField(config(shape, areas=3))
        f.step(Coefficients(3))
    assert len(fused_tick.signatures) == 1, fused_tick.signatures
