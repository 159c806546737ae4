"""The mqtt plugin against a real Mosquitto and a real bridge process.

Discovery payloads are checked against an allow-list of the keys Home Assistant's MQTT
platform schemas accept (homeassistant/components/mqtt/{schemas,config,sensor,
binary_sensor,event,image,button,device_trigger}.py and the device-based discovery
schema), plus `default_entity_id` (HA 2025.10+).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from sophonfog_bridge import samples

from .conftest import wait_for
from .mqtt_tap import Tap

EP1 = "AKOPKKKKK__192.168.1.101"
EP2 = "AKOPKKKKK__192.168.1.102"
PERSON_TYPES = ["employee", "visitor", "blacklist", "stranger", "vip"]
OTHERS_OFF = {name: {"enabled": False} for name in ("door_relay", "snapshots", "syslog")}
RELAY_TOPIC = "relay/front/set"

ENTITY_COMMON = {
    "platform", "name", "unique_id", "default_entity_id", "object_id", "icon",
    "entity_category", "entity_picture", "enabled_by_default", "json_attributes_topic",
    "json_attributes_template", "availability", "availability_mode", "availability_template",
    "availability_topic", "payload_available", "payload_not_available", "device", "origin",
    "qos", "encoding",
}  # fmt: skip
PLATFORM_KEYS = {
    "sensor": {
        "state_topic", "value_template", "device_class", "unit_of_measurement", "state_class",
        "expire_after", "force_update", "last_reset_value_template",
        "suggested_display_precision", "options",
    },
    "binary_sensor": {
        "state_topic", "value_template", "device_class", "expire_after", "force_update",
        "off_delay", "payload_on", "payload_off",
    },
    "event": {"state_topic", "value_template", "device_class", "event_types"},
    "image": {"content_type", "image_topic", "image_encoding", "url_topic", "url_template"},
    "button": {"command_topic", "command_template", "device_class", "payload_press", "retain"},
}  # fmt: skip
TRIGGER_KEYS = {
    "platform", "automation_type", "topic", "type", "subtype", "payload", "value_template",
    "qos", "encoding", "device",
}  # fmt: skip
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "event": {"state_topic", "event_types"},
    "image": {"image_topic"},
    "button": {"command_topic"},
    "device_automation": {"automation_type", "topic", "type", "subtype"},
}
DEVICE_DISCOVERY_TOP = {
    "dev", "o", "cmps", "availability", "availability_mode", "availability_template",
    "availability_topic", "payload_available", "payload_not_available", "state_topic",
    "command_topic", "qos", "encoding",
}  # fmt: skip
DEVICE_KEYS = {
    "identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version",
    "serial_number", "sw_version", "via_device", "suggested_area", "configuration_url",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
DEVICE_CLASSES = {
    "binary_sensor": {"connectivity", "occupancy", "problem", "presence"},
    "sensor": {"temperature", "data_size", "timestamp", "duration"},
}
ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
TOPIC_SAFE = re.compile(r"^[^+#\0]+$")


def mqtt_config(broker, bridge_id: str = "sophonfog", **mqtt) -> dict:
    return {
        "bridge_id": bridge_id,
        "plugins": {
            **OTHERS_OFF,
            "mqtt": {"host": broker.host, "port": broker.port, "rediscovery_delay_s": 0.2, **mqtt},
        },
    }


def with_remote_door(config: dict, **door) -> dict:
    """The real door plugin: one remote-openable door at EP1, its relay an MQTT command
    published through the mqtt plugin's own connection."""
    relay = {"type": "mqtt", "topic": RELAY_TOPIC, "payload": "pulse"}
    front = {"name": "front", "devices": [EP1], "allow_remote_open": True, "backend": relay}
    config["plugins"]["door_relay"] = {"enabled": True, "doors": [{**front, **door}]}
    return config


def post_event(bridge, person_type: str, seed: int, shape: str = "v2r1", **kw) -> bytes:
    scene = samples.jpeg(160, 120, seed=seed)
    payload = samples.event_payload(
        shape,
        person_type=person_type,
        scene=scene,
        timestamp_ms=1_700_000_000_000 + seed * 1000,
        **kw,
    )
    path = "/EventServer/api/SophonFogHistoryEvent" if shape == "history" else "/RealTimeEvent"
    response = bridge.post(path, payload)
    assert response.ok, response.text
    return scene


