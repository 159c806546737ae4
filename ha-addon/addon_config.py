"""Home Assistant add-on: the add-on's options (`/data/options.json`) -> the bridge's YAML.

Three sources, later ones winning key by key:
1. `/config/sophonfog-bridge.yaml` if the user created it (the add-on's config folder):
   every setting of the bridge, e.g. door rules, which the add-on UI does not cover;
   `!env NAME` in it is kept as it is and resolved by the bridge when it starts;
2. the broker Home Assistant's MQTT integration uses (Supervisor `services/mqtt`), when
   neither the options nor that file name a broker;
3. the options set in the add-on UI. Empty strings mean "not set" there. Boxes and the
   door from the UI join the file's lists (same host / door name: the UI's wins).

Usage: python3 addon_config.py [OPTIONS_JSON] [OUTPUT_YAML] [USER_YAML] [DATA_DIR]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("addon_config")

DATA = "/data"
OPTIONS_FILE = "/data/options.json"
OUTPUT_FILE = "/data/sophonfog-bridge.yaml"
USER_FILE = "/config/sophonfog-bridge.yaml"
SUPERVISOR_MQTT = "http://supervisor/services/mqtt"
FALLBACK_BROKER = "core-mosquitto"
# The Supervisor's ingress proxy: the only peer let in to the pages without the token.
INGRESS_GATEWAY = "172.30.32.2/32"
# Tests run the add-on's start script on a free port: "host:port" instead of 0.0.0.0:9528.
LISTEN_OVERRIDE = "SOPHONFOG_ADDON_LISTEN"


class EnvRef(str):
    """`!env NAME` from the user's file, written out again for the bridge to resolve."""


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_constructor("!env", lambda loader, node: EnvRef(loader.construct_scalar(node)))
_Dumper.add_representer(EnvRef, lambda dumper, ref: dumper.represent_scalar("!env", str(ref)))


def _set(value: Any) -> Any:
    """Empty strings and lists from the UI mean the option is not set."""
    return None if value in ("", None) else value


def from_options(
    options: Mapping[str, Any], mqtt_service: Mapping[str, Any] | None, data_dir: str = DATA
) -> dict[str, Any]:
    """The config the options describe; None values are left to the other sources."""
    mqtt = dict(options.get("mqtt") or {})
    mqtt_enabled = bool(mqtt.get("enabled", True))
    broker: dict[str, Any] = {"enabled": mqtt_enabled}
    if mqtt_enabled:
        service = mqtt_service or {}
        host = _set(mqtt.get("host"))
        broker.update(
            host=host or _set(service.get("host")),
            # The UI's port goes with the UI's host; otherwise the broker's own source says.
            port=mqtt.get("port") if host else service.get("port"),
            username=_set(mqtt.get("username")) if host else _set(service.get("username")),
            password=_set(mqtt.get("password")) if host else _set(service.get("password")),
            discovery=mqtt.get("discovery"),
        )
        if not host and service.get("ssl"):
            broker["tls"] = {"insecure": False}
    config = {
        "bridge_id": _set(options.get("bridge_id")),
        "log_level": (_set(options.get("log_level")) or "info").upper(),
        "threshold": options.get("threshold"),
        "http": {
            # The container port; Home Assistant maps it to whatever host port is chosen.
            "port": 9528,
            "token": _set(options.get("token")),
            "allowed_sources": options.get("allowed_sources") or None,
            "viewers": options.get("viewers") or None,
            "ingress_gateways": [INGRESS_GATEWAY],
        },
        "spool": {"path": f"{data_dir}/spool", "max_mb": options.get("spool_max_mb")},
        "plugins": {
            "mqtt": broker,
            "snapshots": {
                "enabled": options.get("snapshots"),
                "path": f"{data_dir}/snapshots",
                "max_total_mb": options.get("snapshots_max_mb"),
            },
            "syslog": {"enabled": options.get("syslog")},
            "status": {"enabled": options.get("status_page")},
        },
    }
    listen = os.environ.get(LISTEN_OVERRIDE)
    if listen:
        host, _, port = listen.rpartition(":")
        config["http"].update(host=host, port=int(port))
    return config


BOX_KEYS = ("host", "name", "firmware", "api_port", "ws_port", "username", "password")


