"""Home Assistant device-based discovery payloads (`<prefix>/device/<id>/config`).

One retained config per HA device with `dev`, `o` and `cmps`. Entity ids come from
`default_entity_id` (HA 2025.10+; older HA drops the key it does not know), and every
`unique_id` and device identifier starts with the bridge_id, so two bridges on one broker
never collide. Availability is the bridge's `<base>/status` for every device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sophonfog_bridge import PersonType

from .topics import Topics, entity_slug

PERSON_TYPES = [p.value for p in PersonType]
MANUFACTURER = "SophonFog"


@dataclass(frozen=True)
class Context:
    bridge_id: str
    version: str
    topics: Topics
    origin_url: str
    off_delay_s: int
    presence_off_delay_s: int

    def ident(self, *parts: str) -> str:
        return "_".join(("sophonfog", self.bridge_id, *parts))

    def entity_base(self, owner: str) -> str:
        """`<bridge_id>_<device slug>` for capture devices, `<bridge_id>_box_...` etc."""
        short = owner.removeprefix("sophonfog_")
        capture = f"{self.bridge_id}_dev_"
        return self.bridge_id + "_" + short[len(capture) :] if short.startswith(capture) else short

    def envelope(self, device: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
        return {
            "dev": device,
            "o": {
                "name": "sophonfog-bridge",
                "sw_version": self.version,
                "support_url": self.origin_url,
            },
            "availability_topic": self.topics.status,
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "cmps": components,
        }


def _entity(
    ctx: Context, platform: str, owner: str, key: str, name: str | None, **options: Any
) -> dict[str, Any]:
    return {
        "platform": platform,
        "name": name,
        "unique_id": f"{owner}_{key}",
        "default_entity_id": f"{platform}.{entity_slug(ctx.entity_base(owner) + '_' + key)}",
        **options,
    }


def bridge_device(ctx: Context) -> tuple[str, dict[str, Any]]:
    owner = ctx.ident("bridge")
    device = {
        "identifiers": [owner],
        "name": f"SophonFog bridge {ctx.bridge_id}",
        "manufacturer": MANUFACTURER,
        "model": "sophonfog-bridge",
        "sw_version": ctx.version,
    }
    return owner, ctx.envelope(device, _bridge_entities(ctx, owner))


def _bridge_entities(ctx: Context, owner: str) -> dict[str, Any]:
    state = ctx.topics.bridge_state
    return {
        "connectivity": _entity(
            ctx,
            "binary_sensor",
            owner,
            "connectivity",
            "Connectivity",
            state_topic=ctx.topics.status,
            payload_on="online",
            payload_off="offline",
            device_class="connectivity",
            entity_category="diagnostic",
        ),
        "events": _entity(
            ctx,
            "sensor",
            owner,
            "events",
            "Events published",
            state_topic=state,
            value_template="{{ value_json.events }}",
            state_class="total_increasing",
            icon="mdi:counter",
            entity_category="diagnostic",
        ),
        "spool_depth": _entity(
            ctx,
            "sensor",
            owner,
            "spool_depth",
            "Spool depth",
            state_topic=state,
            value_template="{{ value_json.spool_depth }}",
            state_class="measurement",
            unit_of_measurement="records",
            icon="mdi:tray-full",
            entity_category="diagnostic",
            json_attributes_topic=state,
        ),
    }


def box_device(ctx: Context, box_slug: str, box: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    owner = ctx.ident("box", box_slug)
    components = _box_health_entities(ctx, owner, box_slug, box)
    if box.get("link"):
        # Only boxes the bridge holds a websocket to (V5/V6); V2 boxes push over HTTP.
        components["link"] = _box_link_entity(ctx, owner, box_slug)
    return owner, ctx.envelope(_box_identity(ctx, owner, box), components)


def _box_identity(ctx: Context, owner: str, box: dict[str, Any]) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [owner],
        "name": box.get("name") or f"SophonFog box {box['box']}",
        "manufacturer": MANUFACTURER,
        "model": "AI box",
        "via_device": ctx.ident("bridge"),
    }
    if not box.get("link"):
        # A box the bridge connects to is known by its configured name, not a serial.
        device["serial_number"] = box["box"]
    if box.get("sw_version"):
        device["sw_version"] = box["sw_version"]
    return device


def _box_health_entities(
    ctx: Context, owner: str, box_slug: str, box: dict[str, Any]
) -> dict[str, Any]:
    """`online`, and a sensor for each health figure the box reports (a few always)."""
    topic = ctx.topics.box(box_slug)

    def metric(key: str, name: str, **options: Any) -> dict[str, Any]:
        return _entity(
            ctx,
            "sensor",
            owner,
            key,
            name,
            state_topic=topic,
            value_template=f"{{{{ value_json.{key} }}}}",
            state_class="measurement",
            entity_category="diagnostic",
            **options,
        )

    components = {
        "online": _entity(
            ctx,
            "binary_sensor",
            owner,
            "online",
            "Online",
            state_topic=topic,
            value_template="{{ 'ON' if value_json.online else 'OFF' }}",
            device_class="connectivity",
            json_attributes_topic=topic,
            json_attributes_template="{{ {'sub_devices': value_json.devices_online} | tojson }}",
        ),
    }
    reported = set(box.get("metrics") or ())
    for key, (name, options) in BOX_SENSORS.items():
        if key in ALWAYS_ANNOUNCED or key in reported:
            components[key] = metric(key, name, **options)
    return components


def _box_link_entity(ctx: Context, owner: str, box_slug: str) -> dict[str, Any]:
    link = ctx.topics.box_link(box_slug)
    return _entity(
        ctx,
        "binary_sensor",
        owner,
        "link",
        "Event link",
        state_topic=link,
        value_template="{{ 'ON' if value_json.connected else 'OFF' }}",
        device_class="connectivity",
        entity_category="diagnostic",
        json_attributes_topic=link,
    )


_GB = {"unit_of_measurement": "GB", "device_class": "data_size", "icon": "mdi:harddisk"}
_CELSIUS = {"unit_of_measurement": "°C", "device_class": "temperature"}
# The box's health sensors (diagnostic, state_class measurement), keyed by the state's key.
BOX_SENSORS: dict[str, tuple[str, dict[str, Any]]] = {
    "cpu_usage": ("CPU", {"unit_of_measurement": "%", "icon": "mdi:cpu-64-bit"}),
    "tpu_usage": ("TPU", {"unit_of_measurement": "%", "icon": "mdi:chip"}),
    "memory_usage": ("Memory", {"unit_of_measurement": "%", "icon": "mdi:memory"}),
    "disk_usage": ("Disk used", {"unit_of_measurement": "%", "icon": "mdi:harddisk"}),
    "disk_free_gb": ("Disk free", _GB),
    "external_disk_free_gb": ("External disk free", _GB),
    "temperature": ("Temperature", _CELSIUS),
    "board_temperature": ("Board temperature", _CELSIUS),
    "fan_speed_rpm": ("Fan", {"unit_of_measurement": "rpm", "icon": "mdi:fan"}),
    "uptime_s": ("Uptime", {"unit_of_measurement": "s", "device_class": "duration"}),
}
# Announced for every box, as before V5/V6 health existed; the rest once a box reports them.
ALWAYS_ANNOUNCED = frozenset({"cpu_usage", "memory_usage", "disk_free_gb", "temperature"})


def capture_device(
    ctx: Context,
    dev_slug: str,
    info: dict[str, Any],
    box_slug: str | None,
    doors: list[str],
) -> tuple[str, dict[str, Any]]:
    owner = ctx.ident("dev", dev_slug)
    event_topic = ctx.topics.device(dev_slug, "event")
    components = {
        **_face_entities(ctx, owner, dev_slug),
        **_alert_entities(ctx, owner, event_topic),
        **_person_triggers(event_topic),
        **_door_buttons(ctx, owner, dev_slug, doors),
    }
    return owner, ctx.envelope(_capture_identity(ctx, owner, info, box_slug), components)


def _capture_identity(
    ctx: Context, owner: str, info: dict[str, Any], box_slug: str | None
) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [owner],
        "name": info.get("name") or info["device"],
        "manufacturer": MANUFACTURER,
        "model": _model(info.get("device_type")),
        "via_device": ctx.ident("box", box_slug) if box_slug else ctx.ident("bridge"),
    }
    if info.get("location"):
        device["suggested_area"] = info["location"]
    return device


def _face_entities(ctx: Context, owner: str, dev_slug: str) -> dict[str, Any]:
    """What a capture device shows of the faces it sees: the event, the photo, who it was."""
    topics = ctx.topics
    event_topic = topics.device(dev_slug, "event")
    last_topic = topics.device(dev_slug, "last")
    return {
        "face": _entity(
            ctx,
            "event",
            owner,
            "face",
            "Face recognised",
            state_topic=event_topic,
            event_types=PERSON_TYPES,
            icon="mdi:face-recognition",
        ),
        "snapshot": _entity(
            ctx,
            "image",
            owner,
            "snapshot",
            "Last snapshot",
            image_topic=topics.device(dev_slug, "snapshot"),
            content_type="image/jpeg",
        ),
        "last_person": _entity(
            ctx,
            "sensor",
            owner,
            "last_person",
            "Last person",
            state_topic=last_topic,
            value_template="{{ value_json.identity_name or value_json.identity_id }}",
            json_attributes_topic=last_topic,
            icon="mdi:account-clock",
        ),
    }


def _alert_entities(ctx: Context, owner: str, event_topic: str) -> dict[str, Any]:
    """Binary sensors that an event turns on and that go off by themselves (`off_delay`)."""
    return {
        "person_detected": _entity(
            ctx,
            "binary_sensor",
            owner,
            "person_detected",
            "Person detected",
            state_topic=event_topic,
            value_template="{{ 'ON' if value_json.event_type else '' }}",
            device_class="occupancy",
            off_delay=ctx.off_delay_s,
        ),
        "blacklist": _entity(
            ctx,
            "binary_sensor",
            owner,
            "blacklist",
            "Blacklist alert",
            state_topic=event_topic,
            # Only a blacklist event turns it on; other events must not switch it off early.
            value_template="{{ 'ON' if value_json.event_type == 'blacklist' else '' }}",
            device_class="problem",
            off_delay=ctx.off_delay_s,
        ),
    }


def _person_triggers(event_topic: str) -> dict[str, Any]:
    """One device trigger per person type, for automations built in HA's device page."""
    return {
        f"seen_{person_type}": {
            "platform": "device_automation",
            "automation_type": "trigger",
            "topic": event_topic,
            "type": f"{person_type}_seen",
            "subtype": person_type,
            "payload": person_type,
            "value_template": "{{ value_json.event_type }}",
        }
        for person_type in PERSON_TYPES
    }


