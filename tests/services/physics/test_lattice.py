"""Lattice geometry, the conductance-weighted Laplacian and the CFL bound, checked
against dense matrices built edge by edge on small lattices."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.physics.cfl import area_lambda_bound, global_lambda_bound, previous_area
from engs.services.physics.laplacian import laplacian
from engs.services.physics.lattice import Lattice, split_rows
from tests.services.physics.support import dense_minus_laplacian

SHAPES = [(7,), (2,), (5, 4), (2, 3), (3, 2, 4), (2,) * 5]


def test_split_rows_is_contiguous_and_even() -> None:
    assert split_rows(10, 4) == (0, 2, 5, 7, 10)
    assert split_rows(4, 4) == (0, 1, 2, 3, 4)
    with pytest.raises(ValueError, match="cannot split 3 rows into 4 areas"):
        split_rows(3, 4)


def test_area_of_node_is_slabs_along_axis_0() -> None:
    lat = Lattice.build((10, 3), ["a", "b", "c"])
    assert lat.area_bounds == (0, 3, 6, 10)
    assert lat.area_of_row.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert lat.area_of_node.shape == (10, 3)
    assert (lat.area_of_node[:, 2] == lat.area_of_row).all()
    assert lat.area_nodes.tolist() == [9, 9, 12]
    # C order makes each area one contiguous range of flat indices
    flat = lat.area_of_node.reshape(-1)
    assert (np.diff(flat) >= 0).all()


@pytest.mark.parametrize("bad", [(), (1, 4), tuple([2] * 10)])
def test_bad_shapes_are_refused(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        Lattice.build(bad, ["a"])


@pytest.mark.parametrize("shape", SHAPES)
def test_laplacian_matches_dense_edge_sum_and_is_symmetric(shape: tuple[int, ...]) -> None:
    lat = Lattice.build(shape, ["a"])
    rng = np.random.default_rng(7)
    g = rng.uniform(0.2, 3.0, size=(lat.ndim, *shape)).astype(np.float32)
    psi = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    out = np.empty(shape, np.complex64)
    laplacian(np, lat, psi, g, out, np.empty_like(out), np.empty_like(out))
    a = dense_minus_laplacian(lat, g)
    np.testing.assert_allclose(a, a.T)
    expect = -(a @ psi.reshape(-1).astype(np.complex128))
    np.testing.assert_allclose(out.reshape(-1), expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_gershgorin_bounds_hold_for_random_conductances(shape: tuple[int, ...]) -> None:
    lat = Lattice.build(shape, ["a", "b"] if shape[0] >= 2 else ["a"])
    rng = np.random.default_rng(11)
    for _ in range(5):
        g = rng.uniform(0.05, 4.0, size=(lat.ndim, *shape))
        lam = np.linalg.eigvalsh(dense_minus_laplacian(lat, g)).max()
        assert lam <= global_lambda_bound(g) * (1 + 1e-12)
        gmax = np.array(
            [
                [
                    g[k, lat.area_bounds[a] : lat.area_bounds[a + 1]].max()
                    for a in range(lat.n_areas)
                ]
                for k in range(lat.ndim)
            ]
        )
        per_area = area_lambda_bound(
            gmax, previous_area(lat.n_areas), np.zeros_like(gmax), np.zeros(lat.n_areas)
        )
        assert lam <= per_area.max() * (1 + 1e-12)
        assert per_area.max() <= global_lambda_bound(g) * (1 + 1e-12)


def test_bound_is_exact_for_unit_conductance_on_even_sizes() -> None:
    lat = Lattice.build((4, 6), ["a"])
    g = np.ones((2, 4, 6))
    lam = np.linalg.eigvalsh(dense_minus_laplacian(lat, g)).max()
    assert lam == pytest.approx(4 * 2)
    assert global_lambda_bound(g) == pytest.approx(8.0)
