"""Every documented payload shape becomes the same event; bad fields are named."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from sophonfog_bridge import DeviceType, EventKind, PersonType, boxhealth
from sophonfog_bridge.event import BoxStatus, Event, FaceRect
from sophonfog_bridge.samples import (
    as_form,
    b64,
    devices_payload,
    event_payload,
    jpeg,
    status_payload,
    system_payload,
    v5_history,
    v6_history,
)
from sophonfog_bridge.wire import (
    WireError,
    coerce_form,
    looks_like_status,
    parse_event,
    parse_status,
)

NOW_MS = int(time.time() * 1000)
SCENE, REG, FACE = jpeg(160, 120, seed=11), jpeg(64, 64, seed=12), jpeg(64, 64, seed=13)


def payload(shape: str, **kw):
    return event_payload(shape, timestamp_ms=NOW_MS, scene=SCENE, registered=REG, face=FACE, **kw)


@pytest.mark.parametrize("shape", ["v2r1", "v2r2", "history", "platform"])
@pytest.mark.parametrize("form", [False, True])
def test_documented_shapes_normalise_alike(shape, form):
    raw = payload(shape, person_type="visitor", device_type="access_control")
    event = parse_event(coerce_form(as_form(raw)) if form else raw)
    assert event.identity_id == "10001"
    assert event.identity_name == "小明"
    assert event.group_name == "staff"
    assert event.person_type is PersonType.VISITOR
    assert event.device_type is DeviceType.ACCESS_CONTROL
    assert event.score == pytest.approx(0.92)
    # V2R1 sends seconds, the others milliseconds: both land on the same second.
    assert int(event.timestamp.timestamp()) == NOW_MS // 1000
    assert event.timestamp.tzinfo is timezone.utc
    assert event.reg_pic == REG
    assert event.spot_pic == SCENE
    assert event.device_ip == "192.168.1.101"
    assert event.kind is (EventKind.HISTORY if shape == "history" else EventKind.REALTIME)
    assert event.warnings == ()


def test_v2r1_and_history_carry_ep_id_and_box():
    for shape in ("v2r1", "history"):
        event = parse_event(payload(shape))
        assert event.ep_id == "AKOPKKKKK__192.168.1.101"
        assert event.device == event.ep_id
        assert event.box == "AKOPKKKKK"


def test_v2r2_face_quality_and_rect():
    event = parse_event(payload("v2r2"))
    assert event.face_pic == FACE
    assert (event.face_rect.left, event.face_rect.top) == (100, 40)
    assert (event.face_rect.right, event.face_rect.bottom) == (200, 160)
    assert event.face_quality["box"]["fiqa_result"] is True
    assert "spot_pic" not in event.ext_data and "recognize_face" not in event.ext_data


def test_platform_push_uses_device_id_and_identity_info():
    event = parse_event(payload("platform"))
    assert event.device == payload("platform")["device_id"]
    assert event.identity_info["ext_info"]["room"] == "301"


def test_v6_websocket_record():
    raw = payload("ws", person_type="blacklist", score=0.8205)
    event = parse_event(raw)
    # The box's own id is kept for its photo API, but the identity is the bridge's: the
    # history upload of the same recognition carries no event_id at all.
    assert event.box_event_id == raw["event_id"] and event.event_id != raw["event_id"]
    assert event.person_type is PersonType.BLACKLIST
    assert event.score == pytest.approx(0.8205)
    assert event.device == "AKOPKKKKK__192.168.1.101"
    assert event.device_type is DeviceType.UNKNOWN
    assert event.reg_pic == REG and event.face_pic == FACE and event.spot_pic is None


def v6_live(**changes):
    """A V6 real-time record as the 5.5 page's table documents it."""
    record = {
        "event_id": "1628066406652506",
        "timestamp": NOW_MS,
        "identity_id": "100000",
        "identity_name": "小王",
        "user_type": "employee",
        "score": 82.05,
        "media_device_ip": "192.168.1.101",
        "media_device_id": "04f98265-1fad-47e5-9dda-66e191272055",
        "media_device_type": "photo",
        "register_image": "data:image/jpeg;base64," + b64(REG),
        "recognize_face_image": "data:image/jpeg;base64," + b64(FACE),
        "recognize_face_attr": {
            "box": [50, 23, 173, 183],
            "point": [81.97, 89.39, 120.1, 88.2],
            "gender": "male",
            "age": "youth",
            "glasses": None,
            "feature_base64_str": "r6Y8" * 100,
        },
    }
    record.update(changes)
    return record


