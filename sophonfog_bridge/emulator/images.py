"""Small, realistic, deterministic JPEGs: a scene with a person, its face crop, a portrait."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

SCENE_SIZE = (480, 270)
FACE_SIZE = 112
SKIN = [(241, 194, 167), (224, 172, 138), (198, 134, 103), (141, 85, 36), (255, 219, 186)]
HAIR = [(30, 20, 15), (70, 45, 30), (120, 90, 60), (20, 20, 20), (160, 150, 140)]
CLOTHES = [(40, 60, 110), (120, 30, 30), (50, 90, 60), (60, 60, 60), (200, 200, 210)]


@dataclass(frozen=True)
class EventImages:
    """The three photos of one event, as the box keeps them on disk."""

    scene: bytes
    face: bytes
    register: bytes | None
    face_box: tuple[int, int, int, int]


def _jpeg(image: Image.Image, quality: int = 82) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    # A corridor: wall gradient, a floor, a door frame, then sensor noise so it compresses
    # like a camera picture rather than a flat drawing.
    w, h = size
    base = rng.randint(150, 210)
    image = Image.linear_gradient("L").resize(size).point(lambda v: base - v // 6)
    image = Image.merge("RGB", [image, image.point(lambda v: v - 6), image.point(lambda v: v - 14)])
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, int(h * 0.78), w, h], fill=(110, 100, 90))
    door_x = rng.randint(w // 10, w // 3)
    door = [door_x, int(h * 0.15), door_x + w // 6, int(h * 0.78)]
    draw.rectangle(door, outline=(90, 70, 50), width=6)
    noise = Image.effect_noise(size, 18).convert("RGB")
    return Image.blend(image, noise, 0.12)


def _person(draw: ImageDraw.ImageDraw, look: int, cx: int, cy: int, r: int) -> None:
    # The look comes from the identity, so a person's gallery photo resembles their captures.
    rng = random.Random(look)
    skin, hair, cloth = rng.choice(SKIN), rng.choice(HAIR), rng.choice(CLOTHES)
    draw.rounded_rectangle([cx - 2 * r, cy + int(1.2 * r), cx + 2 * r, cy + 5 * r], r, fill=cloth)
    draw.rectangle([cx - r // 3, cy + r // 2, cx + r // 3, cy + int(1.3 * r)], fill=skin)  # neck
    draw.ellipse([cx - r, cy - int(1.25 * r), cx + r, cy + r], fill=skin)  # head
    draw.chord([cx - r, cy - int(1.35 * r), cx + r, cy + r // 3], 180, 360, fill=hair)
    eye_y, dx, er = cy - r // 6, r // 2 - 2, max(2, r // 8)
    for ex in (cx - dx, cx + dx):
        draw.ellipse([ex - er, eye_y - er, ex + er, eye_y + er], fill=(40, 30, 30))
    draw.line([cx, eye_y + er, cx - 2, cy + r // 4], fill=(160, 110, 90), width=2)  # nose
    mouth = [cx - r // 2, cy + r // 4, cx + r // 2, cy + int(0.7 * r)]
    draw.arc(mouth, 20, 160, fill=(150, 60, 60), width=2)


def scene_with_face(seed: int, look: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A scene with one person in it, and the face's box [x1, y1, x2, y2] in the scene."""
    rng = random.Random(seed)
    image = _background(rng, SCENE_SIZE)
    r = rng.randint(24, 34)
    cx = rng.randint(SCENE_SIZE[0] // 4, SCENE_SIZE[0] * 3 // 4)
    cy = rng.randint(int(r * 1.6), SCENE_SIZE[1] // 2)
    _person(ImageDraw.Draw(image), look, cx, cy, r)
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    box = (cx - int(1.4 * r), cy - int(1.6 * r), cx + int(1.4 * r), cy + int(1.4 * r))
    return image, box


def portrait(look: int) -> bytes:
    """A gallery (registered) photo: a centred face on a plain background."""
    image = Image.new("RGB", (FACE_SIZE, FACE_SIZE), (228, 228, 232))
    _person(ImageDraw.Draw(image), look, FACE_SIZE // 2, FACE_SIZE // 2 - 4, 30)
    return _jpeg(image.filter(ImageFilter.GaussianBlur(0.5)), quality=88)


def event_images(seed: int, look: int, registered: bool) -> EventImages:
    """The scene, its face crop, and the gallery photo (None for a stranger) of one event."""
    scene, box = scene_with_face(seed, look)
    face = scene.crop(box).resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR)
    register = portrait(look) if registered else None
    return EventImages(_jpeg(scene), _jpeg(face, quality=90), register, box)


def blank_jpeg() -> bytes:
    """What V6 `getregisterimage` answers for an unknown id: a blank image, per the docs."""
    return _jpeg(Image.new("RGB", (FACE_SIZE, FACE_SIZE), (255, 255, 255)))
