"""The models every plugin sees: a face event, a box heartbeat, a box link, a door decision.

They are built once, at the receiver, and never change afterwards. Each model turns
itself into spool parts (a JSON-safe dict plus named binary blobs) and back, so the
spool never has to know what it stores.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from . import images

IMAGE_FIELDS = ("reg_pic", "spot_pic", "face_pic", "ir_pic")


class PersonType(str, enum.Enum):
    EMPLOYEE = "employee"
    VISITOR = "visitor"
    BLACKLIST = "blacklist"
    STRANGER = "stranger"
    VIP = "vip"


class DeviceType(str, enum.Enum):
    GATE = "gate"
    SNAPSHOT_CAMERA = "snapshot_camera"
    IPC_STATIC = "ipc_static"
    IPC_DYNAMIC = "ipc_dynamic"
    ACCESS_CONTROL = "access_control"
    UNKNOWN = "unknown"


class EventKind(str, enum.Enum):
    REALTIME = "realtime"
    HISTORY = "history"


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Model:
    """Shared spool round-trip for the frozen dataclasses below."""

    record_kind: ClassVar[str]
    _datetimes: ClassVar[tuple[str, ...]] = ()
    _enums: ClassVar[Mapping[str, type[enum.Enum]]] = {}
    _blobs: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view without images: what MQTT, syslog and webhooks publish."""
        skip = (*self._blobs, "raw", "encoded_images")
        return {n: _plain(getattr(self, n)) for n in _field_names(type(self)) if n not in skip}

    def to_parts(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        # On the receiver's path for every event: the field names are looked up once per
        # class, and only values that need it are converted.
        meta: dict[str, Any] = {}
        blobs: dict[str, bytes] = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if name in self._blobs:
                if value is not None:
                    blobs[name] = value
            elif value is None or type(value) in _PLAIN_TYPES:
                meta[name] = value
            else:
                meta[name] = _plain(value)
        return meta, blobs

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any], blobs: Mapping[str, bytes]):
        kwargs = dict(meta)
        for name in cls._datetimes:
            if kwargs.get(name) is not None:
                kwargs[name] = _parse_iso(kwargs[name])
        for name, enum_type in cls._enums.items():
            kwargs[name] = _member(enum_type, kwargs[name])
        for name in cls._blobs:
            kwargs[name] = blobs.get(name)
        return cls._revive(kwargs)

    @classmethod
    def _revive(cls, kwargs: dict[str, Any]):
        return _construct(cls, kwargs)


_PLAIN_TYPES = frozenset({str, int, float, bool, dict})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _settable_fields(cls: type) -> frozenset[str] | None:
    """The fields `_construct` may set at once; None if `__post_init__` must run."""
    return None if hasattr(cls, "__post_init__") else frozenset(_field_names(cls))


@functools.cache
def _members(enum_type: type[enum.Enum]) -> dict[Any, enum.Enum]:
    # A dict lookup; calling the enum goes through its metaclass (~1.4 µs each).
    return {member.value: member for member in enum_type}


def _member(enum_type: type[enum.Enum], value: Any) -> enum.Enum:
    try:
        return _members(enum_type)[value]
    except (KeyError, TypeError):
        return enum_type(value)  # raises the enum's own error for a value it does not know


def _construct(cls: type, kwargs: dict[str, Any]) -> Any:
    """`cls(**kwargs)` for a spooled frozen dataclass. Every worker builds every record it
    is given: with every field present (as this version spools them) the fields are set
    at once, where the frozen `__init__` sets each through `object.__setattr__` (~8 µs
    an event). A record missing some (an older version's) or with unknown ones goes
    through `__init__`, which fills in the defaults or refuses."""
    if kwargs.keys() != _settable_fields(cls):
        return cls(**kwargs)
    model = object.__new__(cls)
    model.__dict__.update(kwargs)
    return model


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict()  # type: ignore[union-attr]
    return value


@dataclass(frozen=True)
class FaceRect:
    """Face box in scene-photo pixels, as the capture device reported it."""

    left: int
    top: int
    right: int
    bottom: int

    def to_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}


