"""The snapshots plugin on a real bridge process: real files, real HTTP, real Pillow."""

from __future__ import annotations

import http.client
import io
import os
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from PIL import Image
from sophonfog_bridge.plugins.snapshots.names import safe_component

from sophonfog_bridge.samples import SHAPES, as_form, event_payload, jpeg

from .conftest import wait_for
from .recorder import read_lines
from .snapshots_images import bomb_png, corrupt_jpeg

TZ = "Asia/Shanghai"  # local time that is not UTC, so the layout is checked for real
EP = "AKOPKKKKK__192.168.1.101"
OTHER_EP = "AKOPKKKKK__192.168.1.102"
RECORDER = {"recorder": "tests.recorder:Recorder"}
SCENE = jpeg(320, 240, seed=41)
FACE = jpeg(96, 96, seed=42)
REGISTERED = jpeg(112, 112, seed=43)
PATHS = {"history": "/EventServer/api/SophonFogHistoryEvent"}


@pytest.fixture(autouse=True)
def local_time(monkeypatch):
    monkeypatch.setenv("TZ", TZ)


def config(tmp_path: Path, **snapshots) -> dict:
    return {
        "plugins": {
            "mqtt": {"enabled": False},
            "syslog": {"enabled": False},
            "recorder": {"path": str(tmp_path / "rec.jsonl")},
            "snapshots": snapshots,
        }
    }


def post(bridge, payload: dict, shape: str = "v2r2", form: bool = False) -> str:
    path = PATHS.get(shape, "/RealTimeEvent")
    if form:
        fields = {k: (None, v) for k, v in as_form(payload).items()}
        answer = requests.post(bridge.url + path, files=fields, timeout=5)
    else:
        answer = bridge.post(path, payload)
    assert answer.status_code == 200, answer.text
    return answer.json()["event_id"]


def recorded(tmp_path: Path, count: int) -> list[dict]:
    return wait_for(
        lambda: len(lines := read_lines(tmp_path / "rec.jsonl")) >= count and lines,
        15,
        what=f"{count} events at the recorder",
    )


def drained(bridge) -> bool:
    return wait_for(bridge.drained, 15, what="every plugin to catch up")


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def expected_stem(ts_ms: int, device: str, person: str, name: str, event_id: str) -> str:
    local = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(TZ))
    return f"{local:%Y-%m-%d}/{device}/{local:%H%M%S}_{person}_{name}_{event_id[:8]}"