def configs(tap: Tap, prefix: str = "homeassistant") -> dict[str, dict]:
    """The latest discovery config per topic."""
    found = {}
    for message in tap.matching(lambda m: m.topic.startswith(prefix + "/device/")):
        found[message.topic] = json.loads(message.payload) if message.payload else None
    return found


def check_config(topic: str, config: dict) -> list[str]:
    """Every problem Home Assistant's schemas would have with one device discovery config."""
    problems = []
    if not re.fullmatch(r"homeassistant/device/[a-zA-Z0-9_-]+/config", topic):
        problems.append(f"{topic}: bad discovery topic")
    problems += [f"{topic}: top-level {k}" for k in set(config) - DEVICE_DISCOVERY_TOP]
    problems += [f"{topic}: dev.{k}" for k in set(config["dev"]) - DEVICE_KEYS]
    problems += [f"{topic}: o.{k}" for k in set(config["o"]) - ORIGIN_KEYS]
    if not config["dev"].get("identifiers") or not config["o"].get("name"):
        problems.append(f"{topic}: dev.identifiers and o.name are required")
    for key, cmp in config["cmps"].items():
        platform = cmp.get("platform")
        where = f"{topic} cmps.{key} ({platform})"
        if platform == "device_automation":
            allowed = TRIGGER_KEYS
        elif platform in PLATFORM_KEYS:
            allowed = ENTITY_COMMON | PLATFORM_KEYS[platform]
            entity_id = cmp.get("default_entity_id", "")
            if not ENTITY_ID.match(entity_id) or not entity_id.startswith(platform + "."):
                problems.append(f"{where}: bad default_entity_id {entity_id!r}")
            if not cmp.get("unique_id"):
                problems.append(f"{where}: no unique_id")
            if cmp.get("entity_category") not in (None, "config", "diagnostic"):
                problems.append(f"{where}: bad entity_category")
            if "device_class" in cmp and cmp["device_class"] not in DEVICE_CLASSES[platform]:
                problems.append(f"{where}: unexpected device_class {cmp['device_class']}")
        else:
            problems.append(f"{where}: unknown platform")
            continue
        problems += [f"{where}: key {k} not in HA schema" for k in set(cmp) - allowed]
        problems += [f"{where}: missing {k}" for k in REQUIRED[platform] - set(cmp)]
        for name, value in cmp.items():
            if name.endswith("topic") and not TOPIC_SAFE.match(value):
                problems.append(f"{where}: {name} {value!r} is not a plain topic")
    return problems


def referenced_topics(config: dict) -> set[str]:
    """Topics HA subscribes to for this device (command topics are HA's to publish)."""
    topics = {config["availability_topic"]}
    for cmp in config["cmps"].values():
        topics |= {v for k, v in cmp.items() if k.endswith("topic") and k != "command_topic"}
    return topics


def components(found: dict[str, dict], platform: str) -> list[dict]:
    return [c for cfg in found.values() for c in cfg["cmps"].values() if c["platform"] == platform]


