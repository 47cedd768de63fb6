"""The CUDA kernels compute what the NumPy twin computes.

Without a GPU the source is still exercised two ways: nvcc compiles it (when the CUDA
toolkit is installed), and the host build — the kernels' per-node functions compiled
by the C++ compiler — is stepped next to the NumPy twin. On a GPU the fused kernels
themselves are compared with the twin (``gpu`` marker)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engs.services.physics import noise
from engs.services.physics.backend import probe_cupy, select_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.cuda_source import module_source
from engs.services.physics.field import Field, make_field
from engs.services.physics.host_kernels import HostKernelField, compiler
from engs.services.physics.lattice import Lattice
from tests.services.physics.support import (
    assert_reports_and_recovers_nonfinite,
    config,
    random_field,
)

SHAPES = [(40,), (12, 10), (6, 5, 4), (3,) * 9]


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


def run_pair(a: Field, b: Field, ticks: int) -> list[tuple[float, float]]:
    n = a.lattice.n_areas
    c = workload(n)
    psi = random_field(a.lattice.shape, 1)
    for f in (a, b):
        f.set_state(psi=psi, pi=random_field(a.lattice.shape, 2, 10.0), coeffs=c)
    pairs = []
    for t in range(ticks):
        ra, rb = a.step(c, critical=(t % 7 == 3)), b.step(c, critical=(t % 7 == 3))
        assert ra.cfl_clamps == rb.cfl_clamps and ra.cfl_clamps >= 1
        for name in ("energy", "hamiltonian", "entropy_bits", "kinetic_cost", "metabolic_cost"):
            pairs.append((getattr(ra, name), getattr(rb, name)))
        pairs += list(zip(ra.area_activity, rb.area_activity, strict=True))
        pairs += list(zip(ra.area_metric_grad, rb.area_metric_grad, strict=True))
        c.stimulus[:] = 0.0
    return pairs


def assert_same_trajectory(a: Field, b: Field, ticks: int = 60) -> None:
    pairs = run_pair(a, b, ticks)
    x, y = np.array(pairs).T
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-9)
    for get in (Field.psi_host, Field.pi_host):
        u, v = get(a), get(b)
        assert np.abs(u - v).max() <= 1e-5 * np.abs(u).max()
    np.testing.assert_allclose(a.g_host(), b.g_host(), rtol=1e-6)


@pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the host build")
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_host_build_of_cuda_source_matches_numpy_twin(shape: tuple[int, ...]) -> None:
    cfg = config(shape, areas=3, noise_amplitude=0.5)
    assert_same_trajectory(Field(cfg), HostKernelField(cfg))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed")
def test_cuda_source_compiles_with_nvcc(tmp_path: Path) -> None:
    for shape in [(64, 64), (6,) * 9, (4096,), (1 << 16, 2)]:
        lat = Lattice.build(shape, ["a", "b", "c"])
        src = tmp_path / "kernels.cu"
        src.write_text(module_source(lat))
        proc = subprocess.run(
            ["nvcc", "--ptx", "-arch=sm_80", "--std=c++17", "--fmad=false", "-Werror",
             "all-warnings", str(src), "-o", str(tmp_path / "kernels.ptx")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        ptx = (tmp_path / "kernels.ptx").read_text()
        for kernel in ("kick_drift", "force_kick_plasticity", "metric_grad"):
            assert f".entry {kernel}(" in ptx


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


_CUPY, _WHY = probe_cupy()


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY is None, reason=f"needs CuPy and a CUDA device: {_WHY}")
@pytest.mark.parametrize("shape", [*SHAPES, (64, 64)], ids=str)
def test_cupy_fused_kernels_match_numpy_twin(shape: tuple[int, ...]) -> None:
    cfg = config(shape, areas=3, noise_amplitude=0.5)
    assert_same_trajectory(Field(cfg), make_field(cfg, select_backend("cupy")))


@pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the host build")
def test_fused_field_reports_and_recovers_nonfinite() -> None:
    # The non-finite path of the fused (GPU) field, run on the host build.
    assert_reports_and_recovers_nonfinite(HostKernelField)