def v5_live(**changes):
    """A V5R7 real-time record as the 5.5 page's example shows it (identity_info made JSON)."""
    record = {
        "reg_pic": b64(REG),
        "ext_data": {
            "person_type": 5,
            "device_ip": "192.168.1.243",
            "device_type": "0",
            "spot_pic": b64(SCENE),
            "recognize_face": b64(FACE),
        },
        "identity_id": "666666",
        "device_id": "04f98265-1fad-47e5-9dda-66e191272055",
        "identity_info": {"addTime": 1594111791, "image_id": "5282", "name": "小明", "type": 5},
        "score": 0.6231614351272583,
        "timestamp": NOW_MS,
        "group_name": "default_group",
        "identity_name": "小明",
    }
    record.update(changes)
    return record


def test_v6_live_record_face_box_becomes_the_face_rect():
    event = parse_event(v6_live())
    assert event.device == "04f98265-1fad-47e5-9dda-66e191272055"
    assert event.device_ip == "192.168.1.101"
    assert event.face_rect is not None
    rect = event.face_rect
    assert (rect.left, rect.top, rect.right, rect.bottom) == (50, 23, 173, 183)
    # The attributes, but never the face's feature vector (a biometric template), in the
    # spool or anywhere a plugin can see.
    assert event.face_attributes["gender"] == "male" and event.face_attributes["age"] == "youth"
    assert "recognize_face_attr" not in event.raw
    assert "r6Y8" not in repr(event.to_parts()[0])


@pytest.mark.parametrize(
    "box",
    [[1, 2, 3], ["a", 2, 3, 4], [10, 10, 5, 5], [float("nan"), 0, 1, 1], "50,23,173,183", None],
)
def test_v6_bad_face_box_is_no_face_rect_and_no_error(box):
    event = parse_event(v6_live(recognize_face_attr={"box": box}))
    assert event.face_rect is None
    assert event.person_type is PersonType.EMPLOYEE


def test_v6_example_shape_reg_pic_data_uri_and_score_on_0_1():
    # The vendor's own example: reg_pic for the gallery photo, no event_id, no user_type.
    raw = v6_live(score=0.6231614351272583, reg_pic="data:image/jpeg;base64," + b64(REG))
    for key in ("event_id", "user_type", "register_image"):
        del raw[key]
    event = parse_event(raw)
    assert event.reg_pic == REG and event.face_pic == FACE
    assert event.score == pytest.approx(0.623161)
    assert event.box_event_id is None
    # Same recognition, same id, whichever of the two shapes carried it.
    assert event.event_id == parse_event(v6_live()).event_id


def test_v5_live_record():
    event = parse_event(v5_live())
    assert event.device == "04f98265-1fad-47e5-9dda-66e191272055"
    assert event.device_ip == "192.168.1.243"
    assert event.device_type is DeviceType.GATE
    assert event.person_type is PersonType.VIP
    assert event.identity_info["image_id"] == "5282"
    assert (event.reg_pic, event.spot_pic, event.face_pic) == (REG, SCENE, FACE)


def test_v5_identity_info_type_names_the_person_when_ext_data_does_not():
    raw = v5_live(identity_info={"addTime": 1594111791, "name": "stranger", "type": 4})
    del raw["ext_data"]["person_type"]
    assert parse_event(raw).person_type is PersonType.STRANGER


def test_v5_and_v6_copies_of_one_recognition_share_the_event_id():
    v5 = parse_event(v5_live(identity_id="100000"))
    v6 = parse_event(v6_live())
    assert v5.event_id == v6.event_id


def test_numeric_strings_and_ints_as_strings():
    raw = payload("v2r1")
    raw.update(timestamp=str(NOW_MS), score="0.75", person_type="2", device_type=4, identity_id=42)
    event = parse_event(raw)
    assert event.identity_id == "42"
    assert event.score == 0.75
    assert event.person_type is PersonType.VISITOR
    assert event.device_type is DeviceType.ACCESS_CONTROL


