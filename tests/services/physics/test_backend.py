"""Backend selection: explicit NumPy, auto with a stated fallback, CuPy or an error
that says why."""

from __future__ import annotations

import pytest

from engs.services.physics.backend import probe_cupy, select_backend
from engs.shared.errors import NotAvailable


def test_numpy_is_always_available() -> None:
    b = select_backend("numpy")
    assert b.name == "numpy" and b.code == 0


def test_auto_falls_back_to_numpy_with_the_probe_reason() -> None:
    cp, why = probe_cupy()
    b = select_backend("auto")
    if cp is None:
        assert b.name == "numpy"
        assert why in b.reason and b.reason.startswith("auto: falling back to numpy")
        with pytest.raises(NotAvailable, match="backend cupy requested but unavailable"):
            select_backend("cupy")
    else:
        assert b.name == "cupy" and b.code == 1


def test_unknown_backend_name_is_refused() -> None:
    with pytest.raises(ValueError, match="backend must be auto, numpy or cupy, got 'tpu'"):
        select_backend("tpu")
