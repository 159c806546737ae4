"""The `plugins.door_relay` config: doors, their rules and their relay backends.

Validation is strict on purpose: a config that could open a door for the wrong person
(blacklist or strangers allowed, a score outside 0..1, a door nobody can reach) is an
error at startup, not a surprise at the gate.
"""

from __future__ import annotations

import logging
from typing import Any

import voluptuous as vol

from sophonfog_bridge import DeviceType, PersonType, cv

log = logging.getLogger(__name__)

HTTP_PRESETS = ("shelly_gen1", "shelly_gen2", "tasmota", "esphome", "home_assistant")
MQTT_PRESETS = ("tasmota", "zigbee2mqtt")
BUILTIN_BACKENDS = ("http", "mqtt", "sophon", "gpio", "command")
DEFAULT_DEVICE_TYPES = [DeviceType.GATE.value, DeviceType.ACCESS_CONTROL.value]
NEVER_OPEN = {
    PersonType.BLACKLIST.value: "blacklisted people never open a door",
    PersonType.STRANGER.value: "strangers are people the box did not recognise: "
    "allowing them opens the door for anyone",
}


def MqttTopic(value: Any) -> str:
    text = cv.NonBlank(value)
    if "+" in text or "#" in text:
        raise vol.Invalid(f"a publish topic cannot contain wildcards: {value!r}")
    return text


