"""Bounded memory of recently accepted event ids, so a re-sent event is recorded once.

It also remembers which photos each id's record carried and which device it named: a
later copy of the same recognition that brings a photo the first lacked (the V6 history
upload brings the scene its live copy never has) is not a duplicate but a completion.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


class Verdict(str, enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    COMPLETES = "completes"


@dataclass(frozen=True, slots=True)
class Seen:
    at: float
    photos: frozenset[str]
    device: str


@dataclass(frozen=True)
class Admission:
    """What a copy is to the memory; `new_photos` are what a completion adds."""

    verdict: Verdict
    event_id: str
    new_photos: frozenset[str] = frozenset()
    first: Seen | None = None


class RecentIds:
    def __init__(self, window_s: float, max_entries: int):
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, Seen] = OrderedDict()
        self._lock = threading.Lock()
        # Since Python 3.10 every frozenset() is a new object (~200 bytes); the few sets of
        # photo names that occur are kept once and shared by every id that has them.
        self._photo_sets: dict[frozenset[str], frozenset[str]] = {}

    def _shared(self, photos: frozenset[str]) -> frozenset[str]:
        if len(self._photo_sets) > 64:  # only box-sent field names land here, but bound it
            self._photo_sets.clear()
        return self._photo_sets.setdefault(photos, photos)

    def admit(
        self,
        event_id: str,
        photos: Iterable[str] = (),
        device: str = "",
        now: float | None = None,
    ) -> Admission:
        """Remember a copy: new, a duplicate, or a completion with the photos it adds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            photos = self._shared(frozenset(photos))
            self._expire(now)
            first = self._seen.get(event_id)
            if first is None:
                self._seen[event_id] = Seen(now, photos, device)
                if len(self._seen) > self.max_entries:
                    self._seen.popitem(last=False)
                return Admission(Verdict.NEW, event_id)
            added = photos - first.photos
            if not added:
                return Admission(Verdict.DUPLICATE, event_id, first=first)
            self._seen[event_id] = Seen(first.at, first.photos | added, first.device)
            return Admission(Verdict.COMPLETES, event_id, added, first)

    def claim(self, event_id: str, now: float | None = None) -> bool:
        """True if the id is new (and is now remembered), False for a duplicate."""
        return self.admit(event_id, now=now).verdict is Verdict.NEW

    def undo(self, admission: Admission) -> None:
        """Forget a copy that could not be recorded after all."""
        with self._lock:
            if admission.verdict is Verdict.NEW:
                self._seen.pop(admission.event_id, None)
            elif admission.verdict is Verdict.COMPLETES and admission.first is not None:
                self._seen[admission.event_id] = admission.first

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
            oldest, seen = next(iter(self._seen.items()))
            if now - seen.at <= self.window_s:
                break
            del self._seen[oldest]

    def __len__(self) -> int:
        return len(self._seen)
