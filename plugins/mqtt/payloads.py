"""The JSON (and image) payloads of the plugin's topics. Never images inside JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

from sophonfog_bridge import BoxLink, BoxStatus, DoorDecision, Event, imaging

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8"


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def quality_summary(face_quality: Any) -> dict[str, Any]:
    """The few face-quality numbers worth an attribute; the raw blocks stay in the spool."""
    grab = (face_quality or {}).get("grab") or {}
    box = (face_quality or {}).get("box") or {}
    info = box.get("info") or {}
    summary = {
        "passed": box.get("fiqa_result"),
        "confidence": grab.get("confidence"),
        "face_size": info.get("face_size"),
        "clarity": info.get("clarity"),
        "brightness": info.get("brightness"),
    }
    return {k: v for k, v in summary.items() if isinstance(v, (bool, int, float, str))}


def event_json(event: Event, snapshot: bool) -> str:
    return dumps(
        {
            "event_id": event.event_id,
            "event_type": event.person_type.value,
            "kind": event.kind.value,
            "identity_id": event.identity_id,
            "identity_name": event.identity_name,
            "group_name": event.group_name,
            "score": round(event.score, 4),
            "timestamp": event.timestamp.isoformat(timespec="milliseconds"),
            "device": event.device,
            "ep_id": event.ep_id,
            "device_ip": event.device_ip,
            "device_type": event.device_type.value,
            "box": event.box,
            "face_quality": quality_summary(event.face_quality),
            "snapshot": snapshot,
        }
    )


# HA drops attributes over 16 KB; a box reports up to 256 capture devices.
ATTRIBUTES_BUDGET = 8192


def _percent(ratio: float | None) -> float | None:
    return None if ratio is None else round(ratio * 100, 1)


def box_health(status: BoxStatus) -> dict[str, Any]:
    """The box's health numbers as its sensors show them (usages in percent)."""
    return {
        "cpu_usage": status.cpu_usage,
        "tpu_usage": status.tpu_usage,
        "memory_usage": _percent(status.memory_usage),
        "memory_size_gb": status.memory_size_gb,
        "memory_used_gb": status.memory_used_gb,
        "disk_usage": _percent(status.disk_usage),
        "disk_size_gb": status.disk_size_gb,
        "disk_free_gb": status.disk_free_gb,
        "external_disk_mounted": status.external_disk_mounted,
        "external_disk_size_gb": status.external_disk_size_gb,
        "external_disk_free_gb": status.external_disk_free_gb,
        "temperature": status.temperature,
        "board_temperature": status.board_temperature,
        "fan_speed_rpm": status.fan_speed_rpm,
        "uptime_s": status.uptime_s,
    }


def reported_metrics(status: BoxStatus) -> list[str]:
    """The health keys this box reports, for the sensors its discovery config offers."""
    return sorted(k for k, v in box_health(status).items() if v is not None)


def box_json(status: BoxStatus) -> str:
    return dumps(
        {
            "box": status.box,
            "name": status.name,
            "ip": status.ip,
            "online": status.online,
            "sw_version": status.sw_version,
            "sdk_version": status.sdk_version,
            "nnsdk_version": status.nnsdk_version,
            "mac": status.mac,
            **box_health(status),
            "received_at": status.received_at.isoformat(timespec="seconds"),
            "sub_devices": [
                {
                    "ep_id": sub.ep_id,
                    "name": sub.name,
                    "online": sub.online,
                    "ip": sub.ip,
                    "location": sub.location,
                    "device_type": sub.device_type.value,
                }
                for sub in status.sub_devices
            ],
            "devices_online": devices_online(status),
        }
    )


def devices_online(status: BoxStatus, budget: int = ATTRIBUTES_BUDGET) -> dict[str, bool]:
    """`{ep_id: online}` for HA's attributes, cut to fit far below its 16 KB limit."""
    compact: dict[str, bool] = {}
    used = 2
    for sub in status.sub_devices:
        used += len(dumps(sub.ep_id)) + 7  # `"id": false, `
        if used > budget:
            break
        compact[sub.ep_id] = sub.online
    return compact


def link_json(link: BoxLink) -> str:
    return dumps(
        {
            "box": link.box,
            "connected": link.connected,
            "since": link.since.isoformat(timespec="seconds"),
            "firmware": link.firmware,
            "reason": link.reason,
            "devices": len(link.devices),
        }
    )


def access_json(decision: DoorDecision) -> str:
    return dumps(
        {
            "door": decision.door,
            "decision": decision.decision.value,
            "reason": decision.reason,
            "rule": decision.rule,
            "source": decision.source,
            "identity": decision.identity_id,
            "identity_name": decision.identity_name,
            "person_type": decision.person_type,
            "device": decision.device,
            "event_id": decision.event_id,
            "decision_id": decision.decision_id,
            "decided_at": decision.decided_at.isoformat(timespec="milliseconds"),
        }
    )


def person_json(event: Event, device_name: str) -> str:
    return dumps(
        {
            "last_seen": event.timestamp.isoformat(timespec="seconds"),
            "identity_id": event.identity_id,
            "identity_name": event.identity_name,
            "device": event.device,
            "device_name": device_name,
            "event_id": event.event_id,
        }
    )


def as_jpeg(image: bytes | None) -> bytes | None:
    """JPEG bytes as they came; a PNG (some firmwares) re-encoded, since HA expects JPEG."""
    if image is None or image.startswith(JPEG_MAGIC):
        return image
    try:
        decoded = imaging.decode(image, imaging.DEFAULT_MAX_PIXELS)
    except imaging.BadImage as err:  # a broken image must not stop the event itself
        log.warning("mqtt: cannot convert image to JPEG: %s", err)
        return None
    with decoded.image:
        return imaging.encode_jpeg(decoded.image, quality=90)
