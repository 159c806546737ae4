"""A small cache that makes each value once for the threads that want it together.

Plugin workers at the head of the spool are woken together by one append and ask for the
same record at the same moment. With a plain "look, else make, then store" cache each
may look before the first has stored, and read the record from disk and decode it again
(counted at 40 events/s: the door's and mqtt's workers built 11 of 320 events twice).
Here the first asker makes the value while the others wait for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCache(Generic[K, V]):
    """The `size` newest values by key; `get` makes a missing one once, however many ask."""

    def __init__(self, size: int):
        self.size = size
        # One condition for every key, not an event per key: a get that finds its value or
        # makes it alone is then a lock and a dict, ~1 µs (an event per key cost ~10 µs).
        self._lock = threading.Lock()
        self._made = threading.Condition(self._lock)
        self._values: OrderedDict[K, V] = OrderedDict()
        self._making: set[K] = set()
        self._waiting = 0

    def get(self, key: K, make: Callable[[], V | None]) -> V | None:
        """The value for `key`, made by `make` if no one has it. A None from `make` is not
        kept; a waiter whose maker failed or gave None makes its own."""
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                return value
            if key in self._making:
                self._waiting += 1
                try:
                    self._made.wait_for(lambda: key not in self._making)
                finally:
                    self._waiting -= 1
                value = self._values.get(key)
                if value is not None:
                    return value
            self._making.add(key)
        value = None
        try:
            value = make()
        finally:
            with self._lock:
                self._making.discard(key)
                if value is not None:
                    self._values[key] = value
                    while len(self._values) > self.size:
                        self._values.popitem(last=False)
                if self._waiting:
                    self._made.notify_all()
        return value