def boxes_from_options(options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The UI's boxes in the core's `boxes:` shape; unset keys keep the core's defaults."""
    boxes = []
    for box in options.get("boxes") or ():
        out = {k: box[k] for k in BOX_KEYS if _set(box.get(k)) is not None}
        if "devices" in box:
            out["devices"] = [d for d in box["devices"] if _set(d) is not None]
        if box.get("backfill") is not None:
            out["backfill"] = bool(box["backfill"])
        boxes.append(out)
    return boxes


def door_from_options(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The one door the UI describes, with an HTTP relay; None when it is off.

    An incomplete relay (no URL, or a preset without a host) is passed on as it is: the
    bridge's check names the missing key better than we could here.
    """
    door = options.get("door") or {}
    if not door.get("enabled"):
        return None
    backend: dict[str, Any] = {"type": "http"}
    if _set(door.get("relay_preset")):
        backend.update(preset=door["relay_preset"], host=_set(door.get("relay_host")))
    elif _set(door.get("relay_url")):
        backend["url"] = door["relay_url"]
    for key in ("username", "password"):
        if _set(door.get(f"relay_{key}")):
            backend[key] = door[f"relay_{key}"]
    return {
        "name": door.get("name"),
        "devices": list(door.get("devices") or ()),
        "pulse_s": door.get("pulse_s"),
        "allow_remote_open": bool(door.get("allow_remote_open")),
        "backend": {k: v for k, v in backend.items() if v is not None},
    }


def _joined(base: Any, extra: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """`base` with `extra` added; an entry of `extra` replaces the one with its `key`."""
    replaced = {item[key] for item in extra}
    kept = [i for i in base or () if not (isinstance(i, dict) and i.get(key) in replaced)]
    return [*kept, *extra]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, recursively; None in `over` keeps what `base` has."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge({}, value)
        else:
            out[key] = value
    return out


def build_config(
    options: Mapping[str, Any],
    user_config: Mapping[str, Any] | None = None,
    mqtt_service: Mapping[str, Any] | None = None,
    data_dir: str = DATA,
) -> dict[str, Any]:
    if _user_broker(user_config):
        mqtt_service = None
    user_config = user_config or {}
    config = merge(user_config, from_options(options, mqtt_service, data_dir))
    boxes = boxes_from_options(options)
    if boxes:  # only then: a user without boxes gets no `boxes:` key at all
        config["boxes"] = _joined(user_config.get("boxes"), boxes, "host")
    door = door_from_options(options)
    if door is not None:
        plugins = config.setdefault("plugins", {})
        relay = dict(plugins.get("door_relay") or {})
        relay["enabled"] = True
        relay["doors"] = _joined(relay.get("doors"), [door], "name")
        plugins["door_relay"] = relay
    mqtt = config.get("plugins", {}).get("mqtt", {})
    if mqtt.get("enabled", True) and not mqtt.get("host"):
        log.warning("no MQTT broker configured or offered; trying %s", FALLBACK_BROKER)
        mqtt["host"] = FALLBACK_BROKER
    return config


def _user_broker(user_config: Mapping[str, Any] | None) -> bool:
    plugins = (user_config or {}).get("plugins") or {}
    return bool((plugins.get("mqtt") or {}).get("host"))


def supervisor_mqtt() -> dict[str, Any] | None:
    """The broker Home Assistant knows, if the Supervisor will tell (services: mqtt:want)."""
    token = os.environ.get("SUPERVISOR_TOKEN")
    if not token:
        return None
    request = urllib.request.Request(SUPERVISOR_MQTT, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer).get("data") or None
    except (OSError, ValueError) as err:
        log.warning("no MQTT service from the Supervisor: %s", err)
        return None


def read_user_file(user_file: str) -> dict[str, Any]:
    if not Path(user_file).is_file():
        return {}
    user = yaml.load(Path(user_file).read_text(encoding="utf-8"), Loader=_Loader) or {}
    if not isinstance(user, dict):
        raise SystemExit(f"{user_file}: the top level must be a mapping")
    log.info("using %s as the base config", user_file)
    return user


def write_config(
    options_file: str, output_file: str, user_file: str = USER_FILE, data_dir: str = DATA
) -> dict:
    options = json.loads(Path(options_file).read_text(encoding="utf-8"))
    user = read_user_file(user_file)
    wants_service = not _set((options.get("mqtt") or {}).get("host")) and not _user_broker(user)
    service = supervisor_mqtt() if wants_service else None
    config = build_config(options, user, service, data_dir)
    target = Path(output_file)
    text = yaml.dump(config, Dumper=_Dumper, allow_unicode=True, sort_keys=False)
    target.write_text(text, "utf-8")
    os.chmod(target, 0o600)  # it may hold the MQTT password and the token
    return config


def main(argv: list[str]) -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s addon: %(message)s")
    options_file = argv[1] if len(argv) > 1 else OPTIONS_FILE
    output_file = argv[2] if len(argv) > 2 else OUTPUT_FILE
    user_file = argv[3] if len(argv) > 3 else USER_FILE
    data_dir = argv[4] if len(argv) > 4 else DATA
    write_config(options_file, output_file, user_file, data_dir)
    log.info("wrote %s", output_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
