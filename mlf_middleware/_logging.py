"""Rate-limited warnings: one line per cause and interval, with a count."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Log a WARNING at most once per ``interval`` seconds per key."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()  # callers' threads and workers share it

    def allows(self, key: str) -> bool:
        """True at most once per interval per key (counting the others)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < self._interval:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            return True

    def warning(self, key: str, msg: str, *args: object) -> None:
        if not self.allows(key):
            return

        with self._lock:
            skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += " (%d similar messages suppressed)"
            args = (*args, skipped)
        self._logger.warning(msg, *args)
