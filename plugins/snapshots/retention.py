"""Removing old photos by age and by total size.

The size bound holds at every moment, not only after a pass: the cleaner keeps a running
total of the photos (`Ledger`), the plugin reports each event's files as it writes them,
and once the total passes `max_total_mb` the oldest go at once, so the folder never holds
more than the bound plus the one event being written. A full pass in a thread of its own
(at start and every `cleanup_interval_s`) does age-based retention and corrects drift
(files a person removed or added).

Only photos in the dated folders (`YYYY-MM-DD/...`) are ever removed, plus temporary
files a crash left behind; `latest*` files and anything a person put there stay.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .captions import INDEX
from .store import TMP_PREFIX

log = logging.getLogger(__name__)

DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# With the photos, the captions of annotated copies made on request: each folder's
# `captions.jsonl`, dated like its newest photo, and the `*_annotated.json` of before.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".json"}
STALE_TMP_S = 3600


@dataclass
class CleanupStats:
    runs: int = 0
    removed: int = 0
    total_bytes: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Policy:
    retention_days: float
    max_total_bytes: int


@dataclass
class _Photo:
    path: Path
    size: int
    mtime: float
    # Boxes stamp whole seconds, so a burst's events share an mtime: the inode's change
    # time (set by the write's utime) tells which of them was written first.
    changed_ns: int = 0


def _photos(root: Path) -> list[_Photo]:
    found = []
    for day in root.iterdir():
        if not (day.is_dir() and not day.is_symlink() and DATED.match(day.name)):
            continue
        for folder, _dirs, files in os.walk(day):
            for name in files:
                path = Path(folder) / name
                if not _removable(name):
                    continue
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    continue
                found.append(_Photo(path, info.st_size, info.st_mtime, info.st_ctime_ns))
    return found


def _removable(name: str) -> bool:
    """A photo, a caption or a write's leftover: what the cleanup may remove."""
    if name == INDEX or name.startswith(TMP_PREFIX):
        return True
    return os.path.splitext(name)[1].lower() in PHOTO_SUFFIXES


def clean(root: Path, policy: Policy, now: float | None = None) -> tuple[int, int, int]:
    """One pass: returns (files removed, bytes freed, bytes left)."""
    removed, freed, keep = _pass(root, policy, now)
    return removed, freed, sum(p.size for p in keep)


def _pass(root: Path, policy: Policy, now: float | None = None) -> tuple[int, int, list[_Photo]]:
    """One pass: (files removed, bytes freed, the photos kept, oldest first)."""
    if not root.is_dir():
        return 0, 0, []
    now = time.time() if now is None else now
    photos = sorted(_photos(root), key=lambda p: (p.mtime, p.changed_ns))
    cutoff = now - policy.retention_days * 86400 if policy.retention_days else None
    keep, drop = [], []
    for photo in photos:
        stale_tmp = photo.path.name.startswith(TMP_PREFIX) and now - photo.mtime > STALE_TMP_S
        too_old = cutoff is not None and photo.mtime < cutoff
        (drop if stale_tmp or too_old else keep).append(photo)
    total = sum(p.size for p in keep)
    if policy.max_total_bytes:
        # Oldest first, until what is left fits.
        while keep and total > policy.max_total_bytes:
            photo = keep.pop(0)
            total -= photo.size
            drop.append(photo)
    removed = freed = 0
    for photo in drop:
        try:
            photo.path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        freed += photo.size
    _remove_empty_folders(root)
    return removed, freed, keep


def _remove_empty_parents(path: Path, root: Path) -> None:
    """The photo's device and day folders, if it was their last file."""
    folder = path.parent
    while folder != root and root in folder.parents:
        try:
            os.rmdir(folder)  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent


