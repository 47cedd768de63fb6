"""Fixtures of the oracle's tests (helpers are in craft.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engs.shared.clock import monotonic_ns
from engs.shared.region import Region
from tests.services.oracle.craft import Crafter


@pytest.fixture
def crafter(region: Region) -> Iterator[Crafter]:
    c = Crafter(region)
    yield c
    c.ctl.release()
    c.tel.release()


@pytest.fixture
def t0() -> int:
    """The start of a synthetic clock: the real monotonic now."""
    return monotonic_ns()
