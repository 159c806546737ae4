"""The snapshots plugin decodes a big scene only as far as its copies need, checking all of it.

A 1080p scene costs ~12 ms to decode in full; the annotated copy (960 px by default) and
the thumbnail need half or an eighth of that, and JPEG's DCT scaling gives it while still
decoding every entropy-coded block, so a damaged photo is refused as before.
"""

from __future__ import annotations

import pytest
from PIL import Image
from sophonfog_bridge.plugins.snapshots import images

from sophonfog_bridge import FaceRect
from sophonfog_bridge.samples import event_payload, jpeg

from .conftest import wait_for
from .snapshots_images import corrupt_jpeg

SCENE_1080P = jpeg(1920, 1080, seed=5, quality=65)


@pytest.mark.parametrize("side, size", [(None, (1920, 1080)), (960, (960, 540)), (1, (240, 135))])
def test_a_scene_is_decoded_at_the_scale_asked_for(side, size):
    decoded = images.decode(SCENE_1080P, 40_000_000, side)
    assert decoded.image.size == size
    assert decoded.scale == pytest.approx(size[0] / 1920)
    assert decoded.rect(FaceRect(100, 40, 200, 160)) == FaceRect(
        *(round(v * decoded.scale) for v in (100, 40, 200, 160))
    )


@pytest.mark.parametrize("side", [None, 960, 1])
def test_a_damaged_scene_is_refused_at_any_scale(side):
    with pytest.raises(images.BadImage):
        images.decode(SCENE_1080P[: len(SCENE_1080P) * 2 // 3], 40_000_000, side)
    with pytest.raises(images.BadImage):
        images.decode(corrupt_jpeg(), 40_000_000, side)


def test_a_1080p_scene_gets_a_960_px_annotated_copy_with_the_box_in_place(bridge_factory, tmp_path):
    snapshots = {"path": str(tmp_path / "snaps"), "thumbnail_px": 96, "annotate_on": "save"}
    bridge = bridge_factory(
        {
            "plugins": {
                "snapshots": snapshots,
                "mqtt": {"enabled": False},
                "syslog": {"enabled": False},
            }
        }
    )
    payload = event_payload("v2r2", scene=SCENE_1080P)
    # The sample's face box: left 100, top 40, right 200, bottom 160 in scene pixels.
    assert bridge.post(payload=payload).status_code == 200
    root = tmp_path / "snaps"
    annotated = wait_for(lambda: list(root.rglob("*_annotated.jpg")), what="annotated copy")[0]
    original = next(
        p for p in root.rglob("*.jpg") if p.stem == annotated.stem[: -len("_annotated")]
    )
    assert original.read_bytes() == SCENE_1080P
    with Image.open(annotated) as image:
        assert image.size == (960, 540)
        r, g, b = image.convert("RGB").getpixel((50, 50))  # the box's left edge, halved
        assert r > 180 and g < 110 and b < 110, (r, g, b)
    thumb = next(root.rglob("*_thumb.jpg"))
    with Image.open(thumb) as image:
        assert max(image.size) == 96
