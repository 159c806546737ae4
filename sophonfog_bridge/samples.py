"""Realistic box payloads in every documented shape, for send-test-event, tests and benchmarks."""

from __future__ import annotations

import base64
import io
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

PERSON_CODES = {"employee": 1, "visitor": 2, "blacklist": 3, "stranger": 4, "vip": 5}
DEVICE_CODES = {
    "gate": "0",
    "snapshot_camera": "1",
    "ipc_static": "2",
    "ipc_dynamic": "3",
    "access_control": "4",
}
SHAPES = ("v2r1", "v2r2", "history", "ws", "platform", "v5history", "v6history")
BLOCK = 8  # px per noise block: sets how the JPEG compresses (8 before the sketch)


def jpeg(
    width: int = 320, height: int = 240, seed: int = 0, quality: int = 85, caption: str = ""
) -> bytes:
    """A real, decodable JPEG that a person recognises as a test picture: a sketched face on a
    busy background, "TEST PICTURE" and `caption` written on it. The background's noise keeps
    its size like a camera's (about the same bytes per pixel as a real scene)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    # Random blocks compress like a busy scene rather than a flat colour; blended with a
    # seed-dependent tint so the sketch stands out.
    small = (max(1, width // BLOCK), max(1, height // BLOCK))
    noise = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    tint = Image.new("RGB", small, tuple(rng.randrange(60, 200) for _ in range(3)))
    image = Image.blend(noise, tint, 0.45).resize((width, height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    _face(draw, width, height)
    if height >= 96:
        _caption(draw, width, height, ["TEST PICTURE", caption] if caption else ["TEST PICTURE"])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _face(draw: Any, width: int, height: int) -> None:
    """A simple face: head, hair, eyes, nose, smile, shoulders."""
    size = min(width, height)
    r = size * 0.3
    cx, cy = width / 2, height * 0.44 if height >= 96 else height / 2
    line = max(1, int(size / 60))
    ink = (40, 30, 30)
    draw.ellipse([cx - 1.6 * r, cy + 0.9 * r, cx + 1.6 * r, cy + 3.2 * r], fill=(50, 90, 160))
    draw.ellipse([cx - r, cy - 1.15 * r, cx + r, cy + 1.15 * r], fill=(238, 196, 160),
                 outline=ink, width=line)  # fmt: skip
    draw.chord([cx - r, cy - 1.2 * r, cx + r, cy + 0.2 * r], 180, 360, fill=(70, 45, 30))
    for dx in (-0.38, 0.38):
        ex, ey, er = cx + dx * r, cy + 0.1 * r, 0.13 * r
        draw.ellipse([ex - er, ey - er * 0.8, ex + er, ey + er * 0.8], fill="white", outline=ink)
        draw.ellipse([ex - er / 2, ey - er / 2, ex + er / 2, ey + er / 2], fill=ink)
    draw.line([cx, cy + 0.2 * r, cx - 0.1 * r, cy + 0.45 * r, cx + 0.05 * r, cy + 0.45 * r],
              fill=ink, width=line)  # fmt: skip
    draw.arc([cx - 0.45 * r, cy + 0.3 * r, cx + 0.45 * r, cy + 0.8 * r], 20, 160, fill=ink,
             width=line + 1)  # fmt: skip


def _caption(draw: Any, width: int, height: int, lines: list[str]) -> None:
    from PIL import ImageFont

    size = max(10, height // 14)
    font = ImageFont.load_default(size=size)
    bar = int(size * 1.3 * len(lines) + size * 0.4)
    draw.rectangle([0, height - bar, width, height], fill=(0, 0, 0))
    for i, text in enumerate(lines):
        y = height - bar + size * 0.2 + i * size * 1.3
        draw.text((width / 2, y), text, fill=(255, 230, 0) if i == 0 else "white", font=font,
                  anchor="ma")  # fmt: skip


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
    if scene is None:
        at = time.strftime("%H:%M:%S", time.localtime(ts_ms / 1000))
        scene = jpeg(320, 240, seed=1, caption=f"{person_type} · {at}")
    sample = _Sample(
        person_type=person_type,
        device_type=device_type,
        identity_id=identity_id,
        identity_name=identity_name,
        score=score,
        ep_id=ep_id,
        ts_ms=ts_ms,
        scene=scene,
        registered=registered if registered is not None else jpeg(112, 112, seed=2),
        face=face if face is not None else jpeg(112, 112, seed=3),
    )
    if shape == "v2r1":
        return _v2r1(sample)
    if shape in ("v2r2", "history", "platform"):
        return _v2r2(sample, shape)
    if shape == "ws":
        return _ws(sample)
    if shape in ("v5history", "v6history"):
        maker = v5_history if shape == "v5history" else v6_history
        return maker(
            ep_id, identity_id, identity_name, person_type, score, ts_ms, scene,
            sample.registered, sample.face,
        )  # fmt: skip
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


@dataclass(frozen=True)
class _Sample:
    """What every shape of one event says, in the words of `event_payload`'s arguments."""

    person_type: str
    device_type: str
    identity_id: str
    identity_name: str
    score: float
    ep_id: str
    ts_ms: int
    scene: bytes
    registered: bytes
    face: bytes


