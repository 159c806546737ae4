"""The derived copies of a saved photo: annotated, thumbnail, face crop.

Checking the untrusted bytes (a JPEG's structure, without decoding it) and decoding them
(under a pixel cap, at a reduced JPEG scale when that is enough) is the core's
`sophonfog_bridge.imaging`, shared with the other plugins.
"""

from __future__ import annotations

from datetime import datetime

from PIL import Image, ImageDraw, ImageFont

from sophonfog_bridge import Event, FaceRect
from sophonfog_bridge.imaging import (
    BadImage,
    Checked,
    Decoded,
    ImageBomb,
    check,
    decode,
    encode_jpeg,
    rgb,
    thumbnail,
)

from .fonts import FontSource

__all__ = [
    "BadImage",
    "Checked",
    "Decoded",
    "ImageBomb",
    "annotate",
    "caption",
    "check",
    "decode",
    "face_crop",
    "thumbnail",
]
BOX_COLOUR = (255, 48, 48)


def clamp_rect(rect: FaceRect, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The rect inside the image, or None if it is empty or entirely outside."""
    width, height = size
    left, right = sorted((max(0, min(rect.left, width)), max(0, min(rect.right, width))))
    top, bottom = sorted((max(0, min(rect.top, height)), max(0, min(rect.bottom, height))))
    if right - left < 2 or bottom - top < 2:
        return None
    return left, top, right, bottom


def face_crop(image: Image.Image, rect: FaceRect) -> bytes | None:
    """The face with a margin, cut from the scene, when the box sent no face picture."""
    box = clamp_rect(rect, image.size)
    if box is None:
        return None
    left, top, right, bottom = box
    margin_x, margin_y = (right - left) // 4, (bottom - top) // 4
    padded = (
        max(0, left - margin_x),
        max(0, top - margin_y),
        min(image.width, right + margin_x),
        min(image.height, bottom + margin_y),
    )
    return encode_jpeg(image.crop(padded))


def caption(event: Event, local: datetime, name: str) -> tuple[str, str]:
    """Who (name, person type, score), then where and when (device, local time)."""
    return (
        _one_line(f"{name} · {event.person_type.value} · {event.score * 100:.0f}%"),
        _one_line(f"{event.device} · {local:%Y-%m-%d %H:%M:%S}"),
    )


def _one_line(text: str) -> str:
    # Pillow refuses to measure multi-line text; a caption line must stay one line.
    return " ".join(text.splitlines())


def annotate(
    image: Image.Image, rect: FaceRect | None, text: tuple[str, str], fonts: FontSource
) -> bytes:
    """The face box and a caption band along the bottom (one or two lines), drawn on
    `image` itself when it is RGB: the caller's last use of it."""
    canvas = rgb(image)
    draw = ImageDraw.Draw(canvas, "RGBA")
    line = max(2, round(min(canvas.size) / 160))
    if rect is not None:
        box = clamp_rect(rect, canvas.size)
        if box is not None:
            draw.rectangle(box, outline=BOX_COLOUR, width=line)
    font_px = max(12, min(48, canvas.height // 18))
    font = fonts.get(font_px)
    pad = max(3, font_px // 4)
    width = canvas.width - 2 * pad
    joined = " · ".join(text)
    lines = [joined] if draw.textlength(joined, font=font) <= width else list(text)
    lines = [_fit(draw, t, font, width) for t in lines]
    step = font_px + pad
    top = canvas.height - len(lines) * step - pad
    draw.rectangle((0, top, canvas.width, canvas.height), fill=(0, 0, 0, 160))
    for n, text_line in enumerate(lines):
        draw.text((pad, top + pad + n * step), text_line, font=font, fill=(255, 255, 255))
    return encode_jpeg(canvas)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """Shorten the caption with an ellipsis until it fits the image width."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
