"""Writing photos so that a reader never sees half a file, and the per-device `latest`.

Every file is written to a hidden temporary name in the same folder, then renamed over
the final name: rename is atomic within a file system, so readers never see half a photo.
The fsync before the rename is what survives a power cut; it costs ~5 ms a file here, so
it follows `spool.fsync` like the rest of the bridge's durability.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TMP_PREFIX = ".tmp-"


def _create(tmp: Path):
    try:
        return open(tmp, "xb")
    except FileNotFoundError:
        # The cleanup thread may remove an empty folder between mkdir and open.
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return open(tmp, "xb")


def atomic_write(
    path: Path, data: bytes, mtime: float | None = None, durable: bool = False
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}{path.suffix}")
    try:
        with _create(tmp) as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if mtime is not None:
        # Only on the final name: a temporary file dated like an old event would look
        # like a crash's leftover (or the oldest photo) to the cleanup thread mid-write.
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (mtime, mtime))


def atomic_link(source: Path, path: Path, mtime: float, durable: bool = False) -> None:
    """Make `path` the same file as `source` (a hard link, else a copy), atomically."""
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}{path.suffix}")
    try:
        os.link(source, tmp)
    except OSError:  # file systems without hard links (some SMB/FAT mounts)
        atomic_write(path, source.read_bytes(), mtime, durable)
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def newer_than_existing(path: Path, mtime: float) -> bool:
    """True if `path` is missing or shows an older moment than `mtime`.

    The mtime of a saved photo is the event's time, so a late history event never
    replaces the photo of a later one.
    """
    try:
        return path.stat().st_mtime <= mtime
    except FileNotFoundError:
        return True
