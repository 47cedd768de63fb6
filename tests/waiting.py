"""Waiting in tests for something another process does."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    pred: Callable[[], bool], what: str, timeout: float = 10.0, poll_s: float = 0.002
) -> None:
    """Return once ``pred()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")
