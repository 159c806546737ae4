"""Home Assistant add-on: the add-on's options (`/data/options.json`) -> the bridge's YAML.

Three sources, later ones winning key by key:
1. `/config/sophonfog-bridge.yaml` if the user created it (the add-on's config folder):
   every setting of the bridge, e.g. door relays, which the add-on UI does not cover;
2. the broker Home Assistant's MQTT integration uses (Supervisor `services/mqtt`), when
   neither the options nor that file name a broker;
3. the options set in the add-on UI. Empty strings mean "not set" there.

Usage: python3 addon_config.py [OPTIONS_JSON] [OUTPUT_YAML]
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
    return {
        "bridge_id": _set(options.get("bridge_id")),
        "log_level": (_set(options.get("log_level")) or "info").upper(),
        "threshold": options.get("threshold"),
        "http": {
            # The container port; Home Assistant maps it to whatever host port is chosen.
            "port": 9528,
            "token": _set(options.get("token")),
            "allowed_sources": options.get("allowed_sources") or None,
        },
        "spool": {"path": f"{data_dir}/spool", "max_mb": options.get("spool_max_mb")},
        "plugins": {
            "mqtt": broker,
            "snapshots": {
                "enabled": options.get("snapshots"),
                "path": f"{data_dir}/snapshots",
            },
            "syslog": {"enabled": options.get("syslog")},
            "status": {"enabled": options.get("status_page")},
        },
    }


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
    config = merge(user_config or {}, from_options(options, mqtt_service, data_dir))
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


def write_config(options_file: str, output_file: str, user_file: str = USER_FILE) -> dict:
    options = json.loads(Path(options_file).read_text(encoding="utf-8"))
    user: dict[str, Any] = {}
    if Path(user_file).is_file():
        user = yaml.safe_load(Path(user_file).read_text(encoding="utf-8")) or {}
        log.info("using %s as the base config", user_file)
    wants_service = not _set((options.get("mqtt") or {}).get("host")) and not _user_broker(user)
    config = build_config(options, user, supervisor_mqtt() if wants_service else None)
    target = Path(output_file)
    target.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")
    os.chmod(target, 0o600)  # it may hold the MQTT password and the token
    return config


def main(argv: list[str]) -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s addon: %(message)s")
    options_file = argv[1] if len(argv) > 1 else OPTIONS_FILE
    output_file = argv[2] if len(argv) > 2 else OUTPUT_FILE
    write_config(options_file, output_file)
    log.info("wrote %s", output_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
