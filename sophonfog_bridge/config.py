"""The YAML config: defaults for every key, `!env VAR` for secrets, precise errors.

The core validates its own keys; each plugin's section is validated by the schema the
plugin returns from its `config_schema` hook, with `enabled` added by the core.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from .cv import Cidr, Host, Number, Port, Positive, Seconds, Whole

DEFAULT_FILE = "sophonfog-bridge.yaml"
# Bundled plugins that must be switched on explicitly: opening doors is never a default.
OFF_BY_DEFAULT = {"door_relay"}


class ConfigError(ValueError):
    """The config cannot be used; the message names the file, the key and the problem."""


class _Loader(yaml.SafeLoader):
    pass


def _env(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    spec = loader.construct_scalar(node)
    name, _, default = str(spec).partition(" ")
    value = os.environ.get(name, default or None)
    if value is None:
        raise ConfigError(f"!env {name}: the environment variable is not set")
    return value


_Loader.add_constructor("!env", _env)


def RoutePath(value: Any) -> str:
    text = str(value)
    if not text.startswith("/") or any(c in text for c in "<>? #"):
        raise vol.Invalid(f"not a plain URL path: {value!r}")
    return text


HTTP_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="0.0.0.0"): str,
        vol.Optional("port", default=9528): Port,
        vol.Optional("max_body_mb", default=16): Positive,
        vol.Optional("max_image_kb", default=4096): Whole(1),
        vol.Optional("token", default=None): vol.Any(None, vol.All(str, vol.Length(min=8))),
        vol.Optional("allowed_sources", default=list): [Cidr],
        vol.Optional("trusted_proxies", default=list): [Cidr],
        # Who may see the pages; unset = loopback and private networks unless a token is set.
        vol.Optional("viewers", default=None): vol.Any(None, [Cidr]),
        # Home Assistant's ingress proxy (172.30.32.2 in the add-on): in without the token.
        vol.Optional("ingress_gateways", default=list): [Cidr],
        vol.Optional("threads", default=8): Whole(1, 64),
        # The boxes' posts have threads of their own (lanes.py); unset: 2, or `threads`
        # with spool.fsync on.
        vol.Optional("box_threads", default=None): vol.Any(None, Whole(1, 64)),
        vol.Optional("max_in_flight", default=64): Whole(1),
        vol.Optional("client_timeout_s", default=10): Positive,
        vol.Optional("realtime_paths", default=list): [RoutePath],
        vol.Optional("history_paths", default=list): [RoutePath],
        vol.Optional("status_paths", default=list): [RoutePath],
    }
)

SPOOL_SCHEMA = vol.Schema(
    {
        vol.Optional("path", default="data/spool"): str,
        vol.Optional("fsync", default=False): bool,
        vol.Optional("max_mb", default=1024): Positive,
        vol.Optional("max_age_h", default=168): Positive,
        vol.Optional("segment_mb", default=64): Positive,
        vol.Optional("dedup_window_s", default=600): Seconds(),
        vol.Optional("dedup_max", default=100_000): Whole(1),
    }
)


FIRMWARES = ("auto", "v2", "v5", "v6")


def _can_split() -> bool:
    """Two processes talk over Unix socket pairs: POSIX systems only."""
    return hasattr(socket, "AF_UNIX") and hasattr(socket, "socketpair")


BOX_SCHEMA = vol.Schema(
    {
        vol.Required("host"): Host,
        vol.Optional("name"): vol.All(str, vol.Length(min=1, max=64)),
        vol.Optional("firmware", default="auto"): vol.All(
            vol.Lower, vol.In(FIRMWARES, msg=f"use one of {', '.join(FIRMWARES)}")
        ),
        vol.Optional("api_port", default=5555): Port,
        vol.Optional("ws_port", default=5679): Port,
        vol.Optional("system_port", default=8888): Port,
        vol.Optional("username", default=None): vol.Any(None, str),
        vol.Optional("password", default=None): vol.Any(None, str),
        vol.Optional("devices", default=list): [vol.All(str, vol.Length(min=1, max=128))],
        # How often the websocket client lists the box's devices again (a new one means
        # a new subscription); it also lists them on every connect.
        vol.Optional("device_refresh_s", default=300): Seconds(1, 86400),
        vol.Optional("backfill", default=True): bool,
        vol.Optional("backfill_max_h", default=24): Number(0, 24 * 31),
    }
)


def _name_boxes(boxes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every box gets a name (its host by default); two boxes may not share one."""
    seen: set[str] = set()
    for index, box in enumerate(boxes):
        box.setdefault("name", box["host"])
        if box["name"] in seen:
            raise vol.Invalid(f"two boxes are named {box['name']!r}", path=[index, "name"])
        seen.add(box["name"])
    return boxes