def test_defaults_missing_person_type_is_employee_and_empty_images_are_none():
    raw = {"identity_id": "7", "timestamp": NOW_MS, "score": 0.9, "reg_pic": "", "spot_pic": ""}
    event = parse_event(raw)
    assert event.person_type is PersonType.EMPLOYEE
    assert event.reg_pic is None and event.spot_pic is None
    assert event.device == "unknown"
    assert "no capture device id" in event.warnings[0]


def test_base64_with_data_uri_line_breaks_and_missing_padding():
    encoded = base64.encodebytes(SCENE).decode()  # 76-column lines
    raw = payload("v2r1")
    raw["spot_pic"] = "data:image/jpeg;base64," + encoded.rstrip("=\n")
    assert parse_event(raw).spot_pic == SCENE


@pytest.mark.parametrize(
    "bad, why",
    [
        ("!!!notbase64!!!", "invalid base64"),
        (b64(b"GIF89a" + b"\x00" * 100), "neither JPEG nor PNG"),
        (12345, "not a base64 string"),
    ],
)
def test_bad_image_is_dropped_with_a_warning_not_the_event(bad, why):
    raw = payload("v2r1")
    raw["spot_pic"] = bad
    event = parse_event(raw)
    assert event.spot_pic is None
    assert event.reg_pic == REG
    assert any(why in w and "spot_pic" in w for w in event.warnings)


def test_oversized_image_is_dropped():
    event = parse_event(payload("v2r1"), max_image_bytes=1000)
    assert event.spot_pic is None and any("larger than" in w for w in event.warnings)


def test_one_recognition_one_id_whatever_the_copy():
    ts = NOW_MS - NOW_MS % 1000 + 123
    live = parse_event(event_payload("v2r2", timestamp_ms=ts))
    # Its history copy names the camera by ep_id (`<dev_sno>__<ip>`), the live one by IP.
    history = parse_event(event_payload("history", timestamp_ms=ts), history=True)
    assert history.event_id == live.event_id
    # A query result gives float seconds; another scale of the score is the same event.
    ws = event_payload("ws", timestamp_ms=ts)
    as_queried = {**ws, "timestamp": ts / 1000, "score": ws["score"] / 100, "event_id": "other"}
    assert parse_event(as_queried).event_id == parse_event(ws).event_id
    later = parse_event(event_payload("v2r2", timestamp_ms=ts + 1))
    assert later.event_id != live.event_id


def test_identity_never_comes_from_learned_devices():
    """A camera's ep_id learned from a heartbeat must not change the id of its next copy."""
    raw = payload("v2r2")
    before = parse_event(raw)
    learned = parse_event(raw, ep_id_for_ip=lambda ip: f"AKOPKKKKK__{ip}")
    assert learned.device == "AKOPKKKKK__192.168.1.101"  # the display name does use it
    assert learned.event_id == before.event_id


def test_a_camera_named_by_id_never_takes_an_ep_id_learned_for_its_ip():
    """Channels of one recorder share an IP: the id the box sent names the camera."""
    raw = {**payload("ws"), "media_device_id": "channel-2", "media_device_ip": "10.0.0.5"}
    event = parse_event(raw, ep_id_for_ip=lambda ip: f"AKOPKKKKK__{ip}")
    assert (event.device, event.ep_id, event.box) == ("channel-2", None, None)
    assert event.device_ip == "10.0.0.5"


def test_v5_live_record_and_its_upload_name_one_camera():
    """The V5 live record names its camera by `device_id`, its upload by `ep_info.ep_id`
    plus `ep_info.device_id`: both are the device id, so HA shows one capture device."""
    ep_id = "0xe0a509261422__rtsp://192.168.1.100:8554/ch103"
    live_raw, upload_raw = payload("platform", ep_id=ep_id), payload("v5history", ep_id=ep_id)
    live, upload = parse_event(live_raw), parse_event(upload_raw)
    assert live.device == upload.device == live_raw["device_id"]
    assert upload.ep_id == ep_id  # kept, but not the device
    assert live.event_id == upload.event_id


