"""Fixtures shared by the whole suite.

Every test that touches shared memory gets its own instance name (``test-<hex>``) and
the region is unlinked after it; at the end of the session nothing this session
created (``engs-test-<its pid>-*``) may remain in /dev/shm (checked, and reported as a
failure). Only its own: other pytest sessions may be running on the same host, and
their live regions are theirs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engs.shared.region import Region, unlink

_PREFIX = "test-"


@pytest.fixture
def instance() -> Iterator[str]:
    """A unique instance name, unlinked after the test whatever happened."""
    name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    unlink(name)


@pytest.fixture
def region(instance: str) -> Iterator[Region]:
    """A fresh region with 8 area rows, named areas, closed and unlinked after."""
    r = Region.create(instance, 8, area_names=["sensory", "motor", "limbic"], lock_memory=False)
    yield r
    r.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return
    mine = f"engs-{_PREFIX}{os.getpid()}-"
    left = sorted(p.name for p in shm.iterdir() if p.name.startswith(mine))
    if left:
        for name in left:
            unlink(name.removeprefix("engs-"))
        session.exitstatus = 1
        print(f"\nFAILED: the suite left shared-memory regions behind: {left}")
