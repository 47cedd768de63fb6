"""The field object: preallocated state, no per-tick allocation proportional to the
lattice, phase-coherent coefficients, and make_field's backend dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.physics.backend import numpy_backend, select_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field, make_field
from tests.services.physics.support import TracedAllocations, config, random_field


def test_step_allocates_nothing_proportional_to_the_lattice() -> None:
    shape = (4,) * 9  # 262 144 nodes: one complex64 array is 2 MiB
    f = Field(config(shape, areas=4, noise_amplitude=0.01, entropy_exact_max_nodes=1000))
    c = Coefficients(4)
    c.drive[:] = 1.0
    c.stimulus[:] = 0.1
    for _ in range(3):
        f.step(c)
    ids = [id(a) for a in (f.psi, f.pi, f.force)]
    with TracedAllocations() as py:
        for _ in range(10):
            f.step(c)
    # NumPy's mixed-dtype ufuncs use a fixed 64 KiB casting buffer; nothing scales
    # with N (a single lattice-sized temporary would be 1-2 MiB).
    assert py.peak < 256 * 1024
    assert py.retained < 16 * 1024
    assert [id(a) for a in (f.psi, f.pi, f.force)] == ids


def test_result_is_one_object_overwritten_each_tick() -> None:
    f = Field(config((8, 8)))
    c = Coefficients(2)
    r1 = f.step(c)
    r2 = f.step(c)
    assert r1 is r2 and r2.tick == 1 and f.tick == 2


def test_make_field_on_numpy_is_the_twin() -> None:
    f = make_field(config((8, 8)), numpy_backend())
    assert type(f) is Field
    assert f.psi.dtype == np.complex64 and f.g.dtype == np.float32
    assert f.g.shape == (2, 8, 8)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_warm_up_leaves_the_state_untouched(backend: str) -> None:
    cfg = config((12, 10), areas=3, noise_amplitude=0.5)
    f = make_field(cfg, select_backend(backend))
    c = Coefficients(3)
    f.set_state(psi=random_field((12, 10), 1), coeffs=c)
    f.step(c)
    before = [f.psi_host(), f.pi_host(), f.g_host(), f.anchor_host(), f.g_area_max.copy()]
    f.warm_up()
    after = [f.psi_host(), f.pi_host(), f.g_host(), f.anchor_host(), f.g_area_max.copy()]
    for u, v in zip(before, after, strict=True):
        np.testing.assert_array_equal(u, v)
    assert f.step(c).nonfinite == 0