def test_stable_event_id_for_resent_events():
    first, again = parse_event(payload("v2r2")), parse_event(payload("v2r2"))
    assert first.event_id == again.event_id
    other = parse_event(payload("v2r2", identity_id="10002"))
    assert other.event_id != first.event_id


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("identity_id", "", "identity_id: must not be empty"),
        ("identity_id", None, "identity_id: expected a string"),
        ("timestamp", -5, "timestamp: out of range"),
        ("timestamp", 99999999999999, "timestamp: out of range"),
        ("timestamp", "yesterday", "timestamp: expected epoch"),
        ("score", float("nan"), "score: must be a finite number"),
        ("score", float("inf"), "score: must be a finite number"),
        ("score", 250, "score: must be between"),
        ("score", "high", "score: expected a number"),
        ("person_type", 9, "person_type: unknown person type"),
        ("identity_name", "x" * 300, "identity_name: longer than 256"),
        ("ext_data", {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}}, "nested"),
    ],
)
def test_bad_fields_are_named(field, value, message):
    raw = payload("v2r1")
    raw[field] = value
    with pytest.raises(WireError) as err:
        parse_event(raw)
    assert message in str(err.value)


def test_missing_required_fields():
    with pytest.raises(WireError, match="identity_id: required"):
        parse_event({"timestamp": NOW_MS})
    with pytest.raises(WireError, match="timestamp: required"):
        parse_event({"identity_id": "1"})
    with pytest.raises(WireError, match="expected a JSON object"):
        parse_event(["not", "a", "dict"])


def test_control_characters_are_removed_from_names():
    raw = payload("v2r1", identity_name="A\x00B\x1bC\u200fD")
    assert parse_event(raw).identity_name == "ABC\u200fD"  # RTL mark is a real letter mark


def test_names_are_one_line():
    raw = payload("v2r1", identity_name="Li\nLei\r\n\tjr\u2028x")
    raw["group_name"] = "a\nb"
    event = parse_event(raw)
    assert (event.identity_name, event.group_name) == ("Li Lei jr x", "a b")


def test_iso_timestamp_is_accepted():
    raw = payload("v2r1")
    raw["timestamp"] = "2026-01-02T03:04:05+08:00"
    assert parse_event(raw).timestamp == datetime(2026, 1, 1, 19, 4, 5, tzinfo=timezone.utc)


def test_form_with_bad_json_in_a_dict_field():
    with pytest.raises(WireError, match="ext_data: not valid JSON"):
        coerce_form({"identity_id": "1", "timestamp": "1", "ext_data": "{broken"})


def test_event_round_trips_through_spool_parts():
    event = parse_event(payload("v2r2"))
    meta, blobs = event.to_parts()
    again = Event.from_parts(meta, blobs)
    assert again == event


def test_a_spooled_event_is_built_as_its_constructor_would():
    """Workers build models from spooled fields without the frozen __init__: the result
    is the same object a constructor makes, typed alike and still frozen."""
    event = parse_event(payload("v2r2"))
    again = Event.from_parts(*event.to_parts())
    made = Event(
        **{
            name: getattr(again, name)
            for name in again.__dataclass_fields__
            if not name.startswith("_") and name != "record_kind"
        }
    )
    assert again == made and repr(again) == repr(made)
    assert type(again.face_rect) is FaceRect and again.face_rect == event.face_rect
    assert again.kind is EventKind.REALTIME and again.person_type is PersonType.EMPLOYEE
    with pytest.raises(AttributeError):
        again.identity_id = "someone else"  # type: ignore[misc]


def test_an_older_record_gets_the_defaults_and_a_strange_one_is_refused():
    event = parse_event(payload("v2r2"))
    meta, blobs = event.to_parts()
    older = {k: v for k, v in meta.items() if k not in ("face_attributes", "box_event_id")}
    revived = Event.from_parts(older, blobs)
    assert revived.face_attributes == {} and revived.box_event_id is None
    assert revived.identity_id == event.identity_id
    with pytest.raises(TypeError, match="mood"):
        Event.from_parts({**meta, "mood": "happy"}, blobs)
    with pytest.raises(ValueError, match="robot"):
        Event.from_parts({**meta, "person_type": "robot"}, blobs)


def test_box_status():
    status = parse_status(status_payload(devices=3))
    assert status.box == "AKOPKKKKK"
    assert status.online is True and status.temperature == 51.0
    assert status.cpu_usage == 23.5 and status.disk_free_gb == 40.2
    assert status.sub_devices[0].ep_id == "AKOPKKKKK__192.168.1.101"
    assert status.sub_devices[0].device_type is DeviceType.GATE
    assert BoxStatus.from_parts(*status.to_parts()) == status


