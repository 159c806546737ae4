"""Bounded memory of recently accepted event ids, so a re-sent event is recorded once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class RecentIds:
    def __init__(self, window_s: float, max_entries: int):
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, event_id: str, now: float | None = None) -> bool:
        """True if the id is new (and is now remembered), False for a duplicate."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            if event_id in self._seen:
                return False
            self._seen[event_id] = now
            if len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def __contains__(self, event_id: object) -> bool:
        """Whether the id is remembered now (without claiming it)."""
        with self._lock:
            self._expire(time.monotonic())
            return event_id in self._seen

    def release(self, event_id: str) -> None:
        """Forget an id whose event could not be recorded after all."""
        with self._lock:
            self._seen.pop(event_id, None)

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self.window_s:
                break
            del self._seen[oldest]

    def __len__(self) -> int:
        return len(self._seen)
