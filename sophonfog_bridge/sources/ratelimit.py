"""Warnings that a hostile or broken peer could repeat a thousand times a second, said once
a minute per kind, with how many were not said."""

from __future__ import annotations

import logging
import threading
import time

INTERVAL_S = 60.0


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, prefix: str, interval_s: float = INTERVAL_S):
        self.logger = logger
        self.prefix = prefix
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> bool:
        """Log `message` unless `kind` was logged within the interval; True if it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._quiet[kind] = self._quiet.get(kind, 0) + 1
                return False
            quiet = self._quiet.pop(kind, 0)
            self._last[kind] = now
        more = f" ({quiet} more like it not logged)" if quiet else ""
        self.logger.warning("%s: %s%s", self.prefix, message, more)
        return True