def Payload(value: Any) -> Any:
    if isinstance(value, (dict, list, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise vol.Invalid(f"expected a string or a mapping, got {value!r}")


Timeout = cv.Seconds(0, 30, low_included=False)

HTTP_BACKEND = vol.Schema(
    {
        vol.Required("type"): "http",
        vol.Exclusive("url", "target"): cv.HttpUrl,
        vol.Exclusive("preset", "target"): vol.In(HTTP_PRESETS),
        vol.Optional("host"): cv.HostPort,
        vol.Optional("scheme", default="http"): vol.In(["http", "https"]),
        vol.Optional("channel"): cv.Whole(0, 16),
        vol.Optional("button"): cv.NonBlank,
        vol.Optional("entity_id"): vol.All(
            str,
            vol.Match(
                r"^(button|input_button|script)\.[a-z0-9_]+$",
                msg="use a button.*, input_button.* or script.* entity",
            ),
        ),
        vol.Optional("method"): vol.All(vol.Upper, vol.In(["GET", "POST", "PUT"])),
        vol.Optional("body"): Payload,
        vol.Optional("headers", default=dict): {str: str},
        vol.Optional("username"): str,
        vol.Optional("password"): str,
        vol.Optional("auth", default="basic"): vol.In(["basic", "digest"]),
        vol.Optional("token"): vol.All(str, vol.Length(min=1)),
        vol.Optional("timeout_s", default=2.0): Timeout,
        vol.Optional("verify_tls", default=True): bool,
    }
)

MQTT_BACKEND = vol.Schema(
    {
        vol.Required("type"): "mqtt",
        vol.Exclusive("topic", "target"): MqttTopic,
        vol.Exclusive("preset", "target"): vol.In(MQTT_PRESETS),
        vol.Optional("payload", default="ON"): Payload,
        vol.Optional("device"): MqttTopic,
        vol.Optional("channel", default=1): cv.Whole(1, 16),
        vol.Optional("base_topic", default="zigbee2mqtt"): MqttTopic,
        # 0: sent now or never. A QoS 1 command whose PUBACK timed out is re-sent by the
        # client after a reconnect, and would open the door late, after "stays shut".
        vol.Optional("qos", default=0): vol.In([0, 1, 2]),
    }
)

# Which firmware documents `PUT /SophonFogSys/api/EventAction` (protocol annex §7): V2 and
# V5R7 do; V6R1 only on a legacy section-4 page; V6R2 removed it.
EVENT_ACTION_FIRMWARE = ("v2", "v5", "v6r1")


def EventActionFirmware(value: Any) -> str:
    text = str(value).strip().lower()
    if text in ("v6", "v6r2"):
        raise vol.Invalid(
            f"firmware {value}: V6R2 documents no on-demand door call (EventAction was "
            "removed); let the box pulse its own relay (the camera's net_relay), or drive "
            "the relay directly with an http, mqtt or gpio backend"
        )
    if text not in EVENT_ACTION_FIRMWARE:
        raise vol.Invalid(f"firmware {value}: use one of {', '.join(EVENT_ACTION_FIRMWARE)}")
    return text


SOPHON_BACKEND = vol.Schema(
    {
        vol.Required("type"): "sophon",
        vol.Optional("firmware", default="v2"): EventActionFirmware,
        vol.Required("host"): cv.HostPort,
        vol.Required("action_ip"): cv.IpAddress,
        vol.Optional("action_port", default="5555"): vol.All(vol.Coerce(str), vol.Match(r"^\d+$")),
        vol.Optional("logic_port", default=0): cv.Whole(0),
        vol.Optional("timeout_s", default=2.0): Timeout,
    }
)

GPIO_BACKEND = vol.Schema(
    {
        vol.Required("type"): "gpio",
        vol.Required("pin"): vol.Any(vol.All(int, vol.Range(min=0)), cv.NonBlank),
        vol.Optional("active_low", default=False): bool,
        vol.Optional("pin_factory"): vol.In(["mock"]),
    }
)

COMMAND_BACKEND = vol.Schema(
    {
        vol.Required("type"): "command",
        vol.Required("argv"): vol.All([cv.NonBlank], vol.Length(min=1)),
        vol.Optional("timeout_s", default=5.0): Timeout,
    }
)

BUILTIN_SCHEMAS = {
    "http": HTTP_BACKEND,
    "mqtt": MQTT_BACKEND,
    "sophon": SOPHON_BACKEND,
    "gpio": GPIO_BACKEND,
    "command": COMMAND_BACKEND,
}


def _http_target(cfg: dict[str, Any]) -> dict[str, Any]:
    preset = cfg.get("preset")
    if not preset and not cfg.get("url"):
        raise vol.Invalid("give either `url` or `preset` (with `host`)")
    if preset and not cfg.get("host"):
        raise vol.Invalid(f"preset {preset} needs `host` (e.g. 10.0.0.5 or 10.0.0.5:8080)")
    if preset == "esphome" and not cfg.get("button"):
        raise vol.Invalid("preset esphome needs `button` (the button's id on the device)")
    if preset == "home_assistant" and not (cfg.get("entity_id") and cfg.get("token")):
        raise vol.Invalid("preset home_assistant needs `entity_id` and `token`")
    if cfg.get("auth") == "digest" and not cfg.get("password"):
        raise vol.Invalid("digest auth needs `password`")
    return cfg


def _mqtt_target(cfg: dict[str, Any]) -> dict[str, Any]:
    if not cfg.get("preset") and not cfg.get("topic"):
        raise vol.Invalid("give either `topic` (with `payload`) or `preset` (with `device`)")
    if cfg.get("preset") and not cfg.get("device"):
        raise vol.Invalid(f"preset {cfg['preset']} needs `device` (its topic or friendly name)")
    return cfg


CROSS_CHECKS = {"http": _http_target, "mqtt": _mqtt_target}


def Backend(value: Any) -> dict[str, Any]:
    """A built-in backend, checked strictly; any other type is a user backend.

    User backends come from other plugins' `door_backends` hook, which is only known at
    startup; their options are checked there (an unknown type fails the startup loudly).
    """
    if not isinstance(value, dict):
        raise vol.Invalid("expected a mapping with a `type`")
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise vol.Invalid(f"`type` is required: one of {', '.join(BUILTIN_BACKENDS)}")
    schema = BUILTIN_SCHEMAS.get(kind)
    if schema is None:
        if not kind.replace("_", "").isalnum():
            raise vol.Invalid(f"not a backend type: {kind!r}")
        return dict(value)
    cfg = schema(value)
    check = CROSS_CHECKS.get(kind)
    return check(cfg) if check else cfg


DOOR = vol.Schema(
    {
        vol.Required("name"): vol.All(
            str, vol.Match(r"^[a-z0-9][a-z0-9_-]{0,39}$", msg="use 1-40 of a-z 0-9 _ -")
        ),
        vol.Required("devices"): vol.All([cv.NonBlank], vol.Length(min=1)),
        vol.Optional("person_types", default=[PersonType.EMPLOYEE.value]): vol.All(
            [cv.PersonTypeName], vol.Length(min=1)
        ),
        vol.Optional("min_score", default=0.8): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=1, msg="min_score is on the 0..1 scale")
        ),
        vol.Optional("groups", default=list): [cv.NonBlank],
        vol.Optional("identities", default=list): [cv.NonBlank],
        vol.Optional("deny_identities", default=list): [cv.NonBlank],
        vol.Optional("device_types", default=lambda: list(DEFAULT_DEVICE_TYPES)): vol.All(
            [cv.DeviceTypeName], vol.Length(min=1)
        ),
        vol.Optional("max_age_s", default=10.0): cv.Seconds(0, 300, low_included=False),
        vol.Optional("clock_skew_s", default=2.0): cv.Seconds(0, 60),
        vol.Optional("cooldown_s", default=3.0): cv.Seconds(0, 3600),
        vol.Optional("pulse_s", default=2.0): cv.Seconds(0, 60, low_included=False),
        vol.Optional("allow_remote_open", default=False): bool,
        # A remote press that waited longer for a busy relay is dropped, never opens late.
        vol.Optional("remote_max_age_s", default=3.0): cv.Seconds(0, 60, low_included=False),
        vol.Required("backend"): Backend,
    }
)


