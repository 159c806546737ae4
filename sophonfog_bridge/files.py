"""Replacing a file so that a reader, or a restart after a crash, sees the old one or the new one.

The data goes to a hidden temporary name in the same folder, then is renamed over the
final name: a rename is atomic within a file system. Whether it also survives a power
cut is the caller's choice (`fsync`), because an fsync costs milliseconds on a
Raspberry Pi's SD card: most callers follow `spool.fsync` like the rest of the bridge.
Offered to plugins too: `from sophonfog_bridge.files import atomic_write`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

# A leftover of a write that died half-way starts so; a cleanup may remove it when old.
TMP_PREFIX = ".tmp-"


def atomic_write(
    path: Path,
    data: bytes | str,
    *,
    fsync: bool,
    fsync_folder: bool = False,
    mtime: float | None = None,
) -> None:
    """Replace `path` with `data` (text is written as UTF-8), creating its folder if needed.

    `fsync` makes the content durable before the rename; `fsync_folder` makes the rename
    itself durable too. `mtime` dates the final file (never the temporary one). On any
    error the temporary file is removed and the error raised; `path` is left as it was.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with _create(tmp) as handle:
            handle.write(payload)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync_folder:
        fsync_dir(path.parent)
    if mtime is not None:
        # Only on the final name: a temporary file dated like an old event would look
        # like a crash's leftover (or the oldest file) to a cleanup running mid-write.
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (mtime, mtime))


def temp_name(path: Path) -> Path:
    """A fresh hidden name beside `path`, for a file that is renamed over it when complete."""
    return path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}{path.suffix}")


def fsync_dir(path: Path) -> None:
    """Make a file's creation or rename (its name in the folder) survive a power cut too."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(tmp: Path):
    try:
        return open(tmp, "xb")
    except FileNotFoundError:
        # A cleanup thread may remove an empty folder between mkdir and open.
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return open(tmp, "xb")
