"""Every payload shape a SophonFog / SE3 box sends, turned into the event models.

Firmware V2R1 puts person_type, device_type, ep_id and spot_pic at the top level, V2R2 and
later move them into `ext_data`, history events add `want_action` and `dev_sno`, platform
pushes add `device_id` and `identity_info`, and the V6 websocket record renames most fields.
Form-data bodies carry the same keys as text, with nested dicts as JSON text.

Bad identity or timestamp data rejects the request (`WireError`, answered 400). A bad
image only drops that image: the event is worth more than its photo.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import voluptuous as vol

from . import boxhealth, images, jsoncodec
from .event import (
    HEALTH_AND_DEVICES,
    BoxStatus,
    DeviceType,
    Event,
    EventKind,
    FaceRect,
    PersonType,
    SubDevice,
    utcnow,
)

MAX_TEXT = 256
MAX_NESTING = 8
# Anything before this is a box with an unset clock, anything far ahead is garbage.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_AHEAD = timedelta(days=366)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

PERSON_CODES = {
    "1": PersonType.EMPLOYEE,
    "2": PersonType.VISITOR,
    "3": PersonType.BLACKLIST,
    "4": PersonType.STRANGER,
    "5": PersonType.VIP,
}
DEVICE_CODES = {
    "0": DeviceType.GATE,
    "1": DeviceType.SNAPSHOT_CAMERA,
    "2": DeviceType.IPC_STATIC,
    "3": DeviceType.IPC_DYNAMIC,
    "4": DeviceType.ACCESS_CONTROL,
}
DICT_FIELDS = (
    "ext_data",
    "identity_info",
    "grab_fiqa_info",
    "box_fiqa_info",
    "recognize_face_attr",
    "gateway_ext_data",
    "sub_devices",
    "ep_info",
    "media_device_info",
    "media_devices",
    *boxhealth.MONITOR_DICTS,
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Names and ids are one line: a newline in one breaks log lines, captions and syslog.
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\u2028\u2029\x85]+")


class WireError(ValueError):
    """The payload cannot become an event; the message names the field."""


# ---- small named validators -------------------------------------------------------------


def Text(max_len: int = MAX_TEXT):
    """A short string: numbers become strings, control characters go."""

    def validate(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise vol.Invalid("expected a string")
        text = _LINE_BREAKS.sub(" ", _CONTROL.sub("", str(value))).strip()
        if len(text) > max_len:
            raise vol.Invalid(f"longer than {max_len} characters")
        return text

    return validate


def NonEmpty(value: str) -> str:
    if not value:
        raise vol.Invalid("must not be empty")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise vol.Invalid("expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise vol.Invalid("expected a number") from None
    if not math.isfinite(number):
        raise vol.Invalid("must be a finite number")
    return number


def Score(value: Any) -> float:
    """0..1 as most firmware sends it, or 0..100 as the V6 record does."""
    score = _number(value)
    if score < 0 or score > 100:
        raise vol.Invalid("must be between 0 and 1 (or 0 and 100)")
    return round(score / 100 if score > 1 else score, 6)


def Timestamp(value: Any) -> datetime:
    """Seconds (V2R1) or milliseconds (V2R2 on), as a number or numeric string, or ISO 8601."""
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise vol.Invalid("expected epoch seconds, milliseconds or ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    else:
        number = _number(value)
        seconds = number / 1000 if abs(number) >= 1e11 else number
        try:
            moment = datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise vol.Invalid("out of range") from None
    if moment < EARLIEST or moment > utcnow() + LATEST_AHEAD:
        raise vol.Invalid(f"out of range ({moment.isoformat()})")
    return moment.astimezone(timezone.utc)


def PersonTypeValue(value: Any) -> PersonType:
    """1..5 (as int or string) or a V6 `user_type` name."""
    key = str(value).strip().lower()
    if key in PERSON_CODES:
        return PERSON_CODES[key]
    try:
        return PersonType(key)
    except ValueError:
        raise vol.Invalid(f"unknown person type {str(value)[:20]!r}") from None


def DeviceTypeValue(value: Any) -> DeviceType:
    """ "0".."4" as documented; anything else is unknown and opens no door."""
    key = str(value).strip().lower()
    if key in DEVICE_CODES:
        return DEVICE_CODES[key]
    try:
        return DeviceType(key)
    except ValueError:
        return DeviceType.UNKNOWN


def Flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "online", "on")
    return bool(value)


def Shallow(value: Any) -> Any:
    """Reject absurdly nested structures before anything walks them."""
    if isinstance(value, (dict, list)):
        _check_depth(value, 0)
    return value


def _check_depth(value: Any, depth: int) -> None:
    # A non-empty container at the limit holds something one level too deep.
    if depth > MAX_NESTING or (depth == MAX_NESTING and value):
        raise vol.Invalid(f"nested deeper than {MAX_NESTING} levels")
    # Only containers recurse: a call per string and number was most of this walk's cost.
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, (dict, list)):
            _check_depth(item, depth + 1)


def _shallow_body(payload: Mapping[str, Any]) -> None:
    """Unknown keys are kept in `raw` and spooled: they must be no deeper than ext_data."""
    try:
        _check_depth(dict(payload), -1)
    except vol.Invalid as err:
        raise WireError(f"body: {err.error_message}") from None


def Nullable(validator):
    """None passes; anything else must satisfy `validator` (whose message is kept)."""
    schema = vol.Schema(validator)

    def validate(value: Any) -> Any:
        return None if value is None else schema(value)

    return validate


def JsonObject(value: Any) -> dict:
    if not isinstance(value, dict):
        raise vol.Invalid("expected an object")
    return value


# No depth check of its own: parse_event checked the whole body (`_shallow_body`) first.
# Only `ext_data` may have been JSON text in the body, parsed after that check.
OptionalDict = Nullable(JsonObject)
ParsedDict = Nullable(vol.All(JsonObject, Shallow))

EVENT_SCHEMA = vol.Schema(
    {
        vol.Required("identity_id"): vol.All(Text(), NonEmpty),
        vol.Optional("identity_name", default=""): Nullable(Text()),
        vol.Optional("group_name", default=""): Nullable(Text()),
        vol.Required("timestamp"): Timestamp,
        vol.Optional("score", default=0.0): Score,
        vol.Optional("person_type"): PersonTypeValue,
        vol.Optional("device_type"): DeviceTypeValue,
        vol.Optional("event_id"): vol.All(Text(128), NonEmpty),
        vol.Optional("ep_id"): Nullable(Text()),
        vol.Optional("device_id"): Nullable(Text()),
        vol.Optional("device_ip"): Nullable(Text(64)),
        vol.Optional("dev_sno"): Nullable(Text()),
        vol.Optional("want_action"): Nullable(Text(16)),
        vol.Optional("identity_info"): OptionalDict,
        vol.Optional("grab_fiqa_info"): OptionalDict,
        vol.Optional("box_fiqa_info"): OptionalDict,
        vol.Optional("ext_data"): ParsedDict,
        vol.Optional("replayed", default=False): Flag,  # set by `sophonfog-bridge replay`
        vol.Optional("recognize_face_attr"): OptionalDict,
        vol.Optional("ep_info"): OptionalDict,
        vol.Optional("media_device_info"): OptionalDict,
        vol.Optional("device_name"): Nullable(Text()),
        vol.Optional("device_url"): Nullable(Text(1024)),
        vol.Optional("capture_type"): Nullable(Text(32)),
    },
    extra=vol.ALLOW_EXTRA,
)

SUB_DEVICE_SCHEMA = vol.Schema(
    {
        vol.Required("ep_id"): vol.All(Text(), NonEmpty),
        vol.Optional("ep_name", default=""): Nullable(Text()),
        vol.Optional("ep_ip"): Nullable(Text(64)),
        vol.Optional("ep_status", default="online"): Flag,
        vol.Optional("ep_location", default=""): Nullable(Text()),
        vol.Optional("ep_type", default=""): DeviceTypeValue,
        vol.Optional("ep_url"): Nullable(Text(1024)),
    },
    extra=vol.ALLOW_EXTRA,
)

STATUS_SCHEMA = vol.Schema(
    {
        vol.Optional("gateway_sn"): Nullable(Text()),
        vol.Optional("dev_sno"): Nullable(Text()),
        vol.Optional("reporter_id"): Nullable(Text()),
        vol.Optional("mq_license_key"): Nullable(Text()),
        vol.Optional("gateway_ip"): Nullable(Text(64)),
        vol.Optional("gateway_name", default=""): Nullable(Text()),
        vol.Optional("gateway_status", default="online"): Flag,
        vol.Optional("gateway_ext_data", default=dict): vol.All(dict, Shallow),
        vol.Optional("sub_devices", default=list): vol.All(
            [SUB_DEVICE_SCHEMA], vol.Length(max=256)
        ),
    },
    extra=vol.ALLOW_EXTRA,
)

# Where each model field may come from, first match wins: V6 names, then V2R1 top-level,
# then the V2R2+ ext_data placement.
ALIASES = {
    "ep_id": ("ep_id",),
    "device_id": ("device_id", "media_device_id"),
    "device_ip": ("device_ip", "media_device_ip"),
    "person_type": ("person_type", "user_type"),
    "device_type": ("device_type",),
    "dev_sno": ("dev_sno", "mq_license_key"),
    "want_action": ("want_action", "post_action"),
    "capture_type": ("media_device_type",),
    "grab_fiqa_info": ("grab_fiqa_info",),
    "box_fiqa_info": ("box_fiqa_info",),
}
IMAGE_SOURCES = {
    "reg_pic": ("reg_pic", "register_image", "reg_image"),
    "spot_pic": ("spot_pic", "spot_image"),
    "face_pic": ("recognize_face", "recognize_face_image"),
    "ir_pic": ("ir_pic", "ir_image"),
}
# V5 (`ep_info`) and V6 (`media_device_info`) history uploads name the capture device in a
# dict of its own; its keys land on the flat names the live records use.
DEVICE_INFO = {
    "media_device_info": {
        "media_device_id": "device_id",
        "media_device_ip": "device_ip",
        "media_device_name": "device_name",
        "media_device_type": "capture_type",
        "media_device_url": "device_url",
    },
    "ep_info": {
        "device_id": "device_id",
        "ep_id": "ep_id",
        "ep_ip": "device_ip",
        "ep_name": "device_name",
        "ep_type": "capture_type",
    },
}
# The face's feature vector is a biometric template: it is never stored or published.
FEATURE_KEYS = frozenset({"feature", "feature_binary", "feature_base64_str"})
FRAME_TIMES = ("in_timestamp", "out_timestamp")


# ---- the body -----------------------------------------------------------------------------


def coerce_form(fields: Mapping[str, str]) -> dict[str, Any]:
    """Form fields are all text; nested dicts and lists arrive as JSON text."""
    out: dict[str, Any] = dict(fields)
    for key in DICT_FIELDS:
        value = out.get(key)
        if isinstance(value, str) and value.strip():
            try:
                out[key] = jsoncodec.loads(value)
            except (ValueError, RecursionError):
                raise WireError(f"{key}: not valid JSON text") from None
        elif isinstance(value, str):
            out[key] = None
    ext = out.get("ext_data")
    if isinstance(ext, dict):
        out["ext_data"] = {k: _maybe_json(v) if k in DICT_FIELDS else v for k, v in ext.items()}
    return out


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return jsoncodec.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _humanize(err: vol.MultipleInvalid) -> str:
    problems = []
    for error in err.errors:
        path = ".".join(str(p) for p in error.path) or "body"
        problems.append(f"{path}: {error.error_message}")
    return "; ".join(sorted(set(problems)))


def _validate(schema: vol.Schema, data: dict[str, Any]) -> dict[str, Any]:
    try:
        return schema(data)
    except vol.MultipleInvalid as err:
        raise WireError(_humanize(err)) from None


def _merged_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's fields in one mapping: top-level keys win over ext_data, V6 names map to
    the documented ones."""
    ext = payload.get("ext_data")
    ext = _maybe_json(ext) if isinstance(ext, str) else ext
    ext = ext if isinstance(ext, dict) else {}
    fields = {k: v for k, v in payload.items() if k not in IMAGE_SOURCES}
    fields["ext_data"] = ext or None
    for name, sources in ALIASES.items():
        for source in sources:
            for where in (payload, ext):
                if where.get(source) not in (None, "") and fields.get(name) in (None, ""):
                    fields[name] = where[source]
    _merge_device_info(payload, fields)
    if fields.get("person_type") in (None, ""):
        fields["person_type"] = _enrolled_type(payload.get("identity_info"))
        if fields["person_type"] is None:
            del fields["person_type"]
    return fields