def _remove_empty_folders(root: Path) -> None:
    for day in root.iterdir():
        if not (day.is_dir() and not day.is_symlink() and DATED.match(day.name)):
            continue
        for folder, _dirs, _files in os.walk(day, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only succeeds when empty


class Ledger:
    """The photos on disk by age and their total size, between two full passes.

    Keyed by the path as text: the plugin hands over the names it wrote as text, and a
    Path per file would only cost time and memory.
    """

    def __init__(self, track: bool = True) -> None:
        self.total = 0
        # Without a size bound nothing is ever removed between passes: only the total is
        # kept, not an entry per photo (at 30 days of a busy entrance, ~150,000 of them).
        self.track = track
        self._photos: dict[str, tuple[int, float, int]] = {}  # path -> (size, mtime, added)
        # (mtime, added, path), oldest first. Within one second (a burst's events share it)
        # the one added first goes first, never the one whose name sorts first: that could
        # be the newest event's photo, which the `latest` links also hold, so removing it
        # would free nothing and lose the photo a user looks for first.
        self._order: list[tuple[float, int, str]] = []
        self._added = itertools.count()
        # Without tracking: the size each appended file (an index of captions) was
        # counted at, so that only what it grew by is added.
        self._appended: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._photos)

    def reset(self, photos: list[_Photo]) -> None:
        """The photos a full pass kept, oldest first."""
        self.total = sum(p.size for p in photos)
        if not self.track:
            self._appended = {str(p.path): p.size for p in photos if p.path.name == INDEX}
            return
        self._photos = {str(p.path): (p.size, p.mtime, next(self._added)) for p in photos}
        self._order = sorted((m, added, path) for path, (_s, m, added) in self._photos.items())

    def add(self, path: str | os.PathLike[str], appended: bool = False) -> None:
        """Count a file just written; `appended`: one that grows (an index of captions)."""
        name = os.fspath(path)
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            return
        if not self.track:
            if appended:
                self.total += info.st_size - self._appended.get(name, 0)
                self._appended[name] = info.st_size
            else:
                self.total += info.st_size  # a photo written again counts twice until a pass
            return
        self._drop(name)  # a photo written again (an event delivered twice) counts once
        added = next(self._added)
        self._photos[name] = (info.st_size, info.st_mtime, added)
        bisect.insort(self._order, (info.st_mtime, added, name))
        self.total += info.st_size

    def pop_oldest(self) -> _Photo | None:
        if not self._order:
            return None
        mtime, _added, name = self._order.pop(0)
        size, _mtime, _added = self._photos.pop(name)
        self.total -= size
        return _Photo(Path(name), size, mtime)

    def _drop(self, name: str) -> None:
        old = self._photos.pop(name, None)
        if old is not None:
            size, mtime, added = old
            index = bisect.bisect_left(self._order, (mtime, added, name))
            del self._order[index]
            self.total -= size


class Cleaner(threading.Thread):
    """Runs a full pass at start and every `interval_s` (or on `wake()`), and holds the
    size bound between passes from the photos reported to `written`."""

    def __init__(self, root: Path, policy: Policy, interval_s: float):
        super().__init__(name="snapshots-cleanup", daemon=True)
        # Resolved like the paths the plugin writes, so the ledger sees one name per file.
        self.root = root.resolve()
        self.policy = policy
        self.interval_s = interval_s
        self.stats = CleanupStats()
        self.ledger = Ledger(track=bool(policy.max_total_bytes))
        # The pass and `written` (the delivery thread) never interleave: the ledger
        # reset by a pass would otherwise forget a photo written during its walk.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()

    def run(self) -> None:
        while not self._halt.is_set():
            self.run_once()
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def written(
        self,
        paths: list[str] | list[Path],
        appended: list[str] | None = None,
        before_removing: Callable[[], None] | None = None,
    ) -> None:
        """Count one event's new photos and the files it `appended` to (its caption's
        index); past the size bound, remove the oldest now, after `before_removing()`
        (the `latest` links let go of what they still show)."""
        bound = self.policy.max_total_bytes
        with self._lock:
            for path in paths:
                self.ledger.add(path)
            for path in appended or ():
                self.ledger.add(path, appended=True)
            removed = 0
            if before_removing is not None and bound and self.ledger.total > bound:
                before_removing()
            while bound and self.ledger.total > bound:
                photo = self.ledger.pop_oldest()
                if photo is None:
                    break
                with contextlib.suppress(FileNotFoundError):
                    photo.path.unlink()
                    removed += 1
                    _remove_empty_parents(photo.path, self.root)
            self.stats.removed += removed
            self.stats.total_bytes = self.ledger.total
        if removed:
            log.debug("snapshots: over %d bytes: removed %d oldest photos", bound, removed)

    def run_once(self) -> None:
        try:
            with self._lock:
                removed, freed, kept = _pass(self.root, self.policy)
                self.ledger.reset(kept)
                total = self.ledger.total
        except OSError as err:
            if self.stats.last_error != str(err):
                log.warning("snapshots: cleanup of %s failed: %s", self.root, err)
            self.stats.last_error = str(err)
            return
        self.stats.runs += 1
        self.stats.removed += removed
        self.stats.total_bytes = total
        self.stats.last_error = None
        if removed:
            log.info(
                "snapshots: removed %d old photos (%.1f MB); %.1f MB kept",
                removed,
                freed / 1e6,
                total / 1e6,
            )
