"""End-to-end check of the mqtt plugin's discovery against a REAL Home Assistant core.

Not part of pytest (HA is several hundred MB and takes ~10 s to start): `scripts/ha-check`
builds the HA venv (2025.4) or Debian sid root (2026.11) and runs
`python -m tests.ha.check_home_assistant --hass "<command that runs hass>"`.

A real Mosquitto, a real `hass -c DIR --skip-pip` (MQTT config entry + `mqtt_statestream`
publishing every state and attribute back to the broker), a real bridge process with the mqtt
and door_relay plugins (remote opening on, relay = a local HTTP server). The bridge's
discovery configs say which HA devices and entities should exist; HA's own registries
(flushed to `.storage` on a clean stop), its statestream messages and its log say whether
they do. Then the repository's blueprints are loaded into that HA: one automation from each
(`use_blueprint`), fed by real events, delivering their notifications through a script that
publishes them on MQTT, where the check reads what a phone would have been sent.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from sophonfog_bridge import samples
from tests.conftest import BridgeProcess, Mosquitto, free_port, port_open, wait_for
from tests.door_relay_helpers import RelayServer
from tests.mqtt_tap import Tap

EP1 = "AKOPKKKKK__192.168.1.101"
EP2 = "AKOPKKKKK__192.168.1.102"
PERSON_TYPES = ["employee", "visitor", "blacklist", "stranger", "vip"]
STATE = "hastate"  # mqtt_statestream's base topic
NOTIFIED = "sophonfog_check/notified"  # where the check's notify script publishes
BLUEPRINTS = Path(__file__).resolve().parents[2] / "blueprints" / "automation" / "sophonfog"


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


def write_ha_config(
    config_dir: Path, broker_port: int, http_port: int, version: tuple[int, int]
) -> None:
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
        # ffmpeg is not installed in the sid root, and nothing here needs it.
        "    haffmpeg: critical\n"
        "automation: !include automations.yaml\n"
        # The blueprints' notify action in the check: publish what a phone would get.
        "script:\n"
        "  check_notify:\n"
        "    mode: parallel\n"  # a phone takes every notification, also two at once
        "    sequence:\n"
        "      - action: mqtt.publish\n"
        "        data:\n"
        f"          topic: {NOTIFIED}\n"
        "          payload: >-\n"
        "            {{ {'title': title | default(''), 'message': message | default(''),\n"
        "                'data': data | default({})} | tojson }}\n"
        "mqtt_statestream:\n"
        f"  base_topic: {STATE}\n"
        "  publish_attributes: true\n"
    )
    write_automations(config_dir, [])
    shutil.copytree(BLUEPRINTS, config_dir / "blueprints" / "automation" / "sophonfog")
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
    if version >= (2026, 1):
        # HA 2026's MQTT entry format: it connects with MQTT 5.
        entry.update(version=2, minor_version=1)
        entry["data"]["protocol"] = "5"
    storage = {
        "version": 1,
        "minor_version": 5,
        "key": "core.config_entries",
        "data": {"entries": [entry]},
    }
    (config_dir / ".storage" / "core.config_entries").write_text(json.dumps(storage))


def write_automations(config_dir: Path, automations: list[dict]) -> None:
    """automations.yaml: HA presses a button named in an MQTT message (the "Open door" path
    HA -> command_topic -> bridge -> door relay, with no token for the REST API), reloads
    automations on another, plus the given ones."""
    fixed = [
        {
            "id": "sophonfog_check_press",
            "alias": "press from the check",
            "triggers": [{"trigger": "mqtt", "topic": "sophonfog_check/press"}],
            "actions": [
                {"action": "button.press", "target": {"entity_id": "{{ trigger.payload }}"}}
            ],
        },
        {
            "id": "sophonfog_check_reload",
            "alias": "reload from the check",
            "triggers": [{"trigger": "mqtt", "topic": "sophonfog_check/reload"}],
            "actions": [{"action": "automation.reload"}],
        },
    ]
    # JSON is YAML: no dumper needed, and the templates stay verbatim.
    (config_dir / "automations.yaml").write_text(json.dumps(fixed + automations, indent=1))


# One HA log entry: `2025-05-20 06:38:10.094 ERROR (MainThread) [logger] message` before
# 2026; HA 2026 adds the UTC offset: `2026-... 06:38:10.094+00:00 ERROR (...) [...] ...`.
LOG_ENTRY = re.compile(
    r"^(?:\d{4}-\d\d-\d\d[ T])?\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)? "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) \((?P<thread>[^)]*)\) "
    r"\[(?P<logger>[^\]]+)\] (?P<message>.*)$"
)
# Warnings and errors that are about the bridge's discovery, the MQTT link or the blueprints.
OURS = re.compile(
    r"homeassistant\.components\.(mqtt|automation|blueprint|script|image|event|button"
    r"|binary_sensor|sensor|device_automation|mqtt_statestream)\b|homeassistant\.helpers\.(template|script)"
)
OUR_WORDS = re.compile(
    r"Invalid config|Error parsing|Unable to parse|not a valid|extra keys not allowed"
    r"|sophonfog|blueprint|discovery|default_entity_id",
    re.IGNORECASE,
)


@dataclass
class LogEntry:
    level: str
    logger: str
    message: str  # what the first line says
    text: str  # the first line, then any continuation lines (tracebacks)


def parse_log(text: str) -> list[LogEntry]:
    entries: list[LogEntry] = []
    for line in text.splitlines():
        m = LOG_ENTRY.match(line)
        if m:
            entries.append(LogEntry(m["level"], m["logger"], m["message"], line))
        elif entries:
            entries[-1].text += "\n" + line
    return entries


def our_problems(entries: list[LogEntry]) -> list[LogEntry]:
    return [
        e
        for e in entries
        if e.level in ("WARNING", "ERROR", "CRITICAL")
        # The message only: a traceback's file paths may name the project's folders.
        and (OURS.search(e.logger) or OUR_WORDS.search(e.message))
    ]


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


class LoggingMosquitto(Mosquitto):
    """Mosquitto that keeps its log: it names each client's MQTT protocol (`p2` is 3.1.1,
    `p5` is 5)."""

    def start(self) -> LoggingMosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.log = self.workdir / "mosquitto.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=out, stderr=out)
        wait_for(lambda: port_open(self.port), 10, what="mosquitto to listen")
        return self

    def protocol_of(self, client_id: str) -> str | None:
        text = self.log.read_text(errors="replace")
        found = re.findall(rf"as {re.escape(client_id)} \((p\d)", text)
        return found[-1] if found else None


def ha_version(hass: list[str]) -> tuple[tuple[int, int], str]:
    out = subprocess.run([*hass, "--version"], capture_output=True, text=True, timeout=120)
    text = out.stdout.strip()
    m = re.match(r"(\d+)\.(\d+)", text)
    if not m:
        raise AssertionError(f"`{shlex.join(hass)} --version` said {text!r} {out.stderr[-300:]}")
    return (int(m[1]), int(m[2])), text


def bridge_config(broker: Mosquitto, relay: RelayServer) -> dict:
    return {
        "plugins": {
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "off_delay_s": 60,
                "people": ["10001"],  # 小明 gets a person device with Presence
                "presence_off_delay_s": 3,
            },
            "door_relay": {
                "enabled": True,
                "doors": [
                    {
                        "name": "front",
                        "devices": [EP1],
                        "allow_remote_open": True,
                        "cooldown_s": 0,
                        "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host},
                    }
                ],
            },
            "snapshots": {"enabled": False},
            "syslog": {"enabled": False},
        }
    }


class Run:
    """One check against one HA: the parts it starts, and the checks in the order they run."""

    def __init__(self, hass: list[str], work: Path) -> None:
        self.hass = hass
        self.work = work
        self.config_dir = work / "ha"
        self.checks = Checks()
        self.started = time.monotonic()
        self.version, self.version_text = ha_version(hass)
        self.broker = LoggingMosquitto(work).start()
        self.relay = RelayServer()
        self.tap = Tap(self.broker.host, self.broker.port,
                       ("homeassistant/#", f"{STATE}/#", "sophonfog/#", NOTIFIED))  # fmt: skip
        self.hass_proc: subprocess.Popen | None = None
        self.bridge: BridgeProcess | None = None
        self.expected: dict[str, dict] = {}

    def close(self) -> None:
        dump(self.tap, self.work / "mqtt.log")
        if self.bridge is not None:
            self.bridge.stop()
        # A clean stop makes HA flush its registries to .storage.
        stop(self.hass_proc)
        self.relay.close()
        self.broker.stop()

    def entity_ids(self) -> set[str]:
        return ha_entity_ids(self.tap)

    def post_event(self, person_type: str, ep_id: str = EP1, seed: int | None = 0) -> bytes:
        """Post an event; `seed=None` sends the default test picture (person type and time
        written on it). Returns the scene photo."""
        scene = samples.jpeg(320, 240, seed=seed) if seed is not None else None
        payload = samples.event_payload(person_type=person_type, ep_id=ep_id, scene=scene)
        assert self.bridge is not None and self.bridge.post("/RealTimeEvent", payload).ok
        return base64.b64decode(payload["ext_data"]["spot_pic"])

    def start_hass(self) -> None:
        self.http_port = http_port = free_port()
        write_ha_config(self.config_dir, self.broker.port, http_port, self.version)
        hass_log = open(self.work / "hass.out", "wb")  # noqa: SIM115 - closed with the process
        self.hass_proc = proc = subprocess.Popen(
            [*self.hass, "-c", str(self.config_dir), "--skip-pip"],
            stdout=hass_log,
            stderr=subprocess.STDOUT,
        )
        # HA says `online` on `homeassistant/status` once MQTT is set up and HA has started.
        wait_for(
            lambda: (
                proc.poll() is None
                and any(m.text == "online" for m in self.tap.on("homeassistant/status"))
                and port_open(http_port)
            ),
            180,
            interval=0.2,
            what="Home Assistant to start (see hass.out / home-assistant.log)",
        )
        took = time.monotonic() - self.started
        self.checks.check(True, f"Home Assistant {self.version_text} started in {took:.1f} s")
        ok = requests.get(f"http://127.0.0.1:{http_port}/manifest.json", timeout=5).ok
        self.checks.check(ok, "HA frontend answers on 127.0.0.1")
        self.check_protocol()

    def check_protocol(self) -> None:
        entries = read_storage(self.config_dir, "core.config_entries").get("entries", [])
        entries = [e for e in entries if e["domain"] == "mqtt"]
        client_ids = set(re.findall(r"as (\S+) \(p\d", self.broker.log.read_text()))
        protocols = {c: self.broker.protocol_of(c) for c in client_ids}
        want = "p5" if self.version >= (2026, 1) else "p2"
        ha_clients = [p for c, p in protocols.items() if not c.startswith(("sophonfog", "tap"))]
        self.checks.check(
            want in ha_clients,
            f"HA connected with MQTT {'5' if want == 'p5' else '3.1.1'} ({want}); "
            f"broker saw {protocols}; mqtt entry "
            f"{[(e['version'], e['minor_version'], e['data'].get('protocol')) for e in entries]}",
        )

    def start_bridge(self) -> None:
        (self.work / "bridge").mkdir()
        self.bridge = BridgeProcess(
            self.work / "bridge", bridge_config(self.broker, self.relay), {}
        ).start()
        assert self.bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", 2)).ok
        for i, kind in enumerate(PERSON_TYPES[:3]):
            self.post_event(kind, seed=10 + i)
        tap = self.tap
        wait_for(lambda: expected_components(tap), 20, what="discovery configs from the bridge")
        wait_for(self.bridge.drained, 20, what="the bridge to publish every event")
        self.expected = expected_components(tap)
        # Entities HA created show up on statestream; give it until the count is stable.
        wait_for(
            lambda: len(self.entity_ids()) >= len(self.expected),
            30,
            what="HA entities on statestream",
        )
        # Momentary events are not retained: HA sees only those sent after it subscribed,
        # which is when the retained `online` has made every entity available.
        wait_for(
            lambda: all(
                state_of(tap, e) not in (None, "unavailable")
                for e in self.entity_ids()
                if not e.startswith(("automation.", "script."))
            ),
            30,
            what="every HA entity to become available",
        )

    def check_event_entity_and_button(self) -> None:
        tap, checks = self.tap, self.checks
        # The event entity: find it by its event_types attribute, then post one more event.
        mine = self.bridge_entity_ids()
        event_ids = [e for e in mine if e.startswith("event.") and state_of(tap, e, "event_types")]
        checks.check(len(event_ids) == 2, f"two event entities (both gates): {event_ids}")
        face = self.entity_of("face", EP1)
        types = json.loads(state_of(tap, face, "event_types") or "[]")
        checks.check(types == PERSON_TYPES, f"{face} event_types = {types}")
        before = state_of(tap, face)
        self.post_event("vip", seed=42)
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

        button_id = next(e for e in self.entity_ids() if e.startswith("button."))
        pulses = len(self.relay.seen())
        tap.publish("sophonfog_check/press", button_id)
        wait_for(
            lambda: len(self.relay.seen()) > pulses,
            10,
            what="HA's button press to pulse the relay",
        )
        checks.check(True, f"HA pressing {button_id} pulsed the door relay via the bridge")

    def bridge_entity_ids(self) -> set[str]:
        """Entity ids of what the bridge announced, once HA's registry holds all of it."""
        ids = wait_for(
            lambda: (found := self.registry_entity_ids()) and set(self.expected) <= set(found)
            and found,
            30,
            what="HA's entity registry to hold every unique_id the bridge sent",
        )  # fmt: skip
        return {ids[u] for u in self.expected}

    def registry_entity_ids(self) -> dict[str, str]:
        """unique_id -> entity_id of the mqtt entities in HA's entity registry (HA writes
        it to .storage a few seconds after a change)."""
        entities = read_storage(self.config_dir, "core.entity_registry").get("entities", [])
        return {e["unique_id"]: e["entity_id"] for e in entities if e["platform"] == "mqtt"}

    def entity_of(self, key: str, owner_part: str) -> str:
        """HA's entity id for the component `key` of the device whose unique_id holds
        `owner_part` (a slug fragment such as the device's IP)."""
        slug = owner_part.lower().replace(".", "-")
        ids = wait_for(
            lambda: {
                u: e
                for u, e in self.registry_entity_ids().items()
                if u.endswith("_" + key) and (slug in u or owner_part in u)
            },
            30,
            what=f"HA's entity registry to hold the {key} entity of {owner_part}",
        )
        return sorted(ids.values())[0]

    def device_of(self, key: str, owner_part: str) -> str:
        """HA's device registry id of the device that owns component `key` (as entity_of)."""
        slug = owner_part.lower().replace(".", "-")
        idents = {
            c["_device"] for u, c in self.expected.items() if u.endswith("_" + key) and slug in u
        }

        def registered() -> str | None:
            devices = read_storage(self.config_dir, "core.device_registry").get("devices", [])
            found = [d["id"] for d in devices for i in d["identifiers"] if i[1] in idents]
            return found[0] if len(idents) == 1 and found else None

        return wait_for(registered, 30, what=f"HA's device registry to hold {idents}")

    def notifications(self) -> list[dict]:
        return [json.loads(m.payload) for m in self.tap.on(NOTIFIED)]

    def check_blueprints(self) -> None:
        """One automation from each blueprint, fed by real events through the bridge."""
        checks, tap = self.checks, self.tap
        gate1 = self.device_of("face", "192.168.1.101")
        box_online = self.entity_of("online", "box_akopkkkkk")
        presence = self.entity_of("presence", "person")
        notify = "script.check_notify"
        automations = [
            blueprint_automation("stranger_alert", "notify_blacklist_or_stranger.yaml",
                                 camera=gate1, notify_action=notify, quiet_s=0),
            blueprint_automation("greet", "greet_arriving_person.yaml", presence=presence,
                                 message="Welcome, {{ name }}! ({{ where }})",
                                 notify_action=notify),
            blueprint_automation("problems", "notify_door_or_box_problem.yaml",
                                 boxes=[box_online], offline_for=0, notify_action=notify),
        ]  # fmt: skip
        write_automations(self.config_dir, automations)
        tap.publish("sophonfog_check/reload", "")
        ids = [f"automation.{slug(a['alias'])}" for a in automations]

        def reported() -> dict | None:
            found = {i: state_of(tap, i) for i in ids}
            return found if all(found.values()) else None

        states = wait_for(
            reported,
            30,
            what=f"HA to report the blueprint automations {ids}",
        )
        checks.check(
            all(v == "on" for v in states.values()), f"blueprint automations are on: {states}"
        )

        # (a) a stranger at gate 2 (not the chosen camera), then a blacklisted person at gate 1.
        self.post_event("stranger", EP2, seed=50)
        scene = self.post_event("blacklist", EP1, seed=None)
        alert = self.wait_notification(lambda n: "Blacklisted person" in n["title"])
        image = alert["data"].get("image", "")
        snapshot = self.entity_of("snapshot", "192.168.1.101")
        checks.check(
            image == f"/api/image_proxy/{snapshot}" and "Gate 1" in alert["title"],
            f"blacklist at Gate 1 -> notification {alert}",
        )
        self.check_image(image, snapshot, scene)
        strangers = [n for n in self.notifications() if "Stranger" in n["title"]]
        checks.check(not strangers, f"no notification for the stranger at gate 2 {strangers}")

        # (b) + (c): 小明 comes back after Presence went off; the door relay now fails.
        wait_for(lambda: state_of(tap, presence) == "off", 30, what=f"{presence} to turn off")
        self.relay.status = 500
        self.post_event("employee", EP1, seed=52)
        greeting = self.wait_notification(lambda n: "arrived" in n["title"])
        checks.check(
            greeting["message"].startswith("Welcome, 小明!") and "Gate 1" in greeting["message"],
            f"小明 arrives -> greeting {greeting}",
        )
        failed = self.wait_notification(lambda n: n["title"].startswith("Door front"))
        checks.check("failed" in failed["title"], f"relay answers 500 -> {failed}")

        offline = samples.status_payload("AKOPKKKKK", 2) | {"gateway_status": "offline"}
        assert self.bridge is not None and self.bridge.post("/DeviceStatus", offline).ok
        gone = self.wait_notification(lambda n: "offline" in n["title"])
        checks.check("Lobby box" in gone["title"], f"box reports offline -> {gone}")
        self.automation_ids = [a["id"] for a in automations]

    def check_image(self, path: str, snapshot: str, scene: bytes) -> None:
        """The photo the notification points at, fetched from HA as a phone would (with the
        image entity's access token instead of the app's login)."""
        token = json.loads(state_of(self.tap, snapshot, "access_token") or '""')
        answer = requests.get(f"http://127.0.0.1:{self.http_port}{path}?token={token}", timeout=5)
        (self.work / "ha-image.jpg").write_bytes(answer.content)
        self.checks.check(
            answer.ok and answer.content == scene,
            f"HA serves the event's photo at {path} ({answer.status_code}, "
            f"{len(answer.content)} bytes; sent {len(scene)})",
        )

    def wait_notification(self, match) -> dict:
        found = wait_for(
            lambda: [n for n in self.notifications() if match(n)],
            20,
            what="a notification from a blueprint automation",
        )
        return found[0]

    def check_registries(self) -> None:
        checks, expected = self.checks, self.expected
        entities = read_storage(self.config_dir, "core.entity_registry").get("entities", [])
        devices = read_storage(self.config_dir, "core.device_registry").get("devices", [])
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
            n = sum(1 for u, c in expected.items() if c["platform"] == kind and u in by_uid)
            checks.check(n > 0, f"{n} {kind} entities created")
        self.check_entity_ids(by_uid)
        wrong_device = [
            u for u, c in expected.items()
            if u in by_uid and c["_device"] not in
            {i[1] for i in dev_by_id.get(by_uid[u]["device_id"], {}).get("identifiers", [])}
        ]  # fmt: skip
        checks.check(
            not wrong_device, f"every entity on the device the bridge named {wrong_device}"
        )
        owners = {c["_device"] for c in expected.values()}
        via_ok = all(
            ident in dev_by_ident
            and (ident.endswith("_bridge") or dev_by_ident[ident].get("via_device_id") in dev_by_id)
            for ident in owners
        )
        checks.check(via_ok, f"{len(owners)} HA devices, each under its via_device")
        autos = {e["unique_id"]: e["entity_id"] for e in entities if e["platform"] == "automation"}
        mine = {u: autos.get(u) for u in getattr(self, "automation_ids", [])}
        checks.check(
            bool(mine) and all(mine.values()),
            f"HA's entity registry has the blueprint automations {mine}",
        )

    def check_entity_ids(self, by_uid: dict[str, dict]) -> None:
        expected = self.expected
        honoured = [u for u, c in expected.items() if by_uid.get(u, {}).get("entity_id") ==
                    c["default_entity_id"]]  # fmt: skip
        for uid, cmp in sorted(expected.items()):
            got = by_uid.get(uid, {}).get("entity_id")
            print(f"     {uid}: sent {cmp['default_entity_id']}, HA {got}")
        what = f"{len(honoured)}/{len(expected)} entity ids equal default_entity_id"
        if self.version >= (2025, 10):
            self.checks.check(len(honoured) == len(expected) > 0, what)
        else:
            print(f"INFO {what} (HA before 2025.10 ignores the key: <device> <entity name>)")

    def check_log(self) -> None:
        checks = self.checks
        text = (self.config_dir / "home-assistant.log").read_text(errors="replace")
        entries = parse_log(text)
        # A filter that understands no line of the log would find no problem in it either.
        checks.check(
            len(entries) > 0 and len(entries) >= len(text.splitlines()) // 4,
            f"the log parser reads HA's log: {len(entries)} entries in "
            f"{len(text.splitlines())} lines",
        )
        problems = our_problems(entries)
        for entry in problems[:20]:
            print("     " + entry.text[:400])
        checks.check(
            not problems,
            f"no warning or error on MQTT, discovery or blueprints in HA's log ({len(problems)})",
        )
        found = [e.text for e in entries if e.logger.endswith("mqtt.discovery")]
        triggers = set(re.findall(r"Found new component: device_automation (\S+ \S+)",
                                  "\n".join(found)))  # fmt: skip
        sent = {
            (config["dev"]["identifiers"][0], key)
            for config in discovery_configs(self.tap)
            for key, cmp in config["cmps"].items()
            if cmp["platform"] == "device_automation"
        }
        checks.check(
            len(triggers) == len(sent) > 0,
            f"HA took {len(triggers)} of {len(sent)} device triggers (device_automation)",
        )
        others = [e for e in entries if e.level in ("ERROR", "CRITICAL") and e not in problems]
        print(f"INFO {len(others)} other ERROR entries in home-assistant.log:")
        for entry in others[:5]:
            print("     " + entry.text[:200])


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def blueprint_automation(name: str, path: str, **inputs) -> dict:
    return {
        "id": f"sophonfog_check_{name}",
        "alias": f"sophonfog check {name}",
        "use_blueprint": {"path": f"sophonfog/{path}", "input": inputs},
    }