def test_box_status_as_form_and_offline_device():
    raw = status_payload()
    raw["sub_devices"][1]["ep_status"] = "offline"
    status = parse_status(coerce_form(as_form(raw)))
    assert [d.online for d in status.sub_devices] == [True, False]


def test_box_status_needs_an_id():
    with pytest.raises(WireError, match="gateway_sn: required"):
        parse_status({"gateway_name": "x"})


def test_receiver_path_keeps_images_as_base64_until_the_spool_is_read():
    raw = payload("v2r2")
    event = parse_event(raw, decode_images=False)
    assert set(event.encoded_images) == {"reg_pic", "spot_pic", "face_pic"}
    assert event.spot_pic == raw["ext_data"]["spot_pic"].encode()
    assert "encoded_images" not in event.to_dict()
    revived = Event.from_parts(*event.to_parts())
    assert revived.encoded_images == ()
    assert (revived.reg_pic, revived.spot_pic, revived.face_pic) == (REG, SCENE, FACE)
    decoded_at_the_door = parse_event(raw)
    assert revived == replace(decoded_at_the_door, received_at=revived.received_at)


def test_corruption_past_the_first_bytes_is_caught_when_the_spool_is_read():
    raw = payload("v2r2")
    good = raw["ext_data"]["spot_pic"]
    raw["ext_data"]["spot_pic"] = good[:40] + "!!!!" + good[44:]  # JPEG magic intact
    event = parse_event(raw, decode_images=False)
    assert "spot_pic" in event.encoded_images and event.warnings == ()
    revived = Event.from_parts(*event.to_parts())
    assert revived.spot_pic is None and revived.reg_pic == REG
    assert revived.warnings == ("spot_pic: invalid base64, image dropped",)


# ---- V5/V6 history uploads and status pushes ----------------------------------------------

IR = jpeg(64, 48, seed=14)
V6_DEVICE = "fb4eb129a3d64f0a81a04a00e36547b1"


def v6_upload(**kw):
    args = dict(ep_id=V6_DEVICE, identity_id="01200002", identity_name="小明")
    args.update(person_type="employee", score=0.948, ts_ms=NOW_MS)
    args.update(scene=SCENE, registered=REG, face=FACE, ir=IR)
    return v6_history(**{**args, **kw})


def v5_upload(**kw):
    args = dict(ep_id="0xe0a509261422__192.168.1.100", identity_id="10001")
    args.update(identity_name="小明", person_type="visitor", score=0.92, ts_ms=NOW_MS)
    args.update(scene=SCENE, registered=REG, face=FACE, ir=IR)
    return v5_history(**{**args, **kw})


def no_feature_anywhere(event: Event) -> bool:
    meta, _ = event.to_parts()
    text = json.dumps(meta, ensure_ascii=False)
    return not any(k in text for k in ("feature", "AAFmZWF0dXJl", "0.125"))


@pytest.mark.parametrize("feature_key", ["feature_base64_str", "feature_binary"])
def test_v6_history_upload_lands_whole_in_the_model(feature_key):
    event = parse_event(v6_upload(feature_key=feature_key), history=True)
    assert event.kind is EventKind.HISTORY and event.want_action == "0"
    assert event.device == V6_DEVICE
    assert event.device_name == "Front door"
    assert (event.box, event.device_ip) == ("NAAXWN000120210813164813", "172.28.9.38")
    assert event.identity_id == "01200002" and event.identity_name == "小明"
    assert event.person_type is PersonType.EMPLOYEE and event.score == pytest.approx(0.948)
    assert (event.spot_pic, event.reg_pic, event.face_pic, event.ir_pic) == (SCENE, REG, FACE, IR)
    assert event.face_rect == FaceRect(left=100, top=40, right=200, bottom=160)
    assert event.face_attributes["gender"] == "male" and event.face_attributes["age"] == "youth"
    assert len(event.face_attributes["point"]) == 6
    assert event.ext_data["capture_type"] == "rtsp"
    assert event.ext_data["device_url"].startswith("rtsp://")
    ms = timedelta(milliseconds=1)
    assert datetime.fromisoformat(event.ext_data["in_timestamp"]) == event.timestamp - 400 * ms
    assert datetime.fromisoformat(event.ext_data["out_timestamp"]) == event.timestamp + 3500 * ms
    assert event.raw["api_version"] == "2.0"
    assert event.warnings == ()
    assert no_feature_anywhere(event)


