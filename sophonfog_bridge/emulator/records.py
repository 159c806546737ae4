"""The records the box pushes: live websocket records and history uploads, V5 and V6 dialects."""

from __future__ import annotations

import base64
import random
import struct
from typing import Any

from .identity import BoxIdentity
from .store import PERSON_CODES

# ext_data.device_type in V5 records is its own enum ("0" gate, "1" snapshot camera,
# "3" IPC dynamic, "4" door access), not the device list's photo/rtsp/...
V5_DEVICE_CODES = {"photo": "0", "rtsp": "3", "file": "3", "gb28181": "3"}


def b64(data: bytes | None) -> str:
    return base64.b64encode(data).decode("ascii") if data else ""


def data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + b64(data)


def _points(box: list[int]) -> list[float]:
    """Five landmarks (eyes, nose, mouth corners) inside the face box, flattened x, y."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    rel = [(0.33, 0.4), (0.67, 0.4), (0.5, 0.58), (0.38, 0.75), (0.62, 0.75)]
    return [round(v, 2) for rx, ry in rel for v in (x1 + rx * w, y1 + ry * h)]


def _feature(event: dict[str, Any]) -> list[float]:
    rng = random.Random(event["identity_id"])
    return [round(rng.uniform(-0.2, 0.2), 6) for _ in range(128)]


def face_attr(event: dict[str, Any], firmware: str) -> dict[str, Any]:
    """`recognize_face_attr`: box and landmarks; V5 carries the feature as floats, V6 as base64."""
    attr: dict[str, Any] = {
        "box": list(event["face_box"]),
        "point": _points(event["face_box"]),
        "gender": "male",
        "age": "youth",
        "glasses": "no" if firmware == "v6" else "0",
        "mask": "no" if firmware == "v6" else "0",
        "hat": "no" if firmware == "v6" else "0",
    }
    feature = _feature(event)
    if firmware == "v6":
        attr["feature_base64_str"] = b64(struct.pack(f"<{len(feature)}f", *feature))
    else:
        attr["feature"] = feature
    return attr


def live_v6(
    event: dict[str, Any], with_face: bool, with_register: bool, variant: str = "table"
) -> dict[str, Any]:
    """A V6 websocket record. `variant="example"` sends the docs' example shape instead of the
    table's: `reg_pic` for the gallery photo, no event_id or user_type, score on 0..1."""
    device, images = event["device"], event["images"]
    record: dict[str, Any] = {
        "timestamp": event["timestamp_ms"],
        "identity_id": event["identity_id"],
        "identity_name": event["identity_name"],
        "media_device_ip": device.ip,
        "media_device_id": device.id,
        "media_device_type": device.type,
    }
    if variant == "example":
        record["score"] = event["score"] / 100
        wanted = with_register and images["register"]
        record["reg_pic"] = data_uri(images["register"]) if wanted else ""
    else:
        record["event_id"] = event["event_id"]
        record["user_type"] = event["person_type"]
        record["score"] = event["score"]
        if with_register and images["register"]:
            record["register_image"] = data_uri(images["register"])
        record["recognize_face_attr"] = face_attr(event, "v6")
    if with_face:
        record["recognize_face_image"] = data_uri(images["face"])
    return record


def v5_identity_info(event: dict[str, Any]) -> dict[str, Any]:
    if event["person_type"] == "stranger":
        return {}
    return {
        "addTime": 1594111791,
        "image_id": event["image_ids"]["register"],
        "name": event["identity_name"],
        "type": PERSON_CODES[event["person_type"]],
    }


def live_v5(event: dict[str, Any], need_face: bool, need_register: bool) -> dict[str, Any]:
    """A V5 websocket record: bare base64 photos, the scene only when faces were asked for."""
    device, images = event["device"], event["images"]
    ext: dict[str, Any] = {
        "person_type": PERSON_CODES[event["person_type"]],
        "device_ip": device.ip,
        "device_type": V5_DEVICE_CODES[device.type],
    }
    if need_face:
        ext.update(spot_pic=b64(images["scene"]), recognize_face=b64(images["face"]))
    return {
        "reg_pic": b64(images["register"]) if need_register else "",
        "ext_data": ext,
        "identity_id": event["identity_id"],
        "device_id": device.id,
        "identity_info": v5_identity_info(event),
        "score": event["score"] / 100,
        "timestamp": event["timestamp_ms"],
        "group_name": "default_group",
        "identity_name": event["identity_name"],
    }


def history_v6(event: dict[str, Any], box: BoxIdentity) -> dict[str, Any]:
    """One V6 history upload body (§3.3): every photo, bare base64."""
    device, images, ts = event["device"], event["images"], event["timestamp_ms"]
    return {
        "api_version": "2.0",
        "identity_id": event["identity_id"],
        "timestamp": ts,
        "identity_name": event["identity_name"],
        "media_device_info": {
            "media_device_ip": device.ip,
            "media_device_type": device.type,
            "media_device_name": device.name,
            "media_device_id": device.id,
            "media_device_url": device.address,
        },
        "in_timestamp": ts - 400,
        "recognize_face_image": b64(images["face"]),
        "ir_image": "",
        "post_action": "0",
        "user_type": event["person_type"],
        "spot_image": b64(images["scene"]),
        "out_timestamp": ts + 3500,
        "score": event["score"],
        "reg_image": b64(images["register"]),
        "mq_license_key": box.license_key,
        "recognize_face_attr": face_attr(event, "v6"),
    }


ALL_PHOTOS = frozenset({"reg", "spot", "face"})


def history_v5(
    event: dict[str, Any], box: BoxIdentity, photos: frozenset[str] = ALL_PHOTOS
) -> dict[str, Any]:
    """One V5 history upload body (§3.3). `photos` follows the history_need_* switches."""
    images = event["images"]
    info = (
        {}
        if event["person_type"] == "stranger"
        else {
            "face_ids": [event["image_ids"]["register"]],
            "image_id": event["image_ids"]["register"],
        }
    )
    return {
        "api_version": "1.0",
        "identity_id": event["identity_id"],
        "identity_name": event["identity_name"],
        "identity_info": info,
        "timestamp": event["timestamp_ms"],
        "out_timestamp": event["timestamp_ms"] + 3500,
        "score": round(event["score"] / 100, 4),
        "want_action": "0",
        "person_type": PERSON_CODES[event["person_type"]],
        "ep_info": v5_ep_info(event, box),
        "dev_sno": box.license_key,
        "reg_pic": b64(images["register"]) if "reg" in photos else "",
        "spot_pic": b64(images["scene"]) if "spot" in photos else "",
        "ir_pic": "",
        "recognize_face": b64(images["face"]) if "face" in photos else "",
        "recognize_face_attr": face_attr(event, "v5"),
    }


def v5_ep_info(event: dict[str, Any], box: BoxIdentity) -> dict[str, Any]:
    device = event["device"]
    return {
        "ep_id": f"{box.hex_mac}__{device.address}",
        "ep_type": device.type if device.type in ("photo", "rtsp") else "rtsp",
        "ep_ip": device.ip,
        "ep_name": device.name,
        "device_id": device.id,
    }