def test_discovery_topics_images_and_doors(mosquitto, bridge_factory, tmp_path: Path):
    tap = Tap(mosquitto.host, mosquitto.port)
    # A stranger never gets per-person entities, even when listed.
    config = with_remote_door(mqtt_config(mosquitto, people=["10001", "s-123"]))
    bridge = bridge_factory(config)
    wait_for(
        lambda: [m for m in tap.on("sophonfog/status") if m.text == "online"], 10, what="online"
    )

    assert bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", 2)).ok
    post_event(bridge, "employee", seed=99, shape="history", identity_id="old1", ep_id=EP1)
    scenes = [
        post_event(
            bridge, kind, seed=10 + i, identity_id="s-123" if kind == "stranger" else "10001"
        )
        for i, kind in enumerate(PERSON_TYPES)
    ]
    base = "sophonfog/akopkkkkk__192-168-1-101-" + _hash(EP1)
    wait_for(lambda: len(tap.on(base + "/event")) == 5, 15, what="five events on MQTT")
    wait_for(lambda: tap.on(base + "/history"), 5, what="the history event")
    wait_for(
        lambda: any(json.loads(m.payload)["events"] >= 5 for m in tap.on("sophonfog/bridge/state")),
        10,
        what="bridge state counting the events",
    )

    # Realtime events: right event_type, in order, not retained, small, no images.
    events = [json.loads(m.payload) for m in tap.on(base + "/event")]
    assert [e["event_type"] for e in events] == PERSON_TYPES
    assert all(not m.retain and len(m.payload) < 4096 for m in tap.on(base + "/event"))
    assert events[0]["identity_name"] == "小明" and events[0]["device"] == EP1
    assert events[0]["snapshot"] is True and events[0]["box"] == "AKOPKKKKK"
    # History went to its own topic and never to the HA event topic.
    history = [json.loads(m.payload) for m in tap.on(base + "/history")]
    assert [h["identity_id"] for h in history] == ["old1"]
    assert "old1" not in {e["identity_id"] for e in events}
    # The image topic carries the exact JPEG bytes of the last scene photo.
    assert tap.on(base + "/snapshot")[-1].payload == scenes[-1]
    assert [m.payload for m in tap.on(base + "/snapshot")] == scenes
    last = json.loads(tap.on(base + "/last")[-1].payload)
    assert last["event_type"] == "vip"

    found = configs(tap)
    problems = [p for topic, cfg in found.items() for p in check_config(topic, cfg)]
    assert problems == []
    # Bridge, box, both capture devices (from the heartbeat) and the opted-in person.
    ids = {cfg["dev"]["identifiers"][0] for cfg in found.values()}
    assert ids == {
        "sophonfog_sophonfog_bridge",
        "sophonfog_sophonfog_box_akopkkkkk-" + _hash("AKOPKKKKK"),
        "sophonfog_sophonfog_dev_akopkkkkk__192-168-1-101-" + _hash(EP1),
        "sophonfog_sophonfog_dev_akopkkkkk__192-168-1-102-" + _hash(EP2),
        "sophonfog_sophonfog_person_10001",
    }
    unique_ids = [c["unique_id"] for c in components(found, "sensor")] + [
        c["unique_id"] for p in ("binary_sensor", "event", "image", "button")
        for c in components(found, p)
    ]  # fmt: skip
    assert len(unique_ids) == len(set(unique_ids))
    assert all(u.startswith("sophonfog_sophonfog_") for u in unique_ids)
    device1 = found[f"homeassistant/device/sophonfog_sophonfog_dev_{base.split('/')[1]}/config"]
    assert device1["dev"]["via_device"].startswith("sophonfog_sophonfog_box_")
    assert device1["dev"]["name"] == "Gate 1"
    event_entity = device1["cmps"]["face"]
    assert event_entity["event_types"] == PERSON_TYPES
    triggers = [c for c in device1["cmps"].values() if c["platform"] == "device_automation"]
    assert sorted(t["subtype"] for t in triggers) == sorted(PERSON_TYPES)
    # "Open door" only where the door plugin offers a remote door.
    buttons = [c for c in device1["cmps"].values() if c["platform"] == "button"]
    assert [b["name"] for b in buttons] == ["Open door"]
    slug2 = "akopkkkkk__192-168-1-102-" + _hash(EP2)
    device2 = found[f"homeassistant/device/sophonfog_sophonfog_dev_{slug2}/config"]
    assert not [c for c in device2["cmps"].values() if c["platform"] == "button"]

    # The button's command opens the door through the door plugin's hook.
    tap.publish(buttons[0]["command_topic"], buttons[0]["payload_press"])
    [pulse] = wait_for(lambda: tap.on(RELAY_TOPIC), 10, what="the door plugin's relay")
    assert pulse.text == "pulse" and not pulse.retain
    access = wait_for(lambda: tap.on("sophonfog/door/front/access"), 10, what="the decision")
    opened = json.loads(access[0].payload)
    assert (opened["decision"], opened["source"]) == ("open", "remote") and not access[0].retain
    # The events at the gate were decided too (stale: their timestamps are old).
    decided = [json.loads(m.payload) for m in tap.on(base + "/access")]
    assert decided and {d["rule"] for d in decided} <= {"stale", "person_type", "blacklist"}

    # Every topic Home Assistant would subscribe to has received a message (device 2 saw
    # no event yet, so its event-fed topics are checked on device 1 only).
    fed = {t for cfg in found.values() if cfg is not device2 for t in referenced_topics(cfg)}
    assert [t for t in sorted(fed) if not tap.on(t)] == []
    assert tap.on("sophonfog/person/10001/seen")
    person = json.loads(tap.on("sophonfog/person/10001/state")[-1].payload)
    assert person["device"] == EP1 and person["device_name"] == "Gate 1"
    health = bridge.health()["plugins"]["mqtt"]
    assert health["connected"] is True and health["broker"] == f"127.0.0.1:{mosquitto.port}"
    assert not [m for m in tap.messages if m.topic.startswith("homeassistant/") and not m.payload]
    tap.close()


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:8]


