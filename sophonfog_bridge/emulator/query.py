"""The event query (back-fill): filters, pages, and the query's own record shapes.

Query records carry float-seconds timestamps, as the docs' examples show, unlike the
millisecond pushes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .identity import BoxIdentity
from .records import face_attr, v5_ep_info
from .store import PERSON_CODES


def to_seconds(value: Any) -> float:
    """A filter time in seconds. The V6 docs say ms and show seconds; both are read by size."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a time")
    return number / 1000 if abs(number) > 1e11 else number


@dataclass(frozen=True)
class Filters:
    gte: float | None = None  # seconds
    lte: float | None = None
    name: str | None = None  # fuzzy
    identity_id: str | None = None  # exact
    score_min: float | None = None  # 0..100
    score_max: float | None = None
    person_types: frozenset[str] | None = None
    devices: frozenset[str] | None = None

    def match(self, event: dict[str, Any]) -> bool:
        seconds, score = event["timestamp_ms"] / 1000, event["score"]
        checks = [
            self.gte is None or seconds >= self.gte,
            self.lte is None or seconds <= self.lte,
            self.name is None or self.name in event["identity_name"],
            self.identity_id is None or self.identity_id == event["identity_id"],
            self.score_min is None or score >= self.score_min,
            self.score_max is None or score <= self.score_max,
            self.person_types is None or event["person_type"] in self.person_types,
            self.devices is None or event["device_id"] in self.devices,
        ]
        return all(checks)


def select(
    events: Iterable[dict[str, Any]], filters: Filters, newest_first: bool
) -> list[dict[str, Any]]:
    found = [e for e in events if filters.match(e)]
    found.sort(key=lambda e: (e["timestamp_ms"], e["seq"]), reverse=newest_first)
    return found


def page(items: list[Any], index: int, limit: int) -> list[Any]:
    """Page `index` (0-based) of `limit` items."""
    return items[index * limit : (index + 1) * limit]


def _seconds(ms: int) -> float:
    return round(ms / 1000, 6)


def v6_event(event: dict[str, Any], is_send: bool) -> dict[str, Any]:
    """An event as `getevents` / `getevent` return it."""
    device, ids, ts = event["device"], event["image_ids"], event["timestamp_ms"]
    stranger = event["person_type"] == "stranger"
    return {
        "event_id": event["event_id"],
        "timestamp": _seconds(ts),
        "identity_id": "" if stranger else event["identity_id"],
        "identity_name": "" if stranger else event["identity_name"],
        "register_image_id": ids["register"] or "",
        "recognize_face_image_id": ids["face"],
        "spot_image_id": ids["scene"],
        "permission_id": device.permission_id,
        "permission_name": "default",
        "user_type": event["person_type"],
        "score": event["score"],
        "post_action": "0",
        "frame_id": event["seq"],
        "is_send": int(is_send),
        "media_device_info": {
            "media_device_type": device.type,
            "media_device_ip": device.ip,
            "media_device_name": device.name,
            "media_device_id": device.id,
        },
        "recognize_face_attr": _v6_attr(event),
        "ext_data": {
            "ir_image_id": "",
            "depth_image_id": "",
            "track_id": event["seq"],
            "video_shape": [1920, 1080],
            "in_timestamp": _seconds(ts - 400),
            "recognition_timestamp": _seconds(ts),
            "out_timestamp": _seconds(ts + 3500),
            "pose_score": 0.93,
            "unknown_id": "",
        },
    }


def _v6_attr(event: dict[str, Any]) -> dict[str, Any]:
    # The query table calls the feature `feature_binary`; the history example `feature_base64_str`.
    attr = face_attr(event, "v6")
    attr["feature_binary"] = attr.pop("feature_base64_str")
    return attr


def v5_event(event: dict[str, Any], is_send: bool, box: BoxIdentity) -> dict[str, Any]:
    """An event as `GET /SophonFace/api/events` returns it."""
    device, ids, ts = event["device"], event["image_ids"], event["timestamp_ms"]
    stranger = event["person_type"] == "stranger"
    return {
        "_id": event["v5_id"],
        "timestamp": _seconds(ts),
        "common": {
            "identity_id": event["identity_id"],
            "identity_info": {}
            if stranger
            else {"face_ids": [ids["register"]], "image_id": ids["register"]},
            "identity_name": event["identity_name"],
            "recognize_face_pic_id": ids["face"],
            "spot_pic_id": ids["scene"],
            "group_id": "default_group",
            "group_name": "default_group",
            "permission_id": device.permission_id,
            "permission_name": "default",
            "person_type": PERSON_CODES[event["person_type"]],
            "score": round(event["score"] / 100, 4),
            "ep_info": v5_ep_info(event, box),
            "want_action": "0",
            "frame_id": event["seq"],
            "recognize_face_attr": face_attr(event, "v5"),
            "is_send": int(is_send),
            "card_id": "",
        },
        "gate_data": {"ir_image_id": "", "depth_image_id": ""},
        "grab_data": {"grap_fiqa_info": {"age": 30, "sex": 1}},
        "video_data": {
            "track_id": event["seq"],
            "video_shape": [1920, 1080],
            "in_timestamp": _seconds(ts - 400),
            "in_bg_pic_id": "",
            "in_face_pic_id": ids["face"],
            "in_box": list(event["face_box"]),
            "recognition_timestamp": _seconds(ts),
            "pose_score": 0.93,
            "out_timestamp": _seconds(ts + 3500),
            "unknown_id": "",
        },
    }


def image_time_matches(event: dict[str, Any], given: Any) -> bool:
    """Whether the `timestamp=` / `datetime=` of an image fetch names this event's time
    (seconds or ms, to the second: the box uses it to find the day's folder)."""
    try:
        return abs(to_seconds(given) - event["timestamp_ms"] / 1000) < 1.0
    except (TypeError, ValueError):
        return False
