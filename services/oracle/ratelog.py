"""Rate-limited logging for conditions that repeat at poll rate.

A sync violation can recur on every control cycle (100 Hz); the log gets at most one
line per ``interval_ns`` per key, and the next line says how many were suppressed in
between. Only the oracle's poll loop uses it (single thread).
"""

from __future__ import annotations

import logging


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_ns: int) -> None:
        self.logger = logger
        self.interval_ns = interval_ns
        self._last: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, now_ns: int, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than the interval ago.
        Returns True if a line was written."""
        last = self._last.get(key)
        if last is not None and now_ns - last < self.interval_ns:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now_ns
        n = self._suppressed.pop(key, 0)
        if n:
            self.logger.log(level, msg + " (%d more since the last report)", *args, n)
        else:
            self.logger.log(level, msg, *args)
        return True