@dataclass(frozen=True)
class Event(_Model):
    """One recognised face, normalised from whatever shape the box sent."""

    record_kind: ClassVar[str] = "event"
    _datetimes: ClassVar[tuple[str, ...]] = ("timestamp", "received_at")
    _enums: ClassVar[Mapping[str, type[enum.Enum]]] = {
        "kind": EventKind,
        "person_type": PersonType,
        "device_type": DeviceType,
    }
    _blobs: ClassVar[tuple[str, ...]] = IMAGE_FIELDS

    event_id: str
    kind: EventKind
    identity_id: str
    identity_name: str
    group_name: str
    score: float
    timestamp: datetime
    person_type: PersonType
    device_type: DeviceType
    device: str
    ep_id: str | None = None
    device_ip: str | None = None
    box: str | None = None
    reg_pic: bytes | None = field(default=None, repr=False)
    spot_pic: bytes | None = field(default=None, repr=False)
    face_pic: bytes | None = field(default=None, repr=False)
    # The infrared frame some gates take beside the colour one (V5/V6 history uploads).
    ir_pic: bytes | None = field(default=None, repr=False)
    face_rect: FaceRect | None = None
    face_quality: Mapping[str, Any] = field(default_factory=dict)
    identity_info: Mapping[str, Any] = field(default_factory=dict)
    ext_data: Mapping[str, Any] = field(default_factory=dict)
    want_action: str | None = None
    # The box's own id for the event (V6), kept to fetch its photos; never the identity.
    box_event_id: str | None = None
    # The capture device's name as the box gave it (V5/V6 history uploads).
    device_name: str = ""
    # What the box found about the face (age, gender, mask, glasses, hat, expression,
    # landmarks), as it sent them; never the feature vector (biometric, dropped at the door).
    face_attributes: Mapping[str, Any] = field(default_factory=dict)
    # A later copy of an event already recorded, carrying only the photos the first copy
    # lacked (a V6 history upload brings the scene its live copy never has). Always
    # history: plugins add its photos to the first copy's and act on nothing.
    completes: bool = False
    # How it reached the bridge ("http", "websocket", "query"), for the audit trail only:
    # nothing may act differently on it.
    transport: str = "http"
    received_at: datetime = field(default_factory=utcnow)
    warnings: tuple[str, ...] = ()
    # Re-posted by `sophonfog-bridge replay` (without --live): real data, not a person now.
    replayed: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Image fields still holding base64 text: only between the receiver and the spool.
    encoded_images: tuple[str, ...] = field(default=(), repr=False)

    @property
    def is_live(self) -> bool:
        """True for real-time events; history events must never trigger actions."""
        return self.kind is EventKind.REALTIME

    @property
    def short_id(self) -> str:
        return self.event_id[:8]

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds between the box's timestamp and now (negative if the box clock runs ahead)."""
        return ((now or utcnow()) - self.timestamp).total_seconds()

    @classmethod
    def _revive(cls, kwargs: dict[str, Any]) -> Event:
        rect = kwargs.get("face_rect")
        if rect is not None:
            kwargs["face_rect"] = _construct(FaceRect, rect)
        warnings = list(kwargs.get("warnings", ()))
        encoded = kwargs.get("encoded_images", ())
        kwargs["encoded_images"] = ()  # decoded below: every field present, as spooled
        for name in encoded:
            try:
                kwargs[name] = images.decode(kwargs[name])
            except ValueError as err:
                kwargs[name] = None
                warnings.append(f"{name}: {err}, image dropped")
        kwargs["warnings"] = tuple(warnings)
        return _construct(cls, kwargs)


@dataclass(frozen=True)
class SubDevice:
    """A capture device (camera, gate, access-control panel) behind a box."""

    ep_id: str
    name: str = ""
    ip: str | None = None
    online: bool = False
    location: str = ""
    device_type: DeviceType = DeviceType.UNKNOWN
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}


HEALTH_AND_DEVICES = ("health", "devices")
# What a capture-device push says; everything else in BoxStatus is the box's health.
_DEVICE_FIELDS = frozenset({"box", "sub_devices", "received_at", "raw", "parts"})


