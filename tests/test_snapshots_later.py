"""Annotated copies made when first asked for (`annotate_on: request`, the default).

Saving an event writes the photo and the copy's caption; `GET /snapshots/..._annotated.jpg`
makes the copy from them, saves it, and serves that same file from then on. It must be
the copy `annotate_on: save` would have written with the event, byte for byte.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import requests
from PIL import Image
from sophonfog_bridge.plugins.snapshots import retention

from sophonfog_bridge.samples import event_payload, jpeg

from .conftest import wait_for
from .snapshots_images import corrupt_jpeg

SCENE_1080P = jpeg(1920, 1080, seed=5, quality=65)
FACE = jpeg(96, 96, seed=42)


def start(bridge_factory, tmp_path: Path, name: str, **snapshots):
    snapshots = {"path": str(tmp_path / name), **snapshots}
    return bridge_factory(
        {
            "plugins": {
                "snapshots": snapshots,
                "mqtt": {"enabled": False},
                "syslog": {"enabled": False},
            }
        }
    )


def saved(bridge, root: Path, payload: dict) -> Path:
    """Post `payload`; its main photo once every plugin is done with it."""
    answer = bridge.post(payload=payload)
    assert answer.status_code == 200, answer.text
    short = answer.json()["event_id"][:8]
    wait_for(bridge.drained, 15, what="every plugin to catch up")
    return wait_for(lambda: list(root.rglob(f"*_{short}.jpg")), 5, what="the photo")[0]


def get(bridge, root: Path, path: Path) -> requests.Response:
    return requests.get(f"{bridge.url}/snapshots/{path.relative_to(root).as_posix()}", timeout=10)


def annotated_of(photo: Path) -> Path:
    return photo.with_name(photo.stem + "_annotated.jpg")


def test_the_copy_is_made_on_first_request_saved_and_the_same_as_one_made_with_the_event(
    bridge_factory, tmp_path
):
    payload = event_payload("v2r2", scene=SCENE_1080P, timestamp_ms=int(time.time() * 1000))
    lazy_root, eager_root = tmp_path / "lazy", tmp_path / "eager"
    lazy = start(bridge_factory, tmp_path, "lazy")
    photo = saved(lazy, lazy_root, payload)
    assert photo.read_bytes() == SCENE_1080P
    annotated = annotated_of(photo)
    assert not annotated.exists()  # not made with the event
    # Its caption is a line in the folder's index, not a file of its own.
    assert sorted(p.name for p in photo.parent.iterdir()) == [photo.name, "captions.jsonl"]
    [caption] = [json.loads(x) for x in (photo.parent / "captions.jsonl").read_text().splitlines()]
    assert caption["copy"] == annotated.name and caption["photo"] == photo.name
    assert caption["text"][0] == "小明 · employee · 92%"
    assert caption["rect"] == [100, 40, 200, 160]

    first = get(lazy, lazy_root, annotated)
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/jpeg"
    assert annotated.read_bytes() == first.content  # saved where it would have been
    made = annotated.stat()
    assert made.st_mtime == photo.stat().st_mtime  # dated like its photo, for the cleanup
    second = get(lazy, lazy_root, annotated)
    assert second.content == first.content
    assert annotated.stat().st_ino == made.st_ino  # served, not made again

    with Image.open(annotated) as image:
        assert image.size == (960, 540)
        r, g, b = image.convert("RGB").getpixel((50, 50))  # the face box's left edge, halved
        assert r > 180 and g < 110 and b < 110, (r, g, b)

    eager = start(bridge_factory, tmp_path, "eager", annotate_on="save")
    eager_photo = saved(eager, eager_root, payload)
    assert annotated_of(eager_photo).read_bytes() == first.content
    assert lazy.stop() == 0 and eager.stop() == 0


def test_only_a_missing_annotated_copy_with_a_caption_is_made(bridge_factory, tmp_path):
    root = tmp_path / "snaps"
    bridge = start(bridge_factory, tmp_path, "snaps", thumbnail_px=64)
    payload = event_payload("v2r2", scene=corrupt_jpeg(), face=FACE)
    photo = saved(bridge, root, payload)
    # The corrupt scene never lands; the face is the photo, and its copy has no face box.
    assert photo.read_bytes() == FACE
    before = {p.name for p in root.rglob("*")}
    folder = photo.parent.relative_to(root).as_posix()
    for wrong in (
        f"{folder}/{photo.stem}_face_annotated.jpg",  # no such photo, no caption
        f"{folder}/.{photo.stem}_annotated.jpg",
        f"{folder}/captions.jsonl",  # the captions themselves are never served
        f"{folder}/..%2F{photo.parent.name}/{photo.stem}_annotated.jpg",
        f"{folder}/{photo.stem}_thumb_annotated.jpg",
    ):
        answer = requests.get(f"{bridge.url}/snapshots/{wrong}", timeout=10)
        assert answer.status_code in (400, 404), (wrong, answer.status_code)
    assert {p.name for p in root.rglob("*")} == before
    answer = get(bridge, root, annotated_of(photo))
    assert answer.status_code == 200
    with Image.open(annotated_of(photo)) as image:
        assert image.size == (96, 96)
    health = bridge.health()["plugins"]["snapshots"]
    assert health["skipped_images"] == 1 and health["failed"] == 0
    assert "Traceback" not in bridge.logs()
    assert bridge.stop() == 0


def test_without_annotation_nothing_is_made_on_request(bridge_factory, tmp_path):
    root = tmp_path / "snaps"
    bridge = start(bridge_factory, tmp_path, "snaps", annotate=False)
    photo = saved(bridge, root, event_payload("v2r2", scene=jpeg(320, 240, seed=1)))
    assert get(bridge, root, annotated_of(photo)).status_code == 404
    assert not list(root.rglob("*_annotated.*"))
    assert bridge.stop() == 0


def test_the_cleanup_removes_a_caption_with_its_photo(tmp_path):
    folder = tmp_path / "2020-01-01" / "cam"
    folder.mkdir(parents=True)
    old = time.time() - 40 * 86400
    for name in ("x.jpg", "x_annotated.json", "x_annotated.jpg"):
        (folder / name).write_bytes(b"data")
        os.utime(folder / name, (old, old))
    removed, _, _ = retention.clean(tmp_path, retention.Policy(30, 0))
    assert removed == 3 and not (tmp_path / "2020-01-01").exists()


def test_a_folders_captions_share_one_index_and_each_copy_is_made_from_its_own(
    bridge_factory, tmp_path
):
    root = tmp_path / "snaps"
    bridge = start(bridge_factory, tmp_path, "snaps")
    names = ["小明", "Ana", "Bob"]
    photos = [
        saved(bridge, root, event_payload("v2r2", identity_name=n, scene=jpeg(320, 240, seed=i)))
        for i, n in enumerate(names)
    ]
    folder = photos[0].parent
    assert {p.parent for p in photos} == {folder}
    # One file an event, and the folder's one index: no caption file beside each photo.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for p in photos] + ["captions.jsonl"]
    )
    lines = (folder / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    found = [json.loads(x) for x in lines]
    assert [(c["photo"], c["text"][0].split(" · ")[0]) for c in found] == [
        (p.name, n) for p, n in zip(photos, names, strict=True)
    ]
    for photo in photos:
        answer = get(bridge, root, annotated_of(photo))
        assert answer.status_code == 200, photo.name
        assert annotated_of(photo).read_bytes() == answer.content
    # Each copy carries its own caption: three different pictures.
    assert len({annotated_of(p).read_bytes() for p in photos}) == 3
    assert bridge.stop() == 0


def test_a_photo_saved_with_a_caption_file_of_its_own_still_gets_its_copy(bridge_factory, tmp_path):
    """Photos saved by an older bridge have `<stem>_annotated.json` beside them."""
    root = tmp_path / "snaps"
    bridge = start(bridge_factory, tmp_path, "snaps")
    folder = root / "2024-05-01" / "cam"
    folder.mkdir(parents=True)
    (folder / "081502_employee_x_3f2a9c1d.jpg").write_bytes(jpeg(320, 240, seed=9))
    (folder / "081502_employee_x_3f2a9c1d_annotated.json").write_text(
        json.dumps(
            {"photo": "081502_employee_x_3f2a9c1d.jpg", "text": ["x", "y"], "rect": [1, 2, 30, 40]}
        )
    )
    answer = get(bridge, root, folder / "081502_employee_x_3f2a9c1d_annotated.jpg")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/jpeg"
    assert (folder / "081502_employee_x_3f2a9c1d_annotated.jpg").read_bytes() == answer.content
    assert bridge.stop() == 0
