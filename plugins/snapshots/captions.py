"""The captions of annotated copies not made yet: one JSON-lines file per photo folder.

A caption is what the copy needs that its photo does not hold (the caption lines, the
face box). Each event's goes as one line to `captions.jsonl` in its photo's folder,
rather than to a small file of its own beside the photo: creating a file is the costliest
thing the plugin does for an event on many disks (a new inode: up to a millisecond of
CPU on the test machine's ext4, where appending a line costs 2 µs), it wears an SD
card's metadata blocks, and a caption beside every photo cluttered the folder for
people browsing it. A line is found by the name of the copy it is for, and the last line for
a copy is its caption (a completed event writes anew).

The file's modification time is its newest photo's (the event's time, never older), so
the cleanup, which removes the oldest first, removes it after every photo it describes.
Photos saved before there was an index kept their caption in `<stem>_annotated.json`;
those are still read.
"""

from __future__ import annotations

import json
import os

from sophonfog_bridge import FaceRect
from sophonfog_bridge.files import make_folder_and_retry

INDEX = "captions.jsonl"
ANNOTATED = "_annotated.jpg"
# The caption file a photo had before the index: read, never written any more.
OLD_SUFFIX = "_annotated.json"
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def line(copy: str, photo: str, text: tuple[str, str], rect: FaceRect | None) -> bytes:
    """The caption of the copy named `copy`, made from the photo named `photo`, as its
    line in the index."""
    box = None if rect is None else [rect.left, rect.top, rect.right, rect.bottom]
    return _dumps({"copy": copy, "photo": photo, "text": list(text), "rect": box}) + b"\n"


def _dumps(value: dict) -> bytes:
    # One fixed form, whichever JSON library is installed: `find` searches for its bytes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def append(folder: str, entry: bytes, mtime: float, durable: bool) -> str:
    """Add `entry` to `folder`'s index, dated `mtime` unless it holds a newer photo's
    caption already; the index's path."""
    path = os.path.join(folder, INDEX)
    # The cleanup may have taken the folder away with a photo too old to keep (a late
    # history upload) a moment ago.
    fd = make_folder_and_retry(lambda: os.open(path, _APPEND, 0o666), path)
    try:
        info = os.fstat(fd)
        newest = max(info.st_mtime, mtime) if info.st_size else mtime
        # Only this plugin's worker appends; a line torn by a crash or a full disk is
        # skipped by `find`, and the event written again.
        view = memoryview(entry)
        while view:
            view = view[os.write(fd, view) :]
        os.utime(fd, (newest, newest))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return path


def find(folder: str, copy: str) -> dict | None:
    """The caption of the copy named `copy` in `folder`: the last line for it in the
    index, else its own caption file from before the index; None if it has none."""
    try:
        with open(os.path.join(folder, INDEX), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        data = b""
    # Every line begins with the copy's name, in the form `line` writes it.
    needle = _dumps({"copy": copy})[:-1] + b","
    end = len(data)
    while (start := data.rfind(needle, 0, end)) >= 0:
        stop = data.find(b"\n", start)
        try:
            return json.loads(data[start : stop if stop >= 0 else len(data)])
        except ValueError:
            end = start  # a line torn by a crash: an older one may be whole
    try:
        with open(os.path.join(folder, copy.removesuffix(ANNOTATED) + OLD_SUFFIX), "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None