@dataclass(frozen=True)
class BoxStatus(_Model):
    """A box heartbeat (`DeviceStatus`): the box's health and its capture devices."""

    record_kind: ClassVar[str] = "box_status"
    _datetimes: ClassVar[tuple[str, ...]] = ("received_at",)

    box: str
    name: str = ""
    ip: str | None = None
    online: bool = True
    sw_version: str | None = None
    sdk_version: str | None = None
    mac: str | None = None
    cpu_usage: float | None = None
    memory_size_gb: float | None = None
    memory_usage: float | None = None
    disk_size_gb: float | None = None
    disk_free_gb: float | None = None
    temperature: float | None = None
    sub_devices: tuple[SubDevice, ...] = ()
    received_at: datetime = field(default_factory=utcnow)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # The system monitor of V5/V6 boxes. Units: % for tpu_usage (like cpu_usage), 0..1
    # for disk_usage (like memory_usage), GB, °C, r/min, seconds.
    nnsdk_version: str | None = None
    tpu_usage: float | None = None
    memory_used_gb: float | None = None
    disk_usage: float | None = None
    external_disk_mounted: bool | None = None
    external_disk_size_gb: float | None = None
    external_disk_free_gb: float | None = None
    board_temperature: float | None = None
    fan_speed_rpm: float | None = None
    uptime_s: float | None = None
    # What this push reported: V5/V6 boxes send their health and their capture devices
    # in separate pushes, and one must not blank out what the other said.
    parts: tuple[str, ...] = HEALTH_AND_DEVICES

    @classmethod
    def _revive(cls, kwargs: dict[str, Any]) -> BoxStatus:
        kwargs["sub_devices"] = tuple(
            SubDevice(**{**d, "device_type": DeviceType(d["device_type"])})
            for d in kwargs.get("sub_devices", ())
        )
        kwargs["parts"] = tuple(kwargs.get("parts", HEALTH_AND_DEVICES))
        return _construct(cls, kwargs)

    def merged_onto(self, previous: BoxStatus | None) -> BoxStatus:
        """This push, with what it did not report taken from the box's previous one."""
        if (
            previous is None
            or previous.box != self.box
            or set(self.parts) >= set(HEALTH_AND_DEVICES)
        ):
            return self
        if "devices" in self.parts:
            keep = {
                f.name: getattr(previous, f.name)
                for f in dataclasses.fields(self)
                if f.name not in _DEVICE_FIELDS and getattr(self, f.name) in (None, "")
            }
        else:
            keep = {"sub_devices": previous.sub_devices}
        parts = tuple(p for p in HEALTH_AND_DEVICES if p in self.parts or p in previous.parts)
        return dataclasses.replace(self, **keep, parts=parts)


@dataclass(frozen=True)
class BoxLink(_Model):
    """The bridge's websocket link to a V5/V6 box came up or went down.

    Spooled on each change, so a plugin learns of it through `handle_box_link` like any
    record. `devices` are the capture devices the box listed (no status: the list has
    none); `reason` says why the link is down, or why it is up but subscribed to nothing.
    """

    record_kind: ClassVar[str] = "box_link"
    _datetimes: ClassVar[tuple[str, ...]] = ("since",)

    box: str
    connected: bool
    firmware: str = ""
    host: str = ""
    reason: str = ""
    devices: tuple[SubDevice, ...] = ()
    since: datetime = field(default_factory=utcnow)

    @classmethod
    def _revive(cls, kwargs: dict[str, Any]) -> BoxLink:
        kwargs["devices"] = tuple(
            SubDevice(**{**d, "device_type": DeviceType(d["device_type"])})
            for d in kwargs.get("devices", ())
        )
        return _construct(cls, kwargs)


class DecisionResult(str, enum.Enum):
    OPEN = "open"
    DENY = "deny"
    ERROR = "error"


@dataclass(frozen=True)
class DoorDecision(_Model):
    """What a door did about an event or a remote command, and why.

    The door plugin announces these through the bridge; every plugin that implements
    `handle_door_decision` receives them from the spool like events. `decision_id` is
    fixed when the decision is made, before any pulse, and stays the same through the
    journal, a re-announcement after a crash, and every consumer.
    """

    record_kind: ClassVar[str] = "door_decision"
    _datetimes: ClassVar[tuple[str, ...]] = ("decided_at",)
    _enums: ClassVar[Mapping[str, type[enum.Enum]]] = {"decision": DecisionResult}

    door: str
    decision: DecisionResult
    reason: str
    rule: str = ""
    source: str = "event"
    event_id: str | None = None
    identity_id: str | None = None
    identity_name: str | None = None
    person_type: str | None = None
    device: str | None = None
    score: float | None = None
    decided_at: datetime = field(default_factory=utcnow)
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_event(
        cls, event: Event, door: str, decision: DecisionResult, reason: str, rule: str = ""
    ) -> DoorDecision:
        """A decision about `event`, carrying the facts an audit trail needs from it."""
        return cls(
            door=door,
            decision=decision,
            reason=reason,
            rule=rule,
            source="event",
            event_id=event.event_id,
            identity_id=event.identity_id,
            identity_name=event.identity_name,
            person_type=event.person_type.value,
            device=event.device,
            score=event.score,
        )


MODELS: dict[str, type[_Model]] = {
    m.record_kind: m for m in (Event, BoxStatus, BoxLink, DoorDecision)
}