def _door_buttons(ctx: Context, owner: str, dev_slug: str, doors: list[str]) -> dict[str, Any]:
    buttons = {}
    for door in doors:
        key = f"open_{entity_slug(door)}"
        buttons[key] = _entity(
            ctx,
            "button",
            owner,
            key,
            "Open door" if len(doors) == 1 else f"Open {door}",
            command_topic=ctx.topics.device(dev_slug, "open_door"),
            payload_press=door,
            retain=False,
            icon="mdi:door-open",
        )
    return buttons


def person_device(
    ctx: Context, person_slug: str, identity_id: str, name: str
) -> tuple[str, dict[str, Any]]:
    owner = ctx.ident("person", person_slug)
    state = ctx.topics.person(person_slug, "state")
    device = {
        "identifiers": [owner],
        "name": name or identity_id,
        "manufacturer": MANUFACTURER,
        "model": "Person",
        "serial_number": identity_id,
        "via_device": ctx.ident("bridge"),
    }
    components = {
        "last_seen": _entity(
            ctx,
            "sensor",
            owner,
            "last_seen",
            "Last seen",
            state_topic=state,
            value_template="{{ value_json.last_seen }}",
            device_class="timestamp",
            json_attributes_topic=state,
        ),
        "presence": _entity(
            ctx,
            "binary_sensor",
            owner,
            "presence",
            "Presence",
            state_topic=ctx.topics.person(person_slug, "seen"),
            device_class="presence",
            off_delay=ctx.presence_off_delay_s,
        ),
    }
    return owner, ctx.envelope(device, components)


def _model(device_type: str | None) -> str:
    return {
        "gate": "Face gate",
        "snapshot_camera": "Snapshot camera",
        "ipc_static": "IP camera",
        "ipc_dynamic": "IP camera (dynamic)",
        "access_control": "Access control panel",
    }.get(device_type or "", "Capture device")
