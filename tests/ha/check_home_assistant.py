"""End-to-end check of the mqtt plugin's discovery against a REAL Home Assistant core.

Not part of pytest (HA is several hundred MB and takes ~10 s to start): `scripts/ha-check`
builds the HA venv and runs `python -m tests.ha.check_home_assistant --hass <venv>/bin/hass`.

A real Mosquitto, a real `hass -c DIR --skip-pip` (MQTT config entry + `mqtt_statestream`
publishing every state and attribute back to the broker), a real bridge process with the mqtt
and door_relay plugins (remote opening on, relay = a local HTTP server). The bridge's
discovery configs say which HA devices and entities should exist; HA's own registries
(flushed to `.storage` on a clean stop), its statestream messages and its log say whether
they do. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from sophonfog_bridge import samples
from tests.conftest import BridgeProcess, Mosquitto, free_port, port_open, wait_for
from tests.door_relay_helpers import RelayServer
from tests.mqtt_tap import Tap

EP1 = "AKOPKKKKK__192.168.1.101"
PERSON_TYPES = ["employee", "visitor", "blacklist", "stranger", "vip"]
STATE = "hastate"  # mqtt_statestream's base topic
# HA log lines that mean a discovery config (or the MQTT setup) was not accepted.
LOG_PROBLEMS = re.compile(
    r"Invalid config for|Error parsing|Unable to parse|not a valid|extra keys not allowed"
    r"|(ERROR|WARNING) \([^)]*\) \[homeassistant\.components\.mqtt"
)


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[bool, str]] = []

    def check(self, ok: bool, what: str) -> bool:
        self.results.append((bool(ok), what))
        print(("PASS " if ok else "FAIL ") + what, flush=True)
        return bool(ok)

    @property
    def failed(self) -> list[str]:
        return [what for ok, what in self.results if not ok]


def write_ha_config(config_dir: Path, broker_port: int, http_port: int) -> None:
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(
        "homeassistant:\n"
        "  name: sophonfog-ha-check\n"
        "  latitude: 0\n  longitude: 0\n  elevation: 0\n"
        "  unit_system: metric\n  time_zone: UTC\n  country: DE\n  currency: EUR\n"
        "http:\n"
        "  server_host: 127.0.0.1\n"
        f"  server_port: {http_port}\n"
        "logger:\n"
        "  default: warning\n"
        "  logs:\n"
        "    homeassistant.components.mqtt.discovery: debug\n"
        # HA itself presses a button named in an MQTT message: the "Open door" path
        # HA -> command_topic -> bridge -> door relay, with no token for the REST API.
        "automation:\n"
        "  - alias: press from the check\n"
        "    triggers: [{trigger: mqtt, topic: sophonfog_check/press}]\n"
        "    actions: [{action: button.press, target: {entity_id: '{{ trigger.payload }}'}}]\n"
        "mqtt_statestream:\n"
        f"  base_topic: {STATE}\n"
        "  publish_attributes: true\n"
    )
    now = "2025-01-01T00:00:00+00:00"
    entry = {
        "created_at": now,
        "modified_at": now,
        "data": {"broker": "127.0.0.1", "port": broker_port},
        "options": {"discovery": True, "discovery_prefix": "homeassistant"},
        "discovery_keys": {},
        "disabled_by": None,
        "domain": "mqtt",
        "entry_id": uuid.uuid4().hex,
        "version": 1,
        "minor_version": 2,
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "subentries": [],
        "title": "127.0.0.1",
        "unique_id": None,
    }
    storage = {
        "version": 1,
        "minor_version": 5,
        "key": "core.config_entries",
        "data": {"entries": [entry]},
    }
    (config_dir / ".storage" / "core.config_entries").write_text(json.dumps(storage))


def read_storage(config_dir: Path, key: str) -> dict:
    path = config_dir / ".storage" / key
    return json.loads(path.read_text())["data"] if path.exists() else {}


def stop(proc: subprocess.Popen | None, timeout: float = 60) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def discovery_configs(tap: Tap) -> list[dict]:
    messages = tap.matching(lambda m: m.topic.startswith("homeassistant/device/") and m.payload)
    return list({m.topic: json.loads(m.payload) for m in messages}.values())


def expected_components(tap: Tap) -> dict[str, dict]:
    """unique_id -> component (+ `_device` identifier) from the retained discovery configs."""
    found: dict[str, dict] = {}
    for config in discovery_configs(tap):
        for cmp in config["cmps"].values():
            if cmp["platform"] != "device_automation":
                found[cmp["unique_id"]] = {**cmp, "_device": config["dev"]["identifiers"][0]}
    return found


def dump(tap: Tap, path: Path) -> None:
    with path.open("w") as out:
        for m in tap.messages:
            text = (
                m.payload[:300].decode(errors="replace")
                if b"JFIF" not in m.payload[:16]
                else "<jpeg>"
            )
            out.write(f"{m.topic} {'R ' if m.retain else ''}{text}\n")


def ha_entity_ids(tap: Tap) -> set[str]:
    """Entity ids HA has published a state or attribute of on statestream."""
    topics = [m.topic for m in tap.matching(lambda m: m.topic.startswith(STATE + "/"))]
    return {".".join(topic.split("/")[1:3]) for topic in topics}


def state_of(tap: Tap, entity_id: str, attribute: str = "state") -> str | None:
    messages = tap.on(f"{STATE}/{entity_id.replace('.', '/')}/{attribute}")
    return messages[-1].text if messages else None


def run(hass: str, keep: bool) -> int:
    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="sophonfog-ha-check-"))
    config_dir = work / "ha"
    broker = Mosquitto(work).start()
    relay = RelayServer()
    hass_proc: subprocess.Popen | None = None
    bridge: BridgeProcess | None = None
    started = time.monotonic()
    print(f"work dir {work}", flush=True)
    tap: Tap | None = None
    try:
        tap = Tap(broker.host, broker.port, ("homeassistant/#", f"{STATE}/#", "sophonfog/#"))
        http_port = free_port()
        write_ha_config(config_dir, broker.port, http_port)
        hass_log = open(work / "hass.out", "wb")  # noqa: SIM115 - closed with the process
        hass_proc = subprocess.Popen(
            [hass, "-c", str(config_dir), "--skip-pip"], stdout=hass_log, stderr=subprocess.STDOUT
        )
        # HA says `online` on `homeassistant/status` once MQTT is set up and HA has started.
        wait_for(
            lambda: (
                hass_proc.poll() is None
                and any(m.text == "online" for m in tap.on("homeassistant/status"))
                and port_open(http_port)
            ),
            180,
            interval=0.2,
            what="Home Assistant to start (see hass.out / home-assistant.log)",
        )
        checks.check(True, f"Home Assistant started in {time.monotonic() - started:.1f} s")
        version = requests.get(f"http://127.0.0.1:{http_port}/manifest.json", timeout=5).ok
        checks.check(version, "HA frontend answers on 127.0.0.1")

        config = {
            "plugins": {
                "mqtt": {"host": broker.host, "port": broker.port, "off_delay_s": 60},
                "door_relay": {
                    "enabled": True,
                    "doors": [
                        {
                            "name": "front",
                            "devices": [EP1],
                            "allow_remote_open": True,
                            "cooldown_s": 0,
                            "backend": {
                                "type": "http",
                                "preset": "shelly_gen1",
                                "host": relay.host,
                            },
                        }
                    ],
                },
                "snapshots": {"enabled": False},
                "syslog": {"enabled": False},
            }
        }
        (work / "bridge").mkdir()
        bridge = BridgeProcess(work / "bridge", config, {}).start()
        assert bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", 2)).ok
        for i, kind in enumerate(PERSON_TYPES[:3]):
            payload = samples.event_payload(
                person_type=kind, scene=samples.jpeg(320, 240, seed=10 + i), ep_id=EP1
            )
            assert bridge.post("/RealTimeEvent", payload).ok

        wait_for(lambda: expected_components(tap), 20, what="discovery configs from the bridge")
        wait_for(bridge.drained, 20, what="the bridge to publish every event")
        expected = expected_components(tap)
        # Entities HA created show up on statestream; give it until the count is stable.

        def entity_ids() -> set[str]:
            return ha_entity_ids(tap)

        wait_for(lambda: len(entity_ids()) >= len(expected), 30, what="HA entities on statestream")
        # Momentary events are not retained: HA sees only those sent after it subscribed,
        # which is when the retained `online` has made every entity available.
        wait_for(
            lambda: all(state_of(tap, e) not in (None, "unavailable") for e in entity_ids()),
            30,
            what="every HA entity to become available",
        )

        # The event entity: find it by its event_types attribute, then post one more event.
        event_ids = [
            e for e in entity_ids() if e.startswith("event.") and state_of(tap, e, "event_types")
        ]
        checks.check(len(event_ids) == 2, f"two event entities (both gates): {event_ids}")
        gate1 = [e for e in event_ids if "gate_1" in e or "101" in e]
        face = gate1[0] if gate1 else (event_ids[0] if event_ids else "event.none")
        types = json.loads(state_of(tap, face, "event_types") or "[]")
        checks.check(types == PERSON_TYPES, f"{face} event_types = {types}")
        before = state_of(tap, face)
        assert bridge.post(
            "/RealTimeEvent",
            samples.event_payload(person_type="vip", ep_id=EP1, scene=samples.jpeg(seed=42)),
        ).ok
        changed = wait_for(
            lambda: (
                state_of(tap, face) != before
                and state_of(tap, face, "event_type") == '"vip"'
                and state_of(tap, face)
            ),
            15,
            what="the event entity to change",
        )
        checks.check(bool(changed), f"{face} changed on a vip event: {before} -> {changed}")

        button_id = next(e for e in entity_ids() if e.startswith("button."))
        pulses = len(relay.seen())
        tap.publish("sophonfog_check/press", button_id)
        wait_for(
            lambda: len(relay.seen()) > pulses, 10, what="HA's button press to pulse the relay"
        )
        checks.check(True, f"HA pressing {button_id} pulsed the door relay via the bridge")

        states = {e: state_of(tap, e) for e in sorted(entity_ids())}
        for entity_id, value in states.items():
            print(f"     {entity_id} = {value}")
        checks.check(
            all(v not in (None, "unavailable") for v in states.values()),
            "no HA entity is unavailable",
        )
    finally:
        if tap is not None:
            dump(tap, work / "mqtt.log")
        if bridge is not None:
            bridge.stop()
        # A clean stop makes HA flush its registries to .storage.
        stop(hass_proc)
        relay.close()
        broker.stop()

    entities = read_storage(config_dir, "core.entity_registry").get("entities", [])
    devices = read_storage(config_dir, "core.device_registry").get("devices", [])
    by_uid = {e["unique_id"]: e for e in entities if e["platform"] == "mqtt"}
    dev_by_ident = {ident[1]: d for d in devices for ident in d["identifiers"]}
    dev_by_id = {d["id"]: d for d in devices}
    missing = sorted(set(expected) - set(by_uid))
    checks.check(
        not missing and len(expected) > 0,
        f"HA entity registry has all {len(expected)} unique_ids the bridge sent"
        + (f"; missing {missing}" if missing else ""),
    )
    wrong_platform = [u for u, c in expected.items() if u in by_uid and not
                      by_uid[u]["entity_id"].startswith(c["platform"] + ".")]  # fmt: skip
    checks.check(not wrong_platform, f"every entity on its platform {wrong_platform or ''}")
    for kind in ("event", "image", "button", "binary_sensor", "sensor"):
        n = sum(1 for c in expected.values() if c["platform"] == kind and c["unique_id"] in by_uid)
        checks.check(n > 0, f"{n} {kind} entities created")
    honoured = [u for u, c in expected.items() if by_uid.get(u, {}).get("entity_id") ==
                c["default_entity_id"]]  # fmt: skip
    print(
        f"INFO {len(honoured)}/{len(expected)} entity ids equal default_entity_id "
        "(HA before 2025.10 ignores the key and names entities <device> <entity name>)"
    )
    for uid, cmp in sorted(expected.items()):
        got = by_uid.get(uid, {}).get("entity_id")
        print(f"     {uid}: sent {cmp['default_entity_id']}, HA {got}")
    wrong_device = [
        u for u, c in expected.items()
        if u in by_uid and c["_device"] not in
        {i[1] for i in dev_by_id.get(by_uid[u]["device_id"], {}).get("identifiers", [])}
    ]  # fmt: skip
    checks.check(not wrong_device, f"every entity on the device the bridge named {wrong_device}")
    owners = {c["_device"] for c in expected.values()}
    via_ok = all(
        ident in dev_by_ident
        and (ident.endswith("_bridge") or dev_by_ident[ident].get("via_device_id") in dev_by_id)
        for ident in owners
    )
    checks.check(via_ok, f"{len(owners)} HA devices, each under its via_device")

    log = (config_dir / "home-assistant.log").read_text(errors="replace")
    problems = [line for line in log.splitlines() if LOG_PROBLEMS.search(line)]
    for line in problems[:20]:
        print("     " + line)
    checks.check(not problems, f"no MQTT / discovery errors in HA's log ({len(problems)})")
    triggers = set(re.findall(r"Found new component: device_automation (\S+ \S+)", log))
    sent = {
        (config["dev"]["identifiers"][0], key)
        for config in discovery_configs(tap)
        for key, cmp in config["cmps"].items()
        if cmp["platform"] == "device_automation"
    }
    checks.check(
        len(triggers) == len(sent) > 0,
        f"HA took {len(triggers)} of {len(sent)} device triggers (device_automation)",
    )
    errors = [line for line in log.splitlines() if " ERROR (" in line]
    print(f"INFO {len(errors)} ERROR lines in home-assistant.log (MQTT ones fail the check above):")
    for line in errors[:5]:
        print("     " + line[:200])

    elapsed = time.monotonic() - started
    if checks.failed:
        print(f"\nFAIL: {len(checks.failed)} of {len(checks.results)} checks ({elapsed:.0f} s)")
        print(f"logs kept in {work}")
        return 1
    print(f"\nPASS: {len(checks.results)} checks against a real Home Assistant ({elapsed:.0f} s)")
    if keep:
        print(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hass", required=True, help="the `hass` executable of an HA venv")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args()
    try:
        return run(args.hass, args.keep)
    except AssertionError as exc:
        print(f"\nFAIL: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
