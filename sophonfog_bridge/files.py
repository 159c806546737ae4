"""Replacing a file so that a reader, or a restart after a crash, sees the old one or the new one.

The data goes to a hidden temporary name in the same folder, then is renamed over the
final name: a rename is atomic within a file system. Whether it also survives a power
cut is the caller's choice (`fsync`), because an fsync costs milliseconds on a
Raspberry Pi's SD card: most callers follow `spool.fsync` like the rest of the bridge.
Offered to plugins too: `from sophonfog_bridge.files import atomic_write`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Callable
from typing import TypeVar

# A leftover of a write that died half-way starts so; a cleanup may remove it when old.
TMP_PREFIX = ".tmp-"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
T = TypeVar("T")

# Temporary names are this process's random token and a count: drawing randomness for
# every file written was a system call each (snapshots writes several an event).
_token = secrets.token_hex(5)
_count = itertools.count()


def _fresh_token() -> None:
    global _token, _count
    _token, _count = secrets.token_hex(5), itertools.count()


# A forked child must not count from the parent's place under the parent's token.
if hasattr(os, "register_at_fork"):  # POSIX only; Windows never forks
    os.register_at_fork(after_in_child=_fresh_token)


def atomic_write(
    path: str | os.PathLike[str],
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
    path = os.fspath(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = temp_name(path)
    try:
        _write_new(tmp, payload, fsync)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync_folder:
        fsync_dir(os.path.dirname(path) or ".")
    if mtime is not None:
        # Only on the final name: a temporary file dated like an old event would look
        # like a crash's leftover (or the oldest file) to a cleanup running mid-write.
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (mtime, mtime))


def temp_name(path: str | os.PathLike[str]) -> str:
    """A fresh hidden name beside `path`, for a file that is renamed over it when complete."""
    folder, name = os.path.split(os.fspath(path))
    unique = f"{_token}{next(_count):x}"
    return os.path.join(folder, f"{TMP_PREFIX}{unique}{os.path.splitext(name)[1]}")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a file's creation or rename (its name in the folder) survive a power cut too."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder_and_retry(action: Callable[[], T], path: str) -> T:
    """`action()`, which creates a file at `path`; if its folder is missing, the folder
    is made and `action` tried once more.

    Cheaper than making sure of the folder before every write (most writes go to a
    folder that is there), and needed anyway: a cleanup thread may remove an empty folder
    at any moment between two writes.
    """
    try:
        return action()
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return action()


def _write_new(tmp: str, payload: bytes, fsync: bool) -> None:
    # os.open/os.write rather than open(): no buffer object, no isatty or seek calls.
    fd = make_folder_and_retry(lambda: os.open(tmp, _NEW_FILE, 0o666), tmp)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