def _check_door(door: dict[str, Any], index: int) -> None:
    for person_type in door["person_types"]:
        if person_type in NEVER_OPEN:
            raise vol.Invalid(
                f"{person_type} in person_types: {NEVER_OPEN[person_type]}",
                path=["doors", index, "person_types"],
            )
    both = set(door["identities"]) & set(door["deny_identities"])
    if both:
        raise vol.Invalid(
            f"identities both allowed and denied: {', '.join(sorted(both))}",
            path=["doors", index, "identities"],
        )


def _check_plugin(config: dict[str, Any]) -> dict[str, Any]:
    doors = config["doors"]
    if config["enabled"] and not doors:
        raise vol.Invalid("door_relay is enabled but has no doors", path=["doors"])
    seen: set[str] = set()
    for index, door in enumerate(doors):
        if door["name"] in seen:
            raise vol.Invalid(f"duplicate door name {door['name']!r}", path=["doors", index])
        seen.add(door["name"])
        _check_door(door, index)
    return config


CONFIG_SCHEMA = vol.Schema(
    vol.All(
        vol.Schema(
            {
                vol.Optional("enabled", default=False): bool,
                vol.Optional("doors", default=list): [DOOR],
                vol.Optional("journal_keep_days", default=30.0): cv.Seconds(1, 3650),
                vol.Optional("announce_every_s", default=0.1): cv.Seconds(0, 5),
            }
        ),
        _check_plugin,
    )
)


def warnings_for(door: dict[str, Any]) -> list[str]:
    """Settings that are allowed but weaken the door; logged loudly at startup."""
    out = []
    if door["min_score"] < 0.6:
        out.append(f"min_score {door['min_score']} is low: look-alikes may open the door")
    weak = [t for t in door["device_types"] if t not in (*DEFAULT_DEVICE_TYPES, "unknown")]
    if weak:
        out.append(f"device_types also allows {', '.join(weak)}: not an access point")
    if "unknown" in door["device_types"]:
        # Needed for a V6 gate (its events carry no type), and then fine: but it must
        # be a choice the user sees, not a surprise.
        out.append(
            "device_types allows unknown: every mapped device whose box does not say its "
            "type (any V6 device, gate or camera) opens this door; map only gates in devices"
        )
    if door["max_age_s"] > 30:
        out.append(f"max_age_s {door['max_age_s']} s: a late event may open for someone gone")
    if PersonType.VISITOR.value in door["person_types"]:
        out.append("visitors open this door")
    return out