@pytest.mark.parametrize("annotate_on", ["save", "request"])
def test_every_shape_saves_the_exact_bytes_annotated_copy_thumbnail_and_latest(
    bridge_factory, tmp_path, annotate_on
):
    bridge = bridge_factory(
        config(
            tmp_path, save_registered=True, save_face=True, thumbnail_px=64, annotate_on=annotate_on
        ),
        plugins=RECORDER,
    )
    root = bridge.workdir / "snapshots"
    base_ms = int(time.time() * 1000) - 3_600_000
    sent = []
    for n, (shape, form) in enumerate((s, f) for s in SHAPES for f in (False, True)):
        ts_ms = base_ms + n * 61_000
        person = ["employee", "visitor", "vip", "stranger", "blacklist"][n % 5]
        name = f"小明{n}"
        scene, face = jpeg(320, 240, seed=100 + n), jpeg(96, 96, seed=200 + n)
        payload = event_payload(
            shape,
            identity_id=f"id{n}",
            identity_name=name,
            person_type=person,
            timestamp_ms=ts_ms,
            scene=scene,
            face=face,
            registered=REGISTERED,
        )
        event_id = post(bridge, payload, shape, form)
        sent.append((shape, form, ts_ms, person, name, event_id, scene, face))
    # The capture device as the core resolved it (ep_id, else device_id, else the IP).
    device_of = {line["event_id"]: line["device"] for line in recorded(tmp_path, len(sent))}
    drained(bridge)
    names = files_under(root)

    for shape, form, ts_ms, person, name, event_id, scene, face in sent:
        what = f"{shape} {'form' if form else 'json'}"
        stem = expected_stem(ts_ms, device_of[event_id], person, name, event_id)
        # The V6 websocket record carries no scene: its face picture is the photo.
        main = face if shape == "ws" else scene
        assert (root / f"{stem}.jpg").read_bytes() == main, what
        assert (root / f"{stem}_registered.jpg").read_bytes() == REGISTERED, what
        if shape in ("ws", "v2r1"):
            # ws: the face is already the photo; v2r1: no face picture and no face box.
            assert f"{stem}_face.jpg" not in names, what
        else:
            assert (root / f"{stem}_face.jpg").read_bytes() == face, what
        # Saved with the event, or made when first asked for (and saved then).
        assert (f"{stem}_annotated.jpg" in names) is (annotate_on == "save"), what
        served = requests.get(f"{bridge.url}/snapshots/{stem}_annotated.jpg", timeout=10)
        assert served.status_code == 200, what
        assert (root / f"{stem}_annotated.jpg").read_bytes() == served.content, what
        annotated = Image.open(io.BytesIO(served.content))
        original = Image.open(io.BytesIO(main))
        assert annotated.format == "JPEG" and annotated.size == original.size, what
        thumb = Image.open(root / f"{stem}_thumb.jpg")
        assert max(thumb.size) == 64, what
        if shape not in ("ws", "v2r1"):
            # The face box (left=100, top=40 .. bottom=160 in the sample) is drawn in red.
            r, g, b = annotated.convert("RGB").getpixel((100, 100))
            assert r > 180 and g < 110 and b < 110, (what, (r, g, b))

    # Without a face picture, the face is cut from the scene around the face box.
    cut = event_payload("v2r2", identity_id="cut", timestamp_ms=base_ms - 1000, scene=SCENE)
    del cut["ext_data"]["recognize_face"]
    cut_id = post(bridge, cut)
    recorded(tmp_path, len(sent) + 1)
    drained(bridge)
    [crop] = [n for n in files_under(root) if n.endswith(f"_{cut_id[:8]}_face.jpg")]
    assert Image.open(root / crop).size == (150, 180)

    # latest.jpg is the newest event of each device, latest_<type>.jpg per person type.
    for device in set(device_of.values()):
        mine = [s for s in sent if device_of[s[5]] == device]
        newest = max(mine, key=lambda s: s[2])
        newest_main = newest[7] if newest[0] == "ws" else newest[6]
        assert (root / device / "latest.jpg").read_bytes() == newest_main
        for person in {s[3] for s in mine}:
            last = max((s for s in mine if s[3] == person), key=lambda s: s[2])
            last_main = last[7] if last[0] == "ws" else last[6]
            assert (root / device / f"latest_{person}.jpg").read_bytes() == last_main

    # An older (history) event arriving late never replaces the newest photo.
    late = event_payload(
        "history", identity_id="late", timestamp_ms=base_ms - 86_400_000, scene=SCENE
    )
    post(bridge, late, "history")
    recorded(tmp_path, len(sent) + 2)
    drained(bridge)
    late_files = [n for n in files_under(root) if "_late_" in n or "_小明_" in n]
    assert late_files, "history events are saved too"
    assert (root / EP / "latest.jpg").read_bytes() != SCENE
    no_tmp = [n for n in files_under(root) if "/.tmp-" in n or n.startswith(".tmp-")]
    assert not no_tmp

    # Saved photos are served read-only with the right type; nothing else is.
    shape, form, ts_ms, person, name, event_id, scene, face = sent[0]
    stem = expected_stem(ts_ms, device_of[event_id], person, name, event_id)
    answer = requests.get(f"{bridge.url}/snapshots/{stem}.jpg", timeout=5)
    assert answer.status_code == 200 and answer.content == scene
    assert answer.headers["Content-Type"] == "image/jpeg"
    latest = requests.get(f"{bridge.url}/snapshots/{EP}/latest.jpg", timeout=5)
    assert latest.status_code == 200 and latest.content[:3] == b"\xff\xd8\xff"
    assert requests.post(f"{bridge.url}/snapshots/{stem}.jpg", timeout=5).status_code == 405

    (root / "notes.txt").write_text("not a photo")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(SCENE)
    (root / "escape.jpg").symlink_to(outside)
    refused = [
        "/snapshots/../config.yaml",
        "/snapshots/%2e%2e/config.yaml",
        "/snapshots/%2E%2E/%2E%2E/secret.jpg",
        "/snapshots/..%2fconfig.yaml",
        "/snapshots/..%5cconfig.yaml",
        "/snapshots/%2fetc%2fpasswd",
        "/snapshots//etc/passwd",
        "/snapshots/notes.txt",
        "/snapshots/escape.jpg",
        "/snapshots/" + stem.rsplit("/", 1)[0],
        "/snapshots/does-not-exist.jpg",
    ]
    for path in refused:
        status, body = raw_get(bridge.port, path)
        assert status == 404, (path, status)
        assert b"not a photo" not in body and b"spool" not in body and body[:3] != b"\xff\xd8\xff"
    assert bridge.stop() == 0


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET without any client-side path normalisation (requests would remove the `..`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


HOSTILE_NAMES = [
    "../../../etc/passwd",
    "..",
    ".",
    ".hidden",
    "a/b/c",
    "a\\b\\c",
    "\u202eevil\u200fgpj.exe",
    "中文/../名字",
    "x" * 250,
    "中" * 250,
    "CON",
    'q"<>|?*:',
]


def test_hostile_names_and_devices_stay_inside_the_folder(bridge_factory, tmp_path):
    bridge = bridge_factory(config(tmp_path), plugins=RECORDER)
    root = (bridge.workdir / "snapshots").resolve()
    before = {p for p in bridge.workdir.rglob("*") if not p.is_relative_to(root)}
    base_ms = int(time.time() * 1000)
    for n, name in enumerate(HOSTILE_NAMES):
        ep = "../../x__1.2.3.4" if n % 2 else "..\\..\\y__1.2.3.5"
        payload = event_payload(
            "v2r2", identity_id=f"h{n}", identity_name=name, ep_id=ep, timestamp_ms=base_ms + n
        )
        post(bridge, payload)
    recorded(tmp_path, len(HOSTILE_NAMES))
    drained(bridge)
    photos = [
        p for p in root.rglob("*.jpg") if "latest" not in p.name and "_annotated" not in p.name
    ]
    assert len(photos) == len(HOSTILE_NAMES)
    for photo in root.rglob("*"):
        assert photo.resolve().is_relative_to(root)
        assert not photo.is_symlink()
        rel = photo.relative_to(root)
        assert all(not part.startswith(".") for part in rel.parts), rel
        assert len(photo.name.encode()) <= 255
        assert not any(c in photo.name for c in "\\\u202e\u200f\x00")
    new_outside = {
        p
        for p in bridge.workdir.rglob("*")
        if not p.resolve().is_relative_to(root) and p not in before
    }
    assert all(p.name == "bridge.log" or "data" in p.parts for p in new_outside), new_outside
    assert not (tmp_path / "etc").exists() and not (bridge.workdir.parent / "x__1.2.3.4").exists()
    # Readable: Chinese letters are kept.
    assert any("中中中" in p.name for p in photos)
    assert any("中文_.._名字" in p.name for p in photos)
    assert bridge.stop() == 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("小明", "小明"),
        ("../../etc/passwd", "etc_passwd"),
        ("..", "unknown"),
        (".", "unknown"),
        ("", "unknown"),
        ("a\x00b", "ab"),
        ("a\\b", "a_b"),
        ("\u202eevil\u200f", "evil"),
        ("Zhang  San", "Zhang_San"),
        ("nul", "_nul"),
        ("x\n\ty", "x_y"),
    ],
)
def test_safe_component_keeps_letters_and_removes_what_escapes(text, expected):
    assert safe_component(text) == expected


