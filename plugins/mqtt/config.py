"""The `plugins.mqtt` config section: one schema, small named validators."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from sophonfog_bridge import cv

DEFAULT_BRIDGE_ID = "sophonfog"
DEFAULT_ORIGIN_URL = "https://pypi.org/project/sophonfog-bridge/"


def Topic(value: Any) -> str:
    """A topic prefix we publish under: no wildcards, no NUL, no empty levels at the ends."""
    text = str(value)
    if not text or any(c in text for c in "+#\0"):
        raise vol.Invalid(f"not a plain MQTT topic (no + # or NUL): {value!r}")
    if text.startswith("/") or text.endswith("/") or "//" in text:
        raise vol.Invalid(f"topic must not start or end with / or hold //: {value!r}")
    if len(text.encode("utf-8")) > 200:
        raise vol.Invalid("topic prefix longer than 200 bytes")
    return text


def ClientId(value: Any) -> str:
    text = str(value)
    if not 1 <= len(text) <= 128 or any(c in text for c in "+#/\0"):
        raise vol.Invalid(f"client_id must be 1-128 characters without + # / NUL: {value!r}")
    return text


def People(value: Any) -> str | list[str]:
    """`employees`, or a list of identity ids."""
    if value == "employees":
        return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v)]
    raise vol.Invalid("people must be the word `employees` or a list of identity ids")


PositiveSeconds = cv.Seconds(0.05)
WholeSeconds = cv.Whole(1, 86400)

TLS_SCHEMA = vol.Schema(
    {
        vol.Optional("ca_certs", default=None): vol.Any(None, str),
        vol.Optional("certfile", default=None): vol.Any(None, str),
        vol.Optional("keyfile", default=None): vol.Any(None, str),
        vol.Optional("insecure", default=False): bool,
    }
)

CONFIG_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="localhost"): vol.All(str, vol.Length(min=1)),
        vol.Optional("port", default=1883): cv.Port,
        vol.Optional("username", default=None): vol.Any(None, str),
        vol.Optional("password", default=None): vol.Any(None, str),
        vol.Optional("client_id", default=None): vol.Any(None, ClientId),
        vol.Optional("keepalive", default=60): cv.Whole(5, 3600),
        vol.Optional("tls", default=None): vol.Any(None, TLS_SCHEMA),
        vol.Optional("base_topic", default=None): vol.Any(None, Topic),
        vol.Optional("discovery_prefix", default="homeassistant"): Topic,
        vol.Optional("discovery", default=True): bool,
        vol.Optional("snapshot", default=True): bool,
        vol.Optional("face_crop", default=False): bool,
        vol.Optional("registered_photo", default=False): bool,
        vol.Optional("people", default=list): People,
        vol.Optional("off_delay_s", default=10): WholeSeconds,
        vol.Optional("presence_off_delay_s", default=300): WholeSeconds,
        vol.Optional("publish_timeout_s", default=10.0): PositiveSeconds,
        vol.Optional("retry_s", default=1.0): PositiveSeconds,
        vol.Optional("reconnect_min_s", default=1): cv.Whole(1),
        vol.Optional("reconnect_max_s", default=60): cv.Whole(1),
        vol.Optional("rediscovery_delay_s", default=5.0): cv.Seconds(),
        vol.Optional("state_interval_s", default=60.0): PositiveSeconds,
        vol.Optional("gather_s", default=0.05): cv.Seconds(0, 1),
        vol.Optional("origin_url", default=DEFAULT_ORIGIN_URL): vol.All(str, vol.Length(min=1)),
    },
    extra=vol.PREVENT_EXTRA,
)


def default_base_topic(bridge_id: str) -> str:
    """`sophonfog` for the default bridge; a separate tree for any other bridge_id.

    Two bridges on one broker must never share a topic, so a non-default bridge_id
    gets its own top level rather than a sub-level that could meet a device slug.
    """
    return "sophonfog" if bridge_id == DEFAULT_BRIDGE_ID else f"sophonfog_{bridge_id}"
