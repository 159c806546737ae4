"""Removing old photos by age and by total size, in a thread of its own.

Only photos in the dated folders (`YYYY-MM-DD/...`) are ever removed, plus temporary
files a crash left behind; `latest*` files and anything a person put there stay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .store import TMP_PREFIX

log = logging.getLogger(__name__)

DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
STALE_TMP_S = 3600


@dataclass
class CleanupStats:
    runs: int = 0
    removed: int = 0
    freed_bytes: int = 0
    total_bytes: int = 0
    last_run: float | None = None
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


def _photos(root: Path) -> list[_Photo]:
    found = []
    for day in root.iterdir():
        if not (day.is_dir() and not day.is_symlink() and DATED.match(day.name)):
            continue
        for folder, _dirs, files in os.walk(day):
            for name in files:
                path = Path(folder) / name
                if Path(name).suffix.lower() not in PHOTO_SUFFIXES and not name.startswith(
                    TMP_PREFIX
                ):
                    continue
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    continue
                found.append(_Photo(path, info.st_size, info.st_mtime))
    return found


def clean(root: Path, policy: Policy, now: float | None = None) -> tuple[int, int, int]:
    """One pass: returns (files removed, bytes freed, bytes left)."""
    if not root.is_dir():
        return 0, 0, 0
    now = time.time() if now is None else now
    photos = sorted(_photos(root), key=lambda p: p.mtime)
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
    return removed, freed, total


def _remove_empty_folders(root: Path) -> None:
    for day in root.iterdir():
        if not (day.is_dir() and not day.is_symlink() and DATED.match(day.name)):
            continue
        for folder, _dirs, _files in os.walk(day, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only succeeds when empty


class Cleaner(threading.Thread):
    """Runs `clean` at start and every `interval_s`, or sooner when `wake()` is called."""

    def __init__(self, root: Path, policy: Policy, interval_s: float):
        super().__init__(name="snapshots-cleanup", daemon=True)
        self.root = root
        self.policy = policy
        self.interval_s = interval_s
        self.stats = CleanupStats()
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

    def run_once(self) -> None:
        try:
            removed, freed, total = clean(self.root, self.policy)
        except OSError as err:
            if self.stats.last_error != str(err):
                log.warning("snapshots: cleanup of %s failed: %s", self.root, err)
            self.stats.last_error = str(err)
            return
        self.stats.runs += 1
        self.stats.removed += removed
        self.stats.freed_bytes += freed
        self.stats.total_bytes = total
        self.stats.last_run = time.time()
        self.stats.last_error = None
        if removed:
            log.info(
                "snapshots: removed %d old photos (%.1f MB); %.1f MB kept",
                removed,
                freed / 1e6,
                total / 1e6,
            )
