"""Realistic box payloads in every documented shape, for send-test-event, tests and benchmarks."""

from __future__ import annotations

import base64
import io
import json
import random
import time
import uuid
from typing import Any

PERSON_CODES = {"employee": 1, "visitor": 2, "blacklist": 3, "stranger": 4, "vip": 5}
DEVICE_CODES = {
    "gate": "0",
    "snapshot_camera": "1",
    "ipc_static": "2",
    "ipc_dynamic": "3",
    "access_control": "4",
}
SHAPES = ("v2r1", "v2r2", "history", "ws", "platform")


def jpeg(width: int = 320, height: int = 240, seed: int = 0, quality: int = 85) -> bytes:
    """A real, decodable JPEG with noisy content, so its size is like a camera's."""
    from PIL import Image

    rng = random.Random(seed)
    # Random 8x8 blocks compress like a busy scene rather than a flat colour.
    small = (max(1, width // 8), max(1, height // 8))
    noise = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    image = noise.resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def jpeg_of_size(target_bytes: int, seed: int = 0) -> bytes:
    """A JPEG close to `target_bytes` (within ~15 %)."""
    width = 256
    data = jpeg(width, width * 3 // 4, seed)
    for _ in range(6):
        if abs(len(data) - target_bytes) < target_bytes * 0.1:
            break
        width = max(16, int(width * (target_bytes / len(data)) ** 0.5))
        data = jpeg(width, width * 3 // 4, seed)
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def event_payload(
    shape: str = "v2r2",
    *,
    person_type: str = "employee",
    device_type: str = "gate",
    identity_id: str = "10001",
    identity_name: str = "小明",
    score: float = 0.92,
    ep_id: str = "AKOPKKKKK__192.168.1.101",
    timestamp_ms: int | None = None,
    scene: bytes | None = None,
    registered: bytes | None = None,
    face: bytes | None = None,
) -> dict[str, Any]:
    """One event as the box sends it, in the given firmware shape."""
    ts_ms = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    scene = scene if scene is not None else jpeg(320, 240, seed=1)
    registered = registered if registered is not None else jpeg(112, 112, seed=2)
    face = face if face is not None else jpeg(112, 112, seed=3)
    dev_sno, _, ip = ep_id.partition("__")
    quality = {
        "grab_fiqa_info": {
            "confidence": 0.99,
            "rect": {"top": 40, "bottom": 160, "left": 100, "right": 200},
            "age": 30,
            "sex": 1,
            "yaw": 3.2,
            "pitch": -1.5,
            "roll": 0.4,
        },
        "box_fiqa_info": {
            "fiqa_result": True,
            "info": {"face_size": 120, "clarity": 0.9, "brightness": 0.6, "headpose": 0.1},
        },
    }
    if shape == "v2r1":
        return {
            "identity_id": identity_id,
            "identity_name": identity_name,
            "group_name": "staff",
            "reg_pic": b64(registered),
            "timestamp": ts_ms // 1000,
            "score": score,
            "ep_id": ep_id,
            "spot_pic": b64(scene),
            "person_type": PERSON_CODES[person_type],
            "device_type": DEVICE_CODES[device_type],
            "ext_data": {"device_ip": ip},
        }
    if shape in ("v2r2", "history", "platform"):
        ext: dict[str, Any] = {
            "device_ip": ip,
            "spot_pic": b64(scene),
            "recognize_face": b64(face),
            "person_type": PERSON_CODES[person_type],
            "device_type": DEVICE_CODES[device_type],
            **quality,
        }
        payload: dict[str, Any] = {
            "identity_id": identity_id,
            "identity_name": identity_name,
            "group_name": "staff",
            "reg_pic": b64(registered),
            "timestamp": ts_ms,
            "score": score,
            "ext_data": ext,
        }
        if shape == "history":
            payload["want_action"] = "0"
            ext.update(ep_id=ep_id, dev_sno=dev_sno)
        if shape == "platform":
            payload["device_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, ep_id))
            payload["identity_info"] = {
                "type": 1,
                "user_id": identity_id,
                "name": identity_name,
                "permission_ids": ["p1"],
                "ext_info": {"building_no": "A", "room": "301", "floor": "3"},
            }
        return payload
    if shape == "ws":
        return {
            "event_id": uuid.uuid4().hex,
            "timestamp": ts_ms,
            "identity_id": identity_id,
            "identity_name": identity_name,
            "user_type": person_type,
            "score": round(score * 100, 2),
            "media_device_ip": ip,
            "media_device_id": ep_id,
            "media_device_type": "rtsp",
            "register_image": "data:image/jpeg;base64," + b64(registered),
            "recognize_face_image": "data:image/jpeg;base64," + b64(face),
            "recognize_face_attr": {"age": 30, "gender": "male"},
        }
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def status_payload(box: str = "AKOPKKKKK", devices: int = 2) -> dict[str, Any]:
    """A `DeviceStatus` heartbeat with `devices` capture devices."""
    return {
        "gateway_ip": "192.168.1.10",
        "gateway_name": "Lobby box",
        "gateway_status": "online",
        "gateway_sn": box,
        "dev_sno": box,
        "gateway_ext_data": {
            "sw_version": "V6R2C01",
            "sdk_version": "3.1",
            "gateway_mac": "00:11:22:33:44:55",
            "cpu_usage": 23.5,
            "memory_size": 8,
            "memory_usage": 0.41,
            "disk_size": 64,
            "disk_free_size": 40.2,
            "temperature": 51.0,
        },
        "sub_devices": [
            {
                "ep_id": f"{box}__192.168.1.{101 + i}",
                "ep_name": f"Gate {i + 1}",
                "ep_ip": f"192.168.1.{101 + i}",
                "ep_status": "online",
                "ep_location": "Lobby",
                "ep_type": "0",
                "ep_url": f"rtsp://192.168.1.{101 + i}/stream",
            }
            for i in range(devices)
        ],
    }


def as_form(payload: dict[str, Any]) -> dict[str, str]:
    """The same payload as form-data fields: nested dicts as JSON text."""
    return {
        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v)
        for k, v in payload.items()
    }
