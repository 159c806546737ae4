"""Annotated copies made on first request rather than with every event.

Drawing and encoding the annotated copy is most of the plugin's CPU for an event, and
most photos are never opened. With `annotate_on: request`, saving an event adds its
caption to the folder's `captions.jsonl` (see captions.py; never served); the first
`GET /snapshots/..._annotated.jpg` makes the copy from the photo and that caption, saves
it (dated like the photo, counted by the cleanup) and every later request is served that
same file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sophonfog_bridge import FaceRect

from . import captions, images
from .captions import ANNOTATED
from .fonts import FontSource
from .names import inside
from .store import atomic_write

log = logging.getLogger(__name__)


class Maker:
    """Makes a missing annotated copy when it is asked for, from its caption."""

    def __init__(
        self,
        root: Path,
        fonts: FontSource,
        max_pixels: int,
        max_side: int | None,
        saved: Callable[[list[Path]], Any],
        durable: bool = False,
    ):
        self.root, self.fonts = root, fonts
        self.max_pixels, self.max_side = max_pixels, max_side
        self.saved, self.durable = saved, durable

    def make(self, requested: str) -> bool:
        """True if `requested` (a path under the folder) is now there to be served."""
        if not requested.endswith(ANNOTATED):
            return False
        try:
            target = inside(self.root, Path(requested))
            found = captions.find(str(target.parent), target.name)
            if found is None:
                return False  # no caption (not annotated, or removed): a plain 404
            photo = target.with_name(str(found["photo"]))
            if photo.parent != target.parent:
                return False
            if not target.parent.resolve().is_relative_to(self.root.resolve()):
                return False  # a symlinked folder someone planted: never write through it
            data, mtime = photo.read_bytes(), os.stat(photo).st_mtime
            text = tuple(str(t) for t in found["text"])
            rect = None if found["rect"] is None else FaceRect(*map(int, found["rect"]))
        except (OSError, ValueError, KeyError, TypeError):
            return False  # no caption (not annotated, or removed): a plain 404
        try:
            decoded = images.decode(data, self.max_pixels, self.max_side)
        except images.BadImage as err:
            log.warning("snapshots: cannot annotate %s: %s", photo.name, err)
            return False
        copy = images.annotate(decoded.image, decoded.rect(rect), text, self.fonts)  # type: ignore[arg-type]
        decoded.image.close()
        atomic_write(target, copy, mtime, self.durable)
        self.saved([target])
        return True