def test_bridge_runs_without_a_broker(bridge_factory, tmp_path: Path):
    from .conftest import free_port

    port = free_port()  # nothing listens here
    bridge = bridge_factory(
        {"plugins": {**OTHERS_OFF, "mqtt": {"host": "127.0.0.1", "port": port}}}
    )
    post_event(bridge, "employee", seed=1)
    health = wait_for(
        lambda: (h := bridge.health()["plugins"]["mqtt"]).get("state") == "retrying" and h,
        10,
        what="mqtt retrying",
    )
    assert health["connected"] is False and health["backlog"] >= 1
    assert requests.get(bridge.url + "/healthz", timeout=5).ok


def test_box_attributes_stay_far_below_home_assistants_limit():
    from sophonfog_bridge.plugins.mqtt.payloads import box_json

    from sophonfog_bridge.samples import status_payload
    from sophonfog_bridge.wire import parse_status

    raw = status_payload(devices=256)
    for n, sub in enumerate(raw["sub_devices"]):
        sub["ep_id"] = f"{'X' * 200}__10.0.{n // 250}.{n % 250}"
    status = parse_status(raw)
    online = json.loads(box_json(status))["devices_online"]
    assert len(json.dumps({"sub_devices": online})) < 10_000
    assert 0 < len(online) < 256
    assert all(online.values())


def test_a_device_named_after_its_first_event_is_announced_again(mosquitto, bridge_factory):
    """The plugin skips making a device's discovery config again while nothing it is made
    of changed: a heartbeat that names the device afterwards must still reach HA."""
    tap = Tap(mosquitto.host, mosquitto.port)
    bridge = bridge_factory(mqtt_config(mosquitto))
    dev_slug = "akopkkkkk__192-168-1-101-" + _hash(EP1)
    topic = f"homeassistant/device/sophonfog_sophonfog_dev_{dev_slug}/config"
    post_event(bridge, "visitor", seed=1)
    wait_for(lambda: tap.on(topic), 10, what="the device's first config")
    assert json.loads(tap.on(topic)[-1].payload)["dev"]["name"] != "Gate 1"

    assert bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", 2)).ok
    named = wait_for(
        lambda: [m for m in tap.on(topic) if json.loads(m.payload)["dev"]["name"] == "Gate 1"],
        10,
        what="the config with the heartbeat's name",
    )
    # Events after it, which carry no name, keep it.
    post_event(bridge, "visitor", seed=2)
    wait_for(lambda: len(tap.on(f"sophonfog/{dev_slug}/event")) == 2, 10, what="event two")
    assert json.loads(tap.on(topic)[-1].payload)["dev"]["name"] == "Gate 1"
    assert len(tap.on(topic)) == len(named) + 1
    tap.close()


def test_gather_s_is_a_short_wait_and_zero_turns_it_off():
    import pytest
    import voluptuous as vol
    from sophonfog_bridge.plugins.mqtt.config import CONFIG_SCHEMA

    assert CONFIG_SCHEMA({})["gather_s"] == 0.05
    assert CONFIG_SCHEMA({"gather_s": 0})["gather_s"] == 0
    with pytest.raises(vol.Invalid, match="gather_s"):
        CONFIG_SCHEMA({"gather_s": 5})
