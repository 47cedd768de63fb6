"""Helpers shared by the physics tests: small configurations with visible seeds, and
the dense reference operator."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engs.services.physics.coefficients import Coefficients
from engs.services.physics.lattice import Lattice
from engs.shared.config import PhysicsConfig

SEED = 20240611


def config(shape: tuple[int, ...], areas: int = 2, **kw: Any) -> PhysicsConfig:
    """A physics config over ``shape`` with ``areas`` areas named a0, a1, ..."""
    kw.setdefault("noise_amplitude", 0.0)
    kw.setdefault("seed", SEED)
    return PhysicsConfig(shape=list(shape), areas=[f"a{i}" for i in range(areas)], **kw)


def random_field(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return (scale * z).astype(np.complex64)


def assert_reports_and_recovers_nonfinite(make: Callable[[PhysicsConfig], Any]) -> None:
    """A NaN put into Ψ is reported by the next tick (the one after for a lagged field),
    repaired by ``recover_nonfinite`` and gone from the ticks after (the field
    ``make(config)`` builds, three areas)."""
    shape = (12, 10)
    f = make(config(shape, areas=3))
    c = Coefficients(3)
    psi = random_field(shape, 3)
    psi[4, 4] = np.nan
    f.set_state(psi=psi, coeffs=c)
    for _ in range(f.report_lag):  # a lagged field reports the tick before: not yet
        assert f.step(c).nonfinite == 0
    assert f.step(c).nonfinite >= 1
    assert f.recover_nonfinite() >= 1
    for _ in range(2 + f.report_lag):
        assert f.step(c).nonfinite == 0


class TracedAllocations:
    """Python allocations over a block: ``peak`` and ``retained`` bytes beyond what was
    allocated before it (tracemalloc)."""

    def __enter__(self) -> TracedAllocations:
        tracemalloc.start()
        self.before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.peak, self.retained = peak - self.before, current - self.before


def start_physics(instance: str, cfg: Path, **env: str) -> subprocess.Popen[str]:
    """``engs physics`` on ``instance`` with the config file ``cfg``, none of the caller's
    ``ENGS_*`` variables but those in ``env``; output (merged) on a pipe."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "engs.services.cli", "physics", "--instance", instance,
         "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean | env,
    )  # fmt: skip


def dense_minus_laplacian(lat: Lattice, g: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """−L_g as a dense matrix, one edge (x → x + e_k) at a time."""
    n = lat.n_nodes
    a = np.zeros((n, n))
    for x in itertools.product(*(range(s) for s in lat.shape)):
        i = np.ravel_multi_index(x, lat.shape)
        for k in range(lat.ndim):
            y = list(x)
            y[k] = (y[k] + 1) % lat.shape[k]
            j = np.ravel_multi_index(tuple(y), lat.shape)
            w = float(g[(k, *x)])
            a[i, i] += w
            a[j, j] += w
            a[i, j] -= w
            a[j, i] -= w
    return a
