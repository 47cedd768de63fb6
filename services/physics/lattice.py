"""The lattice: a periodic d-dimensional grid split into named areas.

Owns the geometry every other physics module uses: the shape (d = 1..9 axes, periodic
boundaries: the d-torus of seed 003 §2.1 / ARCHITECTURE §3), the split into named
target areas, and the slices that shift an array by one node along an axis without
allocating.

Invariants:
* areas are contiguous slabs along axis 0, in configuration order, as even as
  possible (sizes differ by at most one row); every area holds at least one row;
* with C-order storage, an area is therefore one contiguous range of flat node
  indices: ``area_bounds[a] * row_size <= i < area_bounds[a + 1] * row_size``. The GPU
  kernels and the per-area reductions rely on this;
* edge ``k`` of node ``x`` joins ``x`` to ``x + e_k`` (periodic); it belongs to ``x``,
  its origin, for every per-area coefficient (ARCHITECTURE §3).

Built once per process by the physics service; read-only afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_DIM = 9

#: A tuple of slices / ints indexing an array (numpy or cupy).
Index = tuple[Any, ...]


@dataclass(frozen=True)
class AxisSlices:
    """Index tuples that shift an array by one node along one axis, periodically.

    For an array ``a`` over the lattice (``lead`` extra leading axes, e.g. 1 for the
    conductance's direction axis), ``a(x + e_k)`` is assembled as
    ``out[lo] = a[hi]`` (the bulk) plus ``out[last] = a[first]`` (the wrap), and
    ``a(x - e_k)`` as ``out[hi] = a[lo]`` plus ``out[first] = a[last]``. Every piece
    is a basic slice, so the pieces are views and ufuncs can write into them.
    """

    lo: Index  # nodes 0 .. n-2 along the axis
    hi: Index  # nodes 1 .. n-1
    first: Index  # node 0 (kept as a length-1 slice so views keep their rank)
    last: Index  # node n-1


def _axis_slices(ndim: int, axis: int, lead: int) -> AxisSlices:
    def at(s: slice) -> Index:
        idx: list[Any] = [slice(None)] * (lead + ndim)
        idx[lead + axis] = s
        return tuple(idx)

    return AxisSlices(
        lo=at(slice(0, -1)), hi=at(slice(1, None)), first=at(slice(0, 1)), last=at(slice(-1, None))
    )


def split_rows(n_rows: int, n_areas: int) -> tuple[int, ...]:
    """Row boundaries of ``n_areas`` contiguous slabs over ``n_rows`` rows of axis 0.

    Returns ``n_areas + 1`` increasing integers from 0 to ``n_rows``; slab ``a`` is
    rows ``[b[a], b[a+1])``. Sizes differ by at most one row.
    """
    if not 1 <= n_areas <= n_rows:
        raise ValueError(
            f"cannot split {n_rows} rows into {n_areas} areas: need 1 <= areas <= rows"
        )
    return tuple((a * n_rows) // n_areas for a in range(n_areas + 1))


@dataclass(frozen=True, eq=False)
class Lattice:
    """Geometry of the periodic lattice and its areas (see the module docstring).

    Attributes (all host numpy; the GPU backend copies what its kernels need):
        shape: nodes per axis, ``d = len(shape)`` in 1..9, each >= 2.
        area_names: one name per area, in configuration order.
        area_bounds: ``n_areas + 1`` row boundaries along axis 0.
        area_of_row: int32, shape ``(shape[0],)``: the area of each index of axis 0.
        area_nodes: int64, shape ``(n_areas,)``: nodes per area.
        row_size: nodes per index of axis 0 (``prod(shape[1:])``).
        strides: flat-index stride of each axis in nodes (C order).
    """

    shape: tuple[int, ...]
    area_names: tuple[str, ...]
    area_bounds: tuple[int, ...] = field(init=False)
    area_of_row: np.ndarray[Any, np.dtype[np.int32]] = field(init=False)
    area_nodes: np.ndarray[Any, np.dtype[np.int64]] = field(init=False)
    row_size: int = field(init=False)
    strides: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if not 1 <= len(shape) <= MAX_DIM:
            raise ValueError(f"lattice dimension must be in 1..{MAX_DIM}, got {len(shape)}")
        if min(shape) < 2:
            raise ValueError(f"every axis needs at least 2 nodes, got shape {shape}")
        if len(set(self.area_names)) != len(self.area_names) or not self.area_names:
            raise ValueError(f"area names must be non-empty and unique, got {self.area_names}")
        bounds = split_rows(shape[0], len(self.area_names))
        of_row = np.empty(shape[0], dtype=np.int32)
        for a in range(len(bounds) - 1):
            of_row[bounds[a] : bounds[a + 1]] = a
        row_size = int(np.prod(shape[1:], dtype=np.int64))
        strides = tuple(int(np.prod(shape[k + 1 :], dtype=np.int64)) for k in range(len(shape)))
        of_row.setflags(write=False)
        nodes = np.diff(np.asarray(bounds, dtype=np.int64)) * row_size
        nodes.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "area_names", tuple(self.area_names))
        object.__setattr__(self, "area_bounds", bounds)
        object.__setattr__(self, "area_of_row", of_row)
        object.__setattr__(self, "area_nodes", nodes)
        object.__setattr__(self, "row_size", row_size)
        object.__setattr__(self, "strides", strides)

    @classmethod
    def build(cls, shape: Sequence[int], areas: Sequence[str]) -> Lattice:
        """The lattice of ``shape`` split into ``areas`` along axis 0."""
        return cls(tuple(shape), tuple(areas))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_nodes(self) -> int:
        return self.shape[0] * self.row_size

    @property
    def n_areas(self) -> int:
        return len(self.area_names)

    @property
    def area_of_node(self) -> np.ndarray[Any, np.dtype[np.int32]]:
        """int32, shape ``shape``: the area of every node (a read-only broadcast view,
        no memory per node)."""
        view = self.area_of_row.reshape((self.shape[0],) + (1,) * (self.ndim - 1))
        return np.broadcast_to(view, self.shape)

    def row_view_shape(self) -> tuple[int, ...]:
        """Shape ``(shape[0], 1, ..., 1)`` of a per-row array that broadcasts over nodes."""
        return (self.shape[0],) + (1,) * (self.ndim - 1)

    def area_indicator(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """float64, shape ``(n_areas, shape[0])``: 1 where row r belongs to area a.

        ``indicator @ per_row_sums`` gives per-area sums with one matmul, on numpy and
        cupy alike."""
        ind = np.zeros((self.n_areas, self.shape[0]), dtype=np.float64)
        ind[self.area_of_row, np.arange(self.shape[0])] = 1.0
        return ind

    def axis_slices(self, axis: int, lead: int = 0) -> AxisSlices:
        """The shift slices of ``axis`` for arrays with ``lead`` extra leading axes."""
        return _axis_slices(self.ndim, axis, lead)