def run(hass: list[str], keep: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="sophonfog-ha-check-"))
    os.chmod(work, 0o755)
    print(f"work dir {work}", flush=True)
    r = Run(hass, work)
    try:
        r.start_hass()
        r.start_bridge()
        r.check_event_entity_and_button()
        r.check_blueprints()
        automations = {e for e in r.entity_ids() if e.startswith("automation.sophonfog_check_")}
        states = {e: state_of(r.tap, e) for e in sorted(r.bridge_entity_ids() | automations)}
        for entity_id, value in states.items():
            print(f"     {entity_id} = {value}")
        r.checks.check(
            all(v not in (None, "unavailable") for v in states.values()),
            f"no entity of the bridge or blueprint automation is unavailable ({len(states)})",
        )
    finally:
        r.close()
    r.check_registries()
    r.check_log()
    n = len([e for e in states if not e.startswith("automation.")])
    print(f"INFO HA {r.version_text}: {n} bridge entities, {len(r.expected)} announced")

    elapsed = time.monotonic() - r.started
    failed = r.checks.failed
    if failed:
        print(f"\nFAIL: {len(failed)} of {len(r.checks.results)} checks ({elapsed:.0f} s)")
        print(f"logs kept in {work}")
        return 1
    print(f"\nPASS: {len(r.checks.results)} checks against Home Assistant {r.version_text} "
          f"({elapsed:.0f} s)")  # fmt: skip
    if keep:
        print(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hass",
        required=True,
        help="the command that runs `hass`, e.g. a venv's bin/hass or `chroot ROOT .../hass`",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args()
    try:
        return run(shlex.split(args.hass), args.keep)
    except AssertionError as exc:
        print(f"\nFAIL: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