def test_safe_component_bounds_very_long_names_by_bytes():
    assert safe_component("x" * 10_000) == "x" * 96
    chinese = safe_component("名" * 10_000)
    assert chinese == "名" * 32 and len(chinese.encode()) == 96
    mixed = safe_component("a" + "名" * 10_000)
    assert len(mixed.encode()) <= 96 and mixed.encode().decode() == mixed


def test_corrupt_jpeg_and_bomb_are_reported_and_do_not_stop_deliveries(bridge_factory, tmp_path):
    bridge = bridge_factory(
        config(tmp_path, save_registered=True, save_face=True), plugins=RECORDER
    )
    root = bridge.workdir / "snapshots"
    bomb = bomb_png()
    started = time.monotonic()
    bad_ids = [
        post(bridge, event_payload("v2r2", identity_id="corrupt", scene=corrupt_jpeg(), face=FACE)),
        post(bridge, event_payload("v2r2", identity_id="bomb", scene=bomb, registered=bomb)),
    ]
    good_id = post(bridge, event_payload("v2r2", identity_id="good", scene=SCENE, face=FACE))
    lines = recorded(tmp_path, 3)
    assert [line["event_id"] for line in lines] == [*bad_ids, good_id]
    assert lines[1]["spot_pic"]["len"] == len(bomb)
    drained(bridge)
    assert time.monotonic() - started < 10
    names = files_under(root)

    def saved(event_id, suffix):
        return [n for n in names if n.endswith(f"_{event_id[:8]}{suffix}")]

    # The corrupt scene is skipped; the event's good face picture is still kept.
    assert len(saved(bad_ids[0], ".jpg")) == 1
    assert (root / saved(bad_ids[0], ".jpg")[0]).read_bytes() == FACE
    # Scene and registered photo of the bomb are both refused; its face is kept.
    assert not saved(bad_ids[1], "_registered.png") and not saved(bad_ids[1], ".png")
    assert (root / saved(bad_ids[1], ".jpg")[0]).read_bytes() == jpeg(112, 112, seed=3)
    assert (root / saved(good_id, ".jpg")[0]).read_bytes() == SCENE
    assert (root / saved(good_id, "_face.jpg")[0]).read_bytes() == FACE

    health = bridge.health()["plugins"]["snapshots"]
    assert health["skipped_images"] == 3 and health["failed"] == 0
    logs = bridge.logs()
    assert "event " + bad_ids[0][:8] + ": spot_pic skipped: " in logs
    assert "over the limit" in logs and "decompression bomb" in logs
    assert "Traceback" not in logs
    assert bridge.stop() == 0