def test_v5_history_upload_lands_whole_in_the_model():
    raw = v5_upload()
    event = parse_event(raw, history=True)
    assert event.kind is EventKind.HISTORY and event.want_action == "0"
    assert event.ep_id == "0xe0a509261422__192.168.1.100"
    assert event.device == raw["ep_info"]["device_id"]  # as the V5 live record names it
    assert (event.device_ip, event.device_name) == ("192.168.1.100", "Front door")
    assert event.box == "0xe0a509261422"
    assert event.person_type is PersonType.VISITOR
    assert event.identity_info == {"face_ids": ["f1"], "image_id": "img-1"}
    assert (event.spot_pic, event.reg_pic, event.face_pic, event.ir_pic) == (SCENE, REG, FACE, IR)
    assert event.face_rect == FaceRect(left=100, top=40, right=200, bottom=160)
    assert event.face_attributes["gender"] == "male"
    assert event.ext_data["capture_type"] == "rtsp"
    assert "out_timestamp" in event.ext_data and event.raw["api_version"] == "1.0"
    assert no_feature_anywhere(event)


def test_a_v5_history_upload_is_history_on_any_route_and_as_form():
    raw = coerce_form(as_form(v5_upload()))
    event = parse_event(raw)
    assert event.kind is EventKind.HISTORY
    assert event.device_name == "Front door" and event.face_rect is not None
    assert no_feature_anywhere(event)


def test_upload_and_live_copy_of_a_recognition_share_one_id():
    ts = NOW_MS - NOW_MS % 1000 + 321
    # V6: the live record names the camera at the top level, the upload in media_device_info.
    live6 = parse_event(
        event_payload("ws", ep_id=V6_DEVICE, identity_id="01200002", timestamp_ms=ts)
    )
    upload6 = parse_event(v6_upload(ts_ms=ts), history=True)
    assert upload6.event_id == live6.event_id and upload6.device == live6.device
    flat = v6_upload(ts_ms=ts)
    info = flat.pop("media_device_info")
    flat.update(media_device_id=info["media_device_id"], media_device_ip=info["media_device_ip"])
    assert parse_event(flat, history=True).event_id == live6.event_id
    # V5: `device_id` in the live record, `ep_info.device_id` in the upload.
    live5 = parse_event(event_payload("platform", timestamp_ms=ts))
    upload5 = parse_event(event_payload("v5history", timestamp_ms=ts), history=True)
    assert upload5.event_id == live5.event_id
    assert parse_event(v6_upload(ts_ms=ts + 1)).event_id != live6.event_id


def test_a_bad_frame_time_drops_only_that_time():
    raw = v6_upload()
    raw["out_timestamp"] = "later"
    event = parse_event(raw, history=True)
    assert "out_timestamp" not in event.ext_data and "in_timestamp" in event.ext_data
    assert any(w.startswith("out_timestamp:") for w in event.warnings)


def test_history_event_round_trips_through_spool_parts():
    event = parse_event(v6_upload(), history=True, decode_images=False)
    again = Event.from_parts(*event.to_parts())
    assert again.ir_pic == IR and again.spot_pic == SCENE
    assert again.face_attributes == event.face_attributes and again.face_rect == event.face_rect
    assert again.device_name == "Front door" and again.completes is False


@pytest.mark.parametrize("list_name", ["media_devices", "sub_devices"])
def test_v6_capture_device_status(list_name):
    status = parse_status(devices_payload("v6", box="AFVKQF0001", list_name=list_name))
    assert status.box == "AFVKQF0001" and status.parts == ("devices",)
    first, second = status.sub_devices
    assert first.ep_id == "AFVKQF0001__192.168.1.101" and first.name == "Gate 1"
    assert (first.ip, first.url) == ("192.168.1.101", "rtsp://192.168.1.101:554/ch1")
    assert (first.online, second.online) == (True, False)
    assert status.cpu_usage is None and status.temperature is None
    assert BoxStatus.from_parts(*status.to_parts()) == status


def test_v5_capture_device_status():
    status = parse_status(devices_payload("v5", box="AFVK5"))
    assert status.box == "AFVK5" and status.parts == ("devices",)
    assert [d.online for d in status.sub_devices] == [True, False]
    assert status.sub_devices[0].location == "c4a1b2"
    assert status.sub_devices[0].ep_id == "AFVK5__192.168.1.101"