def _merge_device_info(payload: Mapping[str, Any], fields: dict[str, Any]) -> None:
    """`ep_info` / `media_device_info` -> the merged names, so the upload of a recognition
    names its camera (and so gets its identity) exactly as the live copy does."""
    for block, names in DEVICE_INFO.items():
        info = payload.get(block)
        if not isinstance(info, Mapping):
            continue
        for source, name in names.items():
            if info.get(source) not in (None, "") and fields.get(name) in (None, ""):
                fields[name] = info[source]


def _enrolled_type(info: Any) -> Any:
    """V5 real-time records repeat the person type as `identity_info.type` (if valid)."""
    if not isinstance(info, dict) or info.get("type") in (None, ""):
        return None
    try:
        PersonTypeValue(info["type"])
    except vol.Invalid:
        return None
    return info["type"]


def _images(
    payload: Mapping[str, Any], max_bytes: int, decode: bool
) -> tuple[dict[str, bytes | None], list[str]]:
    """Each image as checked base64 text, or decoded to bytes when `decode` is set."""
    ext = payload.get("ext_data") if isinstance(payload.get("ext_data"), dict) else {}
    pictures: dict[str, bytes | None] = {}
    warnings: list[str] = []
    for name, sources in IMAGE_SOURCES.items():
        pictures[name] = None
        for source in sources:
            value = payload.get(source) or ext.get(source)
            if value in (None, ""):
                continue
            try:
                data = images.strip(value, max_bytes)
                pictures[name] = images.decode(data) if decode else data
            except ValueError as err:
                warnings.append(f"{source}: {err}, image dropped")
            break
    return pictures, warnings