def test_filters_and_retention_remove_exactly_what_they_should(bridge_factory, tmp_path):
    workdir = tmp_path / "b"
    root = workdir / "snapshots"
    now = time.time()
    day = 86400

    def put(rel: str, age_days: float, size: int = 10_000) -> str:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff" + b"\0" * (size - 3))
        os.utime(path, (now - age_days * day, now - age_days * day))
        return rel

    too_old = put("2020-01-01/cam/000000_employee_a_11111111.jpg", 40)
    also_old = put("2020-01-02/cam/000000_employee_b_22222222_thumb.jpg", 31, 2_000)
    stale_tmp = put("2024-05-05/cam/.tmp-abc.jpg", 1)
    by_size = [
        put(f"2024-05-0{n}/cam/000000_visitor_c{n}_3333333{n}.jpg", 6 - n) for n in range(1, 6)
    ]
    kept_latest = put("cam/latest.jpg", 400)
    kept_note = "2020-01-01/notes.txt"
    (root / kept_note).write_text("mine")
    os.utime(root / kept_note, (now - 400 * day, now - 400 * day))
    empty_dated = root / "2019-12-31" / "cam"
    empty_dated.mkdir(parents=True)

    bridge = bridge_factory(
        config(
            tmp_path,
            retention_days=30,
            max_total_mb=0.03,
            cleanup_interval_s=0.5,
            person_types=["employee", "blacklist"],
            devices=[EP],
            annotate=False,
        ),
        plugins=RECORDER,
        workdir=workdir,
    )
    wait_for(
        lambda: bridge.health()["plugins"]["snapshots"].get("cleanup", {}).get("runs", 0) >= 1,
        10,
        what="a cleanup pass",
    )
    remaining = files_under(root)
    # Age: the 40- and 31-day-old photos go; size: the two oldest of five 10 kB photos go
    # so that 30 kB is left; a stale temporary file goes; latest and notes stay.
    assert remaining == {*by_size[2:], kept_latest, kept_note}, remaining
    assert too_old not in remaining and also_old not in remaining and stale_tmp not in remaining
    assert not (root / "2019-12-31").exists()

    # Filters: only employee/blacklist events from EP are saved.
    small = jpeg(64, 48, seed=7)  # stays within the size bound on the next pass
    ids = {
        "visitor": post(bridge, event_payload("v2r1", identity_id="v", person_type="visitor")),
        "other": post(bridge, event_payload("v2r1", identity_id="o", ep_id=OTHER_EP)),
        "wanted": post(bridge, event_payload("v2r1", identity_id="w", scene=small)),
    }
    recorded(tmp_path, 3)
    drained(bridge)
    names = files_under(root)
    assert not [n for n in names if ids["visitor"][:8] in n or ids["other"][:8] in n]
    wanted = [n for n in names if n.endswith(ids["wanted"][:8] + ".jpg")]
    assert len(wanted) == 1 and (root / wanted[0]).read_bytes() == small
    assert not [n for n in names if "_annotated" in n]
    assert bridge.health()["plugins"]["snapshots"]["filtered"] == 2
    assert bridge.stop() == 0


