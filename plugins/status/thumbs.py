"""Downscaled JPEG thumbnails, made on first request and cached with their event."""

from __future__ import annotations

import logging

from sophonfog_bridge import imaging

log = logging.getLogger(__name__)

MAX_PIXELS = imaging.DEFAULT_MAX_PIXELS


def thumbnail(data: bytes, max_px: int) -> bytes | None:
    """A JPEG no larger than max_px on either side, or None if `data` is not an image."""
    try:
        # JPEG: decoded at a reduced DCT scale, much faster than in full.
        decoded = imaging.decode(data, MAX_PIXELS, max_px)
    except imaging.BadImage as err:
        log.debug("status: cannot make a thumbnail: %s", err)
        return None
    with decoded.image:
        return imaging.thumbnail(decoded.image, max_px)


def cached_thumbnail(data: bytes, cache: dict[str, bytes], which: str, max_px: int) -> bytes | None:
    found = cache.get(which)
    if found is None:
        found = thumbnail(data, max_px)
        if found is not None:
            cache[which] = found  # a dict store is atomic; two racing makers agree anyway
    return found