def _face_attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The face attributes the box found, without the feature vector (biometric data)."""
    attr = fields.get("recognize_face_attr")
    if not isinstance(attr, Mapping):
        ext = fields.get("ext_data") or {}
        attr = ext.get("recognize_face_attr") if isinstance(ext, Mapping) else None
    if not isinstance(attr, Mapping):
        return {}
    return {k: v for k, v in attr.items() if k not in FEATURE_KEYS}


def _frame_times(fields: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """When the person entered and left the frame (history uploads), as ISO 8601."""
    times: dict[str, str] = {}
    warnings: list[str] = []
    for name in FRAME_TIMES:
        value = fields.get(name)
        if value in (None, ""):
            continue
        try:
            times[name] = Timestamp(value).isoformat(timespec="milliseconds")
        except vol.Invalid as err:
            warnings.append(f"{name}: {err.error_message}, dropped")
    return times, warnings


def _face_rect(grab: Mapping[str, Any] | None, attr: Mapping[str, Any] | None) -> FaceRect | None:
    """V2's `grab_fiqa_info.rect` {left, top, right, bottom}, else V5/V6 `recognize_face_attr.box`
    [x1, y1, x2, y2]. A box that is not four numbers enclosing an area is no box."""
    rect = (grab or {}).get("rect")
    box = (attr or {}).get("box")
    try:
        if isinstance(rect, dict):
            sides = [int(_number(rect[k])) for k in ("left", "top", "right", "bottom")]
        elif isinstance(box, list) and len(box) == 4:
            sides = [int(_number(v)) for v in box]
        else:
            return None
    except (KeyError, vol.Invalid, OverflowError):
        return None
    left, top, right, bottom = sides
    if left < 0 or top < 0 or right <= left or bottom <= top:
        return None
    return FaceRect(left, top, right, bottom)


def event_id_for(device_key: str, identity_id: str, timestamp: datetime) -> str:
    """One recognition, one id, whichever route or copy it came by.

    Built only from what the box sent (the capture device as the box named it, the person,
    the time to the millisecond), never from what the bridge learned since: a re-sent copy,
    the history upload and a query result of the same recognition must all land on it.
    The score is left out because copies give it on different scales.
    """
    millis = (timestamp - EPOCH) // timedelta(milliseconds=1)
    key = f"{device_key}\x1f{identity_id}\x1f{millis}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _device_key(fields: Mapping[str, Any]) -> str:
    """The capture device as the box named it: its id, else its IP, else its ep_id.

    V2R2 real-time events carry only the IP while their history copies carry
    `<dev_sno>__<ip>`: the IP is what both share.
    """
    if fields.get("device_id"):
        return f"id:{fields['device_id']}"
    ep_id = fields.get("ep_id") or ""
    ip = fields.get("device_ip") or (ep_id.split("__", 1)[1] if "__" in ep_id else "")
    if ip:
        return f"ip:{ip}"
    return f"ep:{ep_id}" if ep_id else "unknown"


# Keys the model holds (or drops on purpose): not kept again in `raw` / `ext_data`.
CONSUMED = frozenset(
    {
        *ALIASES,
        *(source for sources in IMAGE_SOURCES.values() for source in sources),
        *DEVICE_INFO,
        *FRAME_TIMES,
        "media_device_ip",
        "media_device_id",
        "user_type",
        "mq_license_key",
        "post_action",
        "replayed",
        "recognize_face_attr",
        "device_name",
        "device_url",
    }
)


def parse_event(
    payload: Mapping[str, Any],
    *,
    history: bool = False,
    max_image_bytes: int = 4 << 20,
    ep_id_for_ip: Callable[[str], str | None] | None = None,
    decode_images: bool = True,
) -> Event:
    """Any documented event shape -> Event. Raises WireError naming the bad field.

    V2R2+ real-time events name their camera only by IP while heartbeats and history
    events use `<dev_sno>__<ip>`; `ep_id_for_ip` (the bridge's known devices) lets both
    land on the same device id. With `decode_images=False` (the receiver) the images stay
    base64 text, checked only cheaply; `Event.from_parts` decodes them in the workers.
    """
    if not isinstance(payload, Mapping):
        raise WireError("body: expected a JSON object")
    _shallow_body(payload)
    flat = _validate(EVENT_SCHEMA, _merged_fields(payload))
    found, warnings = _images(payload, max_image_bytes, decode_images)
    frame_times, time_warnings = _frame_times(flat)
    warnings += time_warnings
    where = _capture_device(flat, ep_id_for_ip, warnings)
    attributes = _face_attributes(flat)
    return Event(
        event_id=event_id_for(_device_key(flat), flat["identity_id"], flat["timestamp"]),
        box_event_id=flat.get("event_id"),
        kind=EventKind.HISTORY if history or "want_action" in flat else EventKind.REALTIME,
        identity_id=flat["identity_id"],
        identity_name=flat.get("identity_name") or "",
        group_name=flat.get("group_name") or "",
        score=flat["score"],
        timestamp=flat["timestamp"],
        person_type=flat.get("person_type") or PersonType.EMPLOYEE,
        device_type=flat.get("device_type") or DeviceType.UNKNOWN,
        **where,
        face_rect=_face_rect(flat.get("grab_fiqa_info"), attributes),
        face_attributes=attributes,
        device_name=flat.get("device_name") or "",
        face_quality=_face_quality(flat),
        identity_info=flat.get("identity_info") or {},
        ext_data=_ext_data(flat, frame_times),
        want_action=flat.get("want_action"),
        warnings=tuple(warnings),
        replayed=flat["replayed"],
        raw={k: v for k, v in payload.items() if k not in CONSUMED and k != "ext_data"},
        encoded_images=() if decode_images else tuple(n for n, v in found.items() if v),
        **found,
    )


def _capture_device(
    flat: Mapping[str, Any],
    ep_id_for_ip: Callable[[str], str | None] | None,
    warnings: list[str],
) -> dict[str, Any]:
    """`device`, `ep_id`, `device_ip` and `box`: each filled from the others where missing."""
    ep_id = flat.get("ep_id") or None
    device_ip = flat.get("device_ip") or None
    device_id = flat.get("device_id") or None
    # Channels of one recorder share an IP: a camera the box names by id is never
    # given the ep_id learned for its IP (that may be another channel's).
    if not ep_id and not device_id and device_ip and ep_id_for_ip is not None:
        ep_id = ep_id_for_ip(device_ip)
    if ep_id and "__" in ep_id and not device_ip:
        device_ip = ep_id.split("__", 1)[1] or None
    # The id first: a V5 live record names its camera by `device_id` only, its upload by
    # `ep_info.ep_id` and `ep_info.device_id`; both must be one device.
    device = device_id or ep_id or device_ip
    if not device:
        device = "unknown"
        warnings.append("no capture device id in the event")
    box = flat.get("dev_sno") or (ep_id.split("__", 1)[0] if ep_id and "__" in ep_id else None)
    return {"device": device, "ep_id": ep_id, "device_ip": device_ip, "box": box}


def _face_quality(flat: Mapping[str, Any]) -> dict[str, Any]:
    grab, box = flat.get("grab_fiqa_info"), flat.get("box_fiqa_info")
    return {k: v for k, v in (("grab", grab), ("box", box)) if v}


def _ext_data(flat: Mapping[str, Any], frame_times: dict[str, str]) -> dict[str, Any]:
    """What the box sent in `ext_data` that the model does not hold, and the frame times."""
    ext = dict(flat.get("ext_data") or {})
    return {
        **{k: v for k, v in ext.items() if k not in CONSUMED},
        **frame_times,
        **_device_extras(flat),
    }


def _device_extras(fields: Mapping[str, Any]) -> dict[str, str]:
    """The camera's stream URL and media type (`rtsp`, `photo`...), kept in ext_data."""
    return {k: fields[k] for k in ("capture_type", "device_url") if fields.get(k)}


# V6 names its capture devices `media_device_*`; V2 and V5 `ep_*`.
MEDIA_DEVICE_KEYS = {
    "media_device_id": "ep_id",
    "media_device_name": "ep_name",
    "media_device_ip": "ep_ip",
    "media_device_status": "ep_status",
    "media_device_type": "ep_type",
    "media_device_url": "ep_url",
}
# The V6 table calls the list `media_devices`, its example `sub_devices`.
DEVICE_LISTS = ("sub_devices", "media_devices")
BOX_IDS = ("gateway_sn", "dev_sno", "reporter_id", "mq_license_key", "gateway_ip")


def looks_like_status(payload: Any) -> bool:
    """A status push rather than an event: no person, but a box id, health or devices."""
    if not isinstance(payload, Mapping) or "identity_id" in payload:
        return False
    return any(k in payload for k in (*BOX_IDS, *DEVICE_LISTS, *boxhealth.HEALTH_KEYS))


def _status_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """One device list under `sub_devices`, every device under its `ep_*` names."""
    data = {k: v for k, v in payload.items() if k not in DEVICE_LISTS}
    listed = [payload[k] for k in DEVICE_LISTS if k in payload]
    devices: Any = listed[0] if len(listed) == 1 else None
    if len(listed) > 1:
        devices = [d for lst in listed if isinstance(lst, list) for d in lst]
    if listed:
        if isinstance(devices, list):
            devices = [_ep_names(d) for d in devices]
        data["sub_devices"] = devices
    return data


def _ep_names(device: Any) -> Any:
    if not isinstance(device, Mapping):
        return device
    renamed = {MEDIA_DEVICE_KEYS.get(k, k): v for k, v in device.items()}
    return {**renamed, **{k: device[k] for k in device if k.startswith("ep_")}}


def _status_parts(payload: Mapping[str, Any]) -> tuple[str, ...]:
    has_devices = any(k in payload for k in DEVICE_LISTS)
    if boxhealth.reports_health(payload) or not has_devices:
        return HEALTH_AND_DEVICES if has_devices else ("health",)
    return ("devices",)


def parse_status(payload: Mapping[str, Any]) -> BoxStatus:
    """A box status push -> BoxStatus. Raises WireError naming the bad field.

    V2 heartbeats, V5/V6 capture-device pushes (`dev_sno` / `mq_license_key` with their
    device list) and V5/V6 system-monitor pushes (`gateway_*` with cpu, memory, disk...).
    """
    if not isinstance(payload, Mapping):
        raise WireError("body: expected a JSON object")
    _shallow_body(payload)
    data = _validate(STATUS_SCHEMA, _status_view(payload))
    box = next((data[k] for k in BOX_IDS if data.get(k)), None)
    if not box:
        raise WireError(
            "gateway_sn: required (or dev_sno, reporter_id, mq_license_key, gateway_ip)"
        )
    ext = data["gateway_ext_data"]
    health = boxhealth.health_fields(payload)
    return BoxStatus(
        box=box,
        name=data.get("gateway_name") or "",
        ip=data.get("gateway_ip"),
        online=data["gateway_status"],
        sw_version=_text_or_none(ext.get("sw_version")),
        sdk_version=_text_or_none(ext.get("sdk_version")),
        nnsdk_version=_text_or_none(ext.get("nnsdk_version")),
        mac=_text_or_none(ext.get("gateway_mac") or payload.get("gateway_mac")),
        **health,
        sub_devices=tuple(_sub_device(d) for d in data["sub_devices"]),
        parts=_status_parts(payload),
        raw={k: v for k, v in payload.items() if k not in DEVICE_LISTS},
    )


def _sub_device(device: Mapping[str, Any]) -> SubDevice:
    return SubDevice(
        ep_id=device["ep_id"],
        name=device.get("ep_name") or "",
        ip=device.get("ep_ip"),
        online=device["ep_status"],
        location=device.get("ep_location") or "",
        device_type=device["ep_type"],
        url=device.get("ep_url"),
    )


def _text_or_none(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return Text()(value)
    except vol.Invalid:
        return None
