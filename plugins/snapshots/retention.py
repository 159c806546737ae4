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

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .store import TMP_PREFIX

log = logging.getLogger(__name__)

DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# With the photos, the captions of annotated copies made on request (`*_annotated.json`).
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


@dataclass(frozen=True, slots=True)
class _Photo:
    # A string, not a Path: a pass lists every photo in the folder at once.
    path: str
    size: int
    mtime: float


def _photos(root: Path) -> list[_Photo]:
    found = []
    for day in root.iterdir():
        if not (day.is_dir() and not day.is_symlink() and DATED.match(day.name)):
            continue
        for folder, _dirs, files in os.walk(day):
            for name in files:
                path = os.path.join(folder, name)
                if os.path.splitext(name)[1].lower() not in PHOTO_SUFFIXES and not name.startswith(
                    TMP_PREFIX
                ):
                    continue
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                found.append(_Photo(path, info.st_size, info.st_mtime))
    return found


def clean(root: Path, policy: Policy, now: float | None = None) -> tuple[int, int, int]:
    """One pass: returns (files removed, bytes freed, bytes left)."""
    removed, freed, keep = _pass(root, policy, now)
    return removed, freed, sum(p.size for p in keep)


def _pass(root: Path, policy: Policy, now: float | None = None) -> tuple[int, int, list[_Photo]]:
    """One pass: (files removed, bytes freed, the photos kept, oldest first)."""
    if not root.is_dir():
        return 0, 0, []
    now = time.time() if now is None else now
    photos = sorted(_photos(root), key=lambda p: p.mtime)
    cutoff = now - policy.retention_days * 86400 if policy.retention_days else None
    keep, drop = [], []
    for photo in photos:
        stale_tmp = (
            os.path.basename(photo.path).startswith(TMP_PREFIX) and now - photo.mtime > STALE_TMP_S
        )
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
            os.unlink(photo.path)
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
    """The photos on disk, oldest event first, and their total size, between two passes.

    One entry per event (its files share `<stem>_`), names relative to the root: under a
    1 GB budget the folder holds tens of thousands of photos, and a `Path` per file cost
    ~2.4 KB an event for as long as the bridge ran.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = "" if root is None else os.path.join(str(root), "")
        self.total = 0
        # stem -> (the rest of each file's name, its size); the deque keeps their age.
        self._events: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
        self._order: deque[str] = deque()

    def reset(self, photos: list[_Photo]) -> None:
        """Start again from a pass's photos, oldest first."""
        self._events.clear()
        self._order.clear()
        self.total = 0
        for photo in photos:
            self._note(str(photo.path), photo.size)

    def add(self, path: Path) -> None:
        try:
            size = path.lstat().st_size
        except FileNotFoundError:
            return
        self._note(str(path), size)

    def pop_oldest(self) -> list[Path] | None:
        """Forget the oldest event; its files, for the caller to remove."""
        if not self._order:
            return None
        stem = self._order.popleft()
        tails, sizes = self._events.pop(stem)
        self.total -= sum(sizes)
        return [Path(self.root + stem + tail) for tail in tails]

    def _note(self, path: str, size: int) -> None:
        if self.root and path.startswith(self.root):
            path = path[len(self.root) :]
        cut = path.rfind("_")
        if cut <= path.rfind(os.sep):
            cut = len(path)
        stem, tail = path[:cut], sys.intern(path[cut:])
        tails, sizes = self._events.get(stem, ((), ()))
        if not tails:
            self._order.append(stem)
        if tail in tails:  # a photo written again (an event delivered twice) counts once
            at = tails.index(tail)
            self.total -= sizes[at]
            tails, sizes = tails[:at] + tails[at + 1 :], sizes[:at] + sizes[at + 1 :]
        self._events[stem] = ((*tails, tail), (*sizes, size))
        self.total += size


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
        self.ledger = Ledger(self.root)
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

    def written(self, paths: list[Path]) -> None:
        """Count one event's new photos; past the size bound, remove the oldest now."""
        bound = self.policy.max_total_bytes
        with self._lock:
            for path in paths:
                self.ledger.add(path)
            removed = 0
            while bound and self.ledger.total > bound:
                oldest = self.ledger.pop_oldest()
                if oldest is None:
                    break
                for path in oldest:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
                _remove_empty_parents(oldest[0], self.root)
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