def test_v5_system_status():
    status = parse_status(system_payload("v5", box="AFVK5"))
    assert (status.box, status.name, status.parts) == ("AFVK5", "Lobby box", ("health",))
    assert (status.sw_version, status.sdk_version, status.nnsdk_version) == (
        "V5R7C01",
        "2.2.0",
        "1.4",
    )
    assert status.mac == "e0:a5:09:26:14:22"
    assert (status.cpu_usage, status.tpu_usage) == (23.5, 12.0)
    assert (status.memory_size_gb, status.memory_used_gb, status.memory_usage) == (
        3.71,
        1.71,
        0.46,
    )
    assert (status.disk_size_gb, status.disk_free_gb, status.disk_usage) == (28.0, 21.0, 0.25)
    assert status.external_disk_mounted is True
    assert (status.external_disk_size_gb, status.external_disk_free_gb) == (931.5, 465.7)
    assert (status.temperature, status.board_temperature) == (52.0, 41.0)
    assert status.fan_speed_rpm == 0.0
    assert status.uptime_s == 33 * 3600
    assert BoxStatus.from_parts(*status.to_parts()) == status


def test_v6_system_status():
    status = parse_status(system_payload("v6", box="AFVK6"))
    assert status.box == "AFVK6" and status.parts == ("health",)
    assert status.mac == "e0:a5:09:26:14:22"
    assert (status.cpu_usage, status.tpu_usage) == (31.0, 40.0)
    assert status.memory_size_gb == 3.71 and status.memory_usage == 0.148
    assert status.memory_used_gb == pytest.approx(549 / 1024, abs=0.001)
    assert (status.disk_size_gb, status.disk_free_gb, status.disk_usage) == (28.0, 19.6, 0.3)
    assert status.external_disk_mounted is False
    assert (status.temperature, status.board_temperature) == (55.5, 43.0)
    assert status.fan_speed_rpm == 2400.0 and status.uptime_s == 2 * 3600 + 40 * 60


def test_v5_combined_status_reports_both():
    raw = {**system_payload("v5"), "sub_devices": devices_payload("v5")["sub_devices"]}
    status = parse_status(raw)
    assert status.parts == ("health", "devices") and len(status.sub_devices) == 2
    assert status.cpu_usage == 23.5


def test_a_push_keeps_what_the_other_push_reported():
    health = parse_status(system_payload("v6", box="B1"))
    devices = parse_status(devices_payload("v6", box="B1"))
    merged = devices.merged_onto(health)
    assert merged.cpu_usage == 31.0 and merged.name == "Lobby box" and len(merged.sub_devices) == 2
    assert set(merged.parts) == {"health", "devices"}
    again = health.merged_onto(merged)
    assert len(again.sub_devices) == 2 and again.cpu_usage == 31.0
    other = parse_status(devices_payload("v6", box="B2"))
    assert other.merged_onto(health) is other


@pytest.mark.parametrize(
    "text, gb",
    [("3.71G", 3.71), ("549.0M", 0.536), ("1.5T", 1536.0), ("512 KB", 0.0), ("0", 0.0),
     (64, 64.0), (8 * 1024**3, 8.0), ("lots", None), (None, None)],
)  # fmt: skip
def test_sizes(text, gb):
    assert boxhealth.size_gb(text) == gb


@pytest.mark.parametrize(
    "text, seconds",
    [("30 minutes", 1800), ("1 day, 9 hours", 118800), ("2hours,40minutes", 9600),
     ("3 days, 4:05", 3 * 86400 + 4 * 3600 + 300), (120, 120), ("soon", None)],
)  # fmt: skip
def test_uptimes(text, seconds):
    assert boxhealth.duration_s(text) == seconds


def test_fan_speeds():
    assert boxhealth.rpm("0r/min") == 0 and boxhealth.rpm("2400 r/min") == 2400
    assert boxhealth.rpm(1200.5) == 1200.5 and boxhealth.rpm("fast") is None


def test_status_or_event_is_told_from_the_body():
    for body in (system_payload("v6"), devices_payload("v6"), devices_payload("v5"),
                 status_payload()):  # fmt: skip
        assert looks_like_status(body)
    for body in (v6_upload(), v5_upload(), event_payload("v2r2"), {"foo": 1}, []):
        assert not looks_like_status(body)
