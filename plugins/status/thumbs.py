"""Downscaled JPEG thumbnails, made on first request and cached with their event."""

from __future__ import annotations

import io
import logging

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

# Event photos are hostile input: a small file may declare a 30000x30000 canvas.
MAX_PIXELS = 40_000_000


def thumbnail(data: bytes, max_px: int) -> bytes | None:
    """A JPEG no larger than max_px on either side, or None if `data` is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                log.debug("status: no thumbnail for a %dx%d image", image.width, image.height)
                return None
            image.draft("RGB", (max_px, max_px))  # JPEG: decode at reduced size, much faster
            small = image.convert("RGB")
            small.thumbnail((max_px, max_px))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=80)
            return out.getvalue()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        log.debug("status: cannot make a thumbnail: %s", err)
        return None


def cached_thumbnail(data: bytes, cache: dict[str, bytes], which: str, max_px: int) -> bytes | None:
    found = cache.get(which)
    if found is None:
        found = thumbnail(data, max_px)
        if found is not None:
            cache[which] = found  # a dict store is atomic; two racing makers agree anyway
    return found