def _v2r1(sample: _Sample) -> dict[str, Any]:
    return {
        "identity_id": sample.identity_id,
        "identity_name": sample.identity_name,
        "group_name": "staff",
        "reg_pic": b64(sample.registered),
        "timestamp": sample.ts_ms // 1000,
        "score": sample.score,
        "ep_id": sample.ep_id,
        "spot_pic": b64(sample.scene),
        "person_type": PERSON_CODES[sample.person_type],
        "device_type": DEVICE_CODES[sample.device_type],
        "ext_data": {"device_ip": sample.ep_id.partition("__")[2]},
    }


def _v2r2(sample: _Sample, shape: str) -> dict[str, Any]:
    """V2R2 live (`v2r2`), its history upload (`history`), and the platform push."""
    dev_sno, _, ip = sample.ep_id.partition("__")
    ext: dict[str, Any] = {
        "device_ip": ip,
        "spot_pic": b64(sample.scene),
        "recognize_face": b64(sample.face),
        "person_type": PERSON_CODES[sample.person_type],
        "device_type": DEVICE_CODES[sample.device_type],
        **_quality(),
    }
    payload: dict[str, Any] = {
        "identity_id": sample.identity_id,
        "identity_name": sample.identity_name,
        "group_name": "staff",
        "reg_pic": b64(sample.registered),
        "timestamp": sample.ts_ms,
        "score": sample.score,
        "ext_data": ext,
    }
    if shape == "history":
        payload["want_action"] = "0"
        ext.update(ep_id=sample.ep_id, dev_sno=dev_sno)
    if shape == "platform":
        payload["device_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, sample.ep_id))
        payload["identity_info"] = {
            "type": 1,
            "user_id": sample.identity_id,
            "name": sample.identity_name,
            "permission_ids": ["p1"],
            "ext_info": {"building_no": "A", "room": "301", "floor": "3"},
        }
    return payload


def _quality() -> dict[str, Any]:
    """The face-quality report a V2R2 box adds to `ext_data`."""
    return {
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


def _ws(sample: _Sample) -> dict[str, Any]:
    """A V6 live record as the box's websocket sends it."""
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": sample.ts_ms,
        "identity_id": sample.identity_id,
        "identity_name": sample.identity_name,
        "user_type": sample.person_type,
        "score": round(sample.score * 100, 2),
        "media_device_ip": sample.ep_id.partition("__")[2],
        "media_device_id": sample.ep_id,
        "media_device_type": "rtsp",
        "register_image": "data:image/jpeg;base64," + b64(sample.registered),
        "recognize_face_image": "data:image/jpeg;base64," + b64(sample.face),
        "recognize_face_attr": {"age": 30, "gender": "male"},
    }


FACE_BOX = [100, 40, 200, 160]


def _face_attr(feature: dict[str, Any]) -> dict[str, Any]:
    return {
        "point": [133.0, 88.0, 167.0, 88.0, 150.0, 110.0],
        "box": FACE_BOX,
        "gender": "male",
        "age": "youth",
        "mask": None,
        "glasses": None,
        "hat": None,
        "expression": None,
        **feature,
    }


def v5_history(
    ep_id: str,
    identity_id: str,
    identity_name: str,
    person_type: str,
    score: float,
    ts_ms: int,
    scene: bytes,
    registered: bytes,
    face: bytes,
    ir: bytes | None = None,
) -> dict[str, Any]:
    """A V5R7 history upload (§3.3): `ep_info`, `*_pic`, the feature as a list of floats.

    Its camera's `device_id` is the one the V5 live record ("platform" shape) carries.
    """
    dev_sno, _, ip = ep_id.partition("__")
    return {
        "api_version": "1.0",
        "identity_id": identity_id,
        "identity_name": identity_name,
        "identity_info": {"face_ids": ["f1"], "image_id": "img-1"},
        "timestamp": ts_ms,
        "out_timestamp": ts_ms + 3500,
        "score": score,
        "want_action": "0",
        "person_type": PERSON_CODES[person_type],
        "ep_info": {
            "ep_id": ep_id,
            "ep_type": "rtsp",
            "ep_ip": ip,
            "ep_name": "Front door",
            "device_id": str(uuid.uuid5(uuid.NAMESPACE_URL, ep_id)),
        },
        "dev_sno": dev_sno,
        "reg_pic": b64(registered),
        "spot_pic": b64(scene),
        "ir_pic": b64(ir) if ir else "",
        "recognize_face": b64(face),
        "recognize_face_attr": _face_attr({"feature": [0.125, -0.5, 0.25]}),
    }


def v6_history(
    ep_id: str,
    identity_id: str,
    identity_name: str,
    person_type: str,
    score: float,
    ts_ms: int,
    scene: bytes,
    registered: bytes,
    face: bytes,
    ir: bytes | None = None,
    feature_key: str = "feature_base64_str",
    license_key: str = "NAAXWN000120210813164813",
) -> dict[str, Any]:
    """A V6 history upload (§3.3): `media_device_info`, `*_image`, the feature as base64.

    `ep_id` is the camera's `media_device_id`, as in the V6 live record ("ws" shape).
    """
    ip = ep_id.partition("__")[2] or "172.28.9.38"
    return {
        "api_version": "2.0",
        "identity_id": identity_id,
        "timestamp": ts_ms,
        "identity_name": identity_name,
        "media_device_info": {
            "media_device_ip": ip,
            "media_device_type": "rtsp",
            "media_device_name": "Front door",
            "media_device_id": ep_id,
            "media_device_url": f"rtsp://{ip}:554/ch1",
        },
        "in_timestamp": ts_ms - 400,
        "recognize_face_image": b64(face),
        "ir_image": b64(ir) if ir else "",
        "post_action": "0",
        "user_type": person_type,
        "spot_image": b64(scene),
        "out_timestamp": ts_ms + 3500,
        "score": round(score * 100, 2),
        "reg_image": b64(registered),
        "mq_license_key": license_key,
        "recognize_face_attr": _face_attr({feature_key: b64(b"\x00\x01feature")}),
    }


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


def devices_payload(version: str, box: str = "AKOPKKKKK", devices: int = 2, **kw) -> dict:
    """A capture-device status push: V5 `dev_sno` + `sub_devices` of `ep_*`, or V6
    `mq_license_key` + `media_devices` (`list_name` "sub_devices" for the docs' example)."""
    if version == "v5":
        return {
            "dev_sno": box,
            "sub_devices": [
                {
                    "ep_id": f"{box}__192.168.1.{101 + i}",
                    "ep_ip": f"192.168.1.{101 + i}",
                    "ep_status": "offline" if i == 1 else "online",
                    "ep_location": "c4a1b2",
                    "ep_type": "rtsp",
                    "ep_name": f"Gate {i + 1}",
                }
                for i in range(devices)
            ],
        }
    return {
        "mq_license_key": box,
        kw.get("list_name", "media_devices"): [
            {
                "media_device_id": f"{box}__192.168.1.{101 + i}",
                "media_device_url": f"rtsp://192.168.1.{101 + i}:554/ch1",
                "media_device_ip": f"192.168.1.{101 + i}",
                "media_device_name": f"Gate {i + 1}",
                "media_device_status": "offline" if i == 1 else "online",
                "media_device_type": "rtsp",
                "permission_id": "820737ae",
            }
            for i in range(devices)
        ],
    }


def system_payload(version: str, box: str = "AKOPKKKKK") -> dict[str, Any]:
    """A box system-monitor push (§4.2) as V5R7 or V6 firmware sends it."""
    common = {
        "gateway_ip": "192.168.1.64 192.168.150.1",
        "gateway_port": 80,
        "gateway_name": "Lobby box",
        "gateway_sn": box,
        "gateway_status": "online",
        "board_temperature": 41,
    }
    return _v5_system(common, box) if version == "v5" else _v6_system(common, box)


def _v5_system(common: dict[str, Any], box: str) -> dict[str, Any]:
    return {
        **common,
        "dev_sno": box,
        "gateway_ext_data": {
            "sw_version": "V5R7C01",
            "sdk_version": "2.2.0",
            "nnsdk_version": "1.4",
            "gateway_mac": "e0:a5:09:26:14:22",
            "box_usage": None,
        },
        "cpu_info": {"cpu_rate": 0.235, "info": {"cpu_type": "arm", "cpu_freq": "2.3GHz"}},
        "tpu_info": {"tpu_rate": 0.12, "info": {"detail": "BM1684"}},
        "memory_info": {
            "hardware_total_memory": "12G",
            "total_memory": "3.71G",
            "total_free_memory": "2.0G",
            "total_used_memory": "1.71G",
            "total_memory_scale": 0.46,
        },
        "disk_info": {
            "hardware_total_disk": "32G",
            "disk_rate": 0.25,
            "total_disk": "28.0G",
            "free_disk": "21.0G",
            "used_disk": "7.0G",
        },
        "external_hard_drives_info": {
            "external_hard_state": "1",
            "external_hard_disk_rate": 0.5,
            "external_hard_total_disk": "931.5G",
            "external_hard_free_disk": "465.7G",
            "external_hard_used_disk": "465.8G",
        },
        "temperature": 52,
        "fan_speed": "0r/min",
        "uptime": "1 day, 9 hours",
    }


def _v6_system(common: dict[str, Any], box: str) -> dict[str, Any]:
    return {
        **common,
        "gateway_mac": "e0:a5:09:26:14:22",
        "reporter_id": box,
        "cpu_info": {"cur_cpu_usage": 0.31, "cpu_arch": "aarch64", "cpu_cores": "8"},
        "tpu_info": {"tpu_usage": 0.4, "tpu_description": "BM1684X"},
        "memory_info": {
            "total_memory": "3.71G",
            "svt_memory": "3.71G",
            "svt_free_memory": "2.17G",
            "svt_used_memory": "549.0M",
            "svt_memory_usage": 0.148,
        },
        "emmc": {
            "mount_status": True,
            "nominal_capacity": "32G",
            "disk_usage": 0.3,
            "total_disk": "28.0G",
            "free_disk": "19.6G",
            "used_disk": "8.4G",
        },
        "hdd": {
            "mount_status": False,
            "nominal_capacity": "",
            "disk_usage": 0.0,
            "total_disk": "0",
            "free_disk": "0",
            "used_disk": "0",
        },
        "core_temperature": 55.5,
        "board_temperature": 43.0,
        "fan_speed": 2400.0,
        "uptime": "2hours,40minutes",
    }


def as_form(payload: dict[str, Any]) -> dict[str, str]:
    """The same payload as form-data fields: nested dicts as JSON text."""
    return {
        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v)
        for k, v in payload.items()
    }
