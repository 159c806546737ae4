"""Downscaled JPEG thumbnails, made on first request and cached with their event."""

from __future__ import annotations

import io
import logging

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)


def thumbnail(data: bytes, max_px: int) -> bytes | None:
    """A JPEG no larger than max_px on either side, or None if `data` is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (max_px, max_px))  # JPEG: decode at reduced size, much faster
            small = image.convert("RGB")
            small.thumbnail((max_px, max_px))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=80)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        log.debug("status: cannot make a thumbnail: %s", err)
        return None


def cached_thumbnail(data: bytes, cache: dict[str, bytes], which: str, max_px: int) -> bytes | None:
    found = cache.get(which)
    if found is None:
        found = thumbnail(data, max_px)
        if found is not None:
            cache[which] = found  # a dict store is atomic; two racing makers agree anyway
    return found