CONFIG_SCHEMA = vol.Schema(
    {
        vol.Optional("bridge_id", default="sophonfog"): vol.All(
            str, vol.Match(r"^[a-z0-9_-]{1,40}$", msg="use 1-40 of a-z 0-9 _ -")
        ),
        vol.Optional("threshold", default=0.0): Number(0, 1),
        vol.Optional("log_level", default="INFO"): vol.All(
            vol.Upper, vol.In(["DEBUG", "INFO", "WARNING", "ERROR"])
        ),
        vol.Optional("http", default=dict): HTTP_SCHEMA,
        vol.Optional("spool", default=dict): SPOOL_SCHEMA,
        vol.Optional("boxes", default=list): vol.All([BOX_SCHEMA], _name_boxes),
        vol.Optional("plugins", default=dict): vol.Schema({str: vol.Any(None, dict)}),
        # Plugins run in a process of their own, so their work never slows the answers
        # to the boxes; false runs them as threads of the one process (no fork needed).
        vol.Optional("plugin_process", default=_can_split()): bool,
        # Plugins that ask for it (snapshots) in a second plugin process: after a burst
        # they catch up on another core; false keeps one plugin process (~40 MB less).
        vol.Optional("second_plugin_process", default=True): bool,
    }
)


def _where(err: vol.Invalid, prefix: str = "") -> str:
    path = ".".join(str(p) for p in (prefix, *err.path) if p != "")
    message = err.error_message
    if message == "extra keys not allowed":
        message = "unknown key"
    return f"{path or '(top)'}: {message}"


def read_file(path: str | os.PathLike | None) -> tuple[dict[str, Any], str]:
    """The raw YAML mapping and where it came from (defaults if there is no file)."""
    if path is None:
        path = os.environ.get("SOPHONFOG_BRIDGE_CONFIG")
        if path is None and Path(DEFAULT_FILE).exists():
            path = DEFAULT_FILE
    if path is None:
        return {}, "(defaults)"
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_Loader)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data, str(path)


def validate_core(data: Mapping[str, Any], source: str = "(config)") -> dict[str, Any]:
    try:
        return CONFIG_SCHEMA(dict(data))
    except vol.MultipleInvalid as err:
        raise ConfigError("; ".join(f"{source}: {_where(e)}" for e in err.errors)) from None


def plugin_schema(name: str, schema: Any) -> vol.Schema:
    """The plugin's schema plus `enabled`; unknown keys are errors that name the key."""
    if schema is None:
        schema = vol.Schema({})
    if not isinstance(schema, vol.Schema):
        schema = vol.Schema(schema)
    keys = {str(k) for k in schema.schema} if isinstance(schema.schema, dict) else set()
    if "enabled" not in keys and isinstance(schema.schema, dict):
        schema = schema.extend(
            {vol.Optional("enabled", default=name not in OFF_BY_DEFAULT): bool},
            extra=vol.PREVENT_EXTRA,
        )
    return schema


def validate_plugin(name: str, schema: Any, section: Any, source: str) -> dict[str, Any]:
    try:
        return plugin_schema(name, schema)(section or {})
    except vol.MultipleInvalid as err:
        raise ConfigError(
            "; ".join(f"{source}: {_where(e, f'plugins.{name}')}" for e in err.errors)
        ) from None
