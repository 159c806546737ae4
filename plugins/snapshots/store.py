"""Writing photos so that a reader never sees half a file, and the per-device `latest`.

Every file is written by the core's `files.atomic_write` (a hidden temporary name in the
same folder, renamed over the final name), so readers never see half a photo. The fsync
before the rename is what survives a power cut; it costs ~5 ms a file here, so it
follows `spool.fsync` like the rest of the bridge's durability.
"""

from __future__ import annotations

import contextlib
import os

from sophonfog_bridge import files
from sophonfog_bridge.files import TMP_PREFIX

__all__ = ["TMP_PREFIX", "atomic_link", "atomic_write", "shown_moment"]


def atomic_write(
    path: str | os.PathLike[str], data: bytes, mtime: float | None = None, durable: bool = False
) -> None:
    files.atomic_write(path, data, fsync=durable, mtime=mtime)


def atomic_link(
    source: str | os.PathLike[str],
    path: str | os.PathLike[str],
    mtime: float,
    durable: bool = False,
) -> None:
    """Make `path` the same file as `source` (a hard link, else a copy), atomically."""
    tmp = files.temp_name(path)
    try:
        files.make_folder_and_retry(lambda: os.link(source, tmp), tmp)
    except OSError:  # file systems without hard links (some SMB/FAT mounts)
        with open(source, "rb") as original:
            atomic_write(path, original.read(), mtime, durable)
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def shown_moment(path: str | os.PathLike[str]) -> float:
    """The moment `path` shows (its mtime: a saved photo's is its event's), or -inf if missing."""
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return float("-inf")