def test_default_config_saves_with_a_chinese_font(bridge_factory, tmp_path):
    """Enabled by default on a fresh machine, with a CJK font (Debian fonts-wqy-microhei)."""
    bridge = bridge_factory({"plugins": {"mqtt": {"enabled": False}}})
    event_id = post(bridge, event_payload("v2r2", scene=SCENE))
    root = bridge.workdir / "snapshots"
    photo = wait_for(
        lambda: [p for p in root.rglob(f"*_{event_id[:8]}.jpg")], 10, what="the photo"
    )[0]
    drained(bridge)
    # By default the annotated copy is made when first asked for.
    wanted = photo.with_name(photo.stem + "_annotated.jpg").relative_to(root).as_posix()
    answer = requests.get(f"{bridge.url}/snapshots/{wanted}", timeout=10)
    assert answer.status_code == 200 and answer.content.startswith(b"\xff\xd8")
    health = bridge.health()["plugins"]["snapshots"]
    assert health["font_cjk"] is True, health
    assert health["enabled"] and health["failed"] == 0
    assert bridge.stop() == 0


def test_cleaner_thread_stops_and_joins(tmp_path):
    # A Thread subclass that shadows Thread._stop makes join() raise at shutdown.
    from sophonfog_bridge.plugins.snapshots.retention import Cleaner, Policy

    cleaner = Cleaner(tmp_path, Policy(retention_days=30, max_total_bytes=0), interval_s=60)
    cleaner.start()
    cleaner.stop()
    cleaner.join(5)
    assert not cleaner.is_alive()


def test_a_cleanup_pass_during_a_write_of_an_old_event_does_not_remove_the_temporary(
    tmp_path, monkeypatch
):
    """A late history event's photo is old by its mtime; mid-write it must not look stale."""
    from sophonfog_bridge.plugins.snapshots import store
    from sophonfog_bridge.plugins.snapshots.retention import Policy, clean

    real_replace = os.replace
    passes: list[tuple[int, int, int]] = []

    def replace_after_a_cleanup_pass(src, dst):
        # The cleanup thread runs at any moment; here, at the worst one.
        passes.append(clean(tmp_path, Policy(retention_days=0, max_total_bytes=0)))
        real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace_after_a_cleanup_pass)
    target = tmp_path / "2020-01-01" / "cam" / "000000_employee_a_11111111.jpg"
    two_hours_ago = time.time() - 7200
    store.atomic_write(target, b"\xff\xd8\xffphoto", two_hours_ago)
    assert passes == [(0, 0, len(b"\xff\xd8\xffphoto"))]
    assert target.read_bytes() == b"\xff\xd8\xffphoto"
    assert target.stat().st_mtime == pytest.approx(two_hours_ago)
