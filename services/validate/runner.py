"""Running the assays: progress on stderr and independent runs in parallel.

* :class:`Progress`: one line per event on stderr — an assay starting and finishing, and
  every few seconds the run in progress (``assay · what · i/n · elapsed``). Elapsed time
  is measured on ``time.monotonic`` (one clock for the parent and its workers).
* :func:`pmap`: the independent simulations of one assay (conditions, sessions) on a
  process pool, results in argument order; with ``jobs == 1`` (the tests) it runs
  inline. Every run is seeded by its own arguments, so the results do not depend on
  ``jobs``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


class Progress:
    """Throttled progress lines: ``[engs validate 12.3 s] lesions: control 5/20``."""

    def __init__(
        self, stream: TextIO | None = None, every_s: float = 2.0, enabled: bool = True
    ) -> None:
        self.t0 = time.monotonic()
        self.every_s = every_s
        self.enabled = enabled
        self._stream = stream
        self._last = -1e9

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _emit(self, text: str) -> None:
        if not self.enabled:
            return
        stream = self._stream if self._stream is not None else sys.stderr
        print(f"[engs validate {self.elapsed():7.1f} s] {text}", file=stream, flush=True)

    def note(self, text: str) -> None:
        """Always printed (assay start and end)."""
        self._last = time.monotonic()
        self._emit(text)

    def update(self, assay: str, what: str, i: int, n: int) -> None:
        """Printed at most every ``every_s`` seconds (and at the last step)."""
        now = time.monotonic()
        if now - self._last < self.every_s and i < n:
            return
        self._last = now
        self._emit(f"{assay}: {what} {i}/{n}")

    def __getstate__(self) -> dict[str, Any]:  # workers print to their own stderr
        state = self.__dict__.copy()
        state["_stream"] = None
        return state


def pmap(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], jobs: int) -> list[T]:
    """``[fn(*args) for args in calls]``, on ``jobs`` processes when jobs > 1."""
    if jobs <= 1 or len(calls) <= 1:
        return [fn(*args) for args in calls]
    with ProcessPoolExecutor(max_workers=min(jobs, len(calls))) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]
