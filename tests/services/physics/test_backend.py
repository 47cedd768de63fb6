"""Backend selection: explicit NumPy, auto with a stated fallback, CuPy or an error
that says why."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engs.services.physics.backend import (
    CPU_FALLBACK_MAX_NODES,
    probe_cupy,
    select_backend,
)
from engs.shared.errors import NotAvailable


def test_numpy_is_always_available() -> None:
    b = select_backend("numpy")
    assert b.name == "numpy" and b.code == 0


def test_auto_picks_the_fused_cpu_kernels_without_a_gpu() -> None:
    cp, why = probe_cupy()
    b = select_backend("auto")
    if cp is None:
        assert b.name == "numba" and b.code == 2
        assert b.reason == f"auto: no usable GPU ({why}); fused CPU kernels"
        with pytest.raises(NotAvailable, match="backend cupy requested but unavailable"):
            select_backend("cupy")
    else:
        assert b.name == "cupy" and b.code == 1


_WITHOUT_NUMBA = """
import sys
sys.modules["numba"] = None  # as if numba were not installed: `import numba` fails
from engs.services.physics.backend import select_backend
from engs.shared.errors import NotAvailable
b = select_backend("auto")
print(b.name)
print(b.reason)
try:
    select_backend("numba")
except NotAvailable as exc:
    print(exc)
"""


def test_auto_falls_back_to_numpy_with_both_reasons_when_numba_is_missing() -> None:
    if probe_cupy()[0] is not None:
        pytest.skip("a GPU is usable here: auto picks it before the CPU backends")
    r = subprocess.run(
        [sys.executable, "-c", _WITHOUT_NUMBA], capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    name, reason, refusal = r.stdout.splitlines()
    assert name == "numpy"
    assert reason.startswith("auto: falling back to numpy (cupy not importable")
    assert "fused CPU kernels unavailable: ModuleNotFoundError" in reason
    assert refusal.startswith("backend numba requested but unavailable: fused CPU kernels")


def test_unknown_backend_name_is_refused() -> None:
    with pytest.raises(ValueError, match="backend must be auto, numpy, numba or cupy, got 'tpu'"):
        select_backend("tpu")


def test_auto_refuses_a_numpy_fallback_too_large_to_tick() -> None:
    """Without a GPU, ``auto`` falls back to the CPU only for lattices a CPU can tick: 6⁹
    (10⁷ nodes, ~0.2 s per fused tick, seconds on NumPy) is refused with the reason and
    the way to insist."""
    cp, _ = probe_cupy()
    if cp is not None:
        assert select_backend("auto", (6,) * 9).name == "cupy"
        return
    assert select_backend("auto", (CPU_FALLBACK_MAX_NODES // 1024, 1024)).name == "numba"
    with pytest.raises(NotAvailable) as err:
        select_backend("auto", (CPU_FALLBACK_MAX_NODES // 1024 + 1, 1024))
    text = str(err.value)
    assert "too large for a CPU fallback" in text
    assert "`$.physics.shape`" in text and "ENGS_BACKEND=numba" in text
    # asked for explicitly, a CPU backend runs whatever the size
    assert select_backend("numba", (6,) * 9).name == "numba"
    assert select_backend("numpy", (6,) * 9).name == "numpy"
