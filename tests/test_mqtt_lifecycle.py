"""The mqtt plugin across restarts, kills, HA restarts, broker outages and two bridges."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .conftest import Mosquitto, port_open, wait_for
from .mqtt_tap import Message, Tap
from .test_mqtt import (
    EP1,
    RELAY_TOPIC,
    _hash,
    configs,
    mqtt_config,
    post_event,
    with_remote_door,
)

BASE1 = "sophonfog/akopkkkkk__192-168-1-101-" + _hash(EP1)
DEVICE1_CONFIG = f"homeassistant/device/sophonfog_sophonfog_dev_{BASE1.split('/')[1]}/config"


def since(tap: Tap, mark: int, topic: str) -> list[Message]:
    return [m for m in tap.messages[mark:] if m.topic == topic]


def test_restart_kill_rediscovery_and_retained_commands(mosquitto, bridge_factory, tmp_path):
    tap = Tap(mosquitto.host, mosquitto.port)
    # No cooldown: a retained command acted on would pulse as well as the live one.
    config = with_remote_door(mqtt_config(mosquitto), cooldown_s=0)
    workdir = tmp_path / "bridge"
    bridge = bridge_factory(config, workdir=workdir)
    post_event(bridge, "visitor", seed=1)
    wait_for(lambda: tap.on(BASE1 + "/event"), 10, what="the first event")

    # Home Assistant restarted: discovery and retained states come again.
    mark = len(tap.messages)
    tap.publish("homeassistant/status", "online")
    wait_for(lambda: since(tap, mark, DEVICE1_CONFIG), 10, what="rediscovery")
    wait_for(lambda: since(tap, mark, BASE1 + "/last"), 10, what="retained state again")
    assert (
        since(tap, mark, BASE1 + "/snapshot")[-1].payload == tap.on(BASE1 + "/snapshot")[0].payload
    )
    assert not since(tap, mark, BASE1 + "/event"), "momentary events are never replayed"

    # A clean stop says offline and leaves the discovery configs alone.
    mark = len(tap.messages)
    assert bridge.stop() == 0
    said = wait_for(lambda: since(tap, mark, "sophonfog/status"), 5, what="offline on stop")
    assert [m.text for m in said] == ["offline"]
    late = Tap(mosquitto.host, mosquitto.port, ("sophonfog/status",))
    kept = wait_for(lambda: late.on("sophonfog/status"), 5, what="the retained status")
    assert [(m.text, m.retain) for m in kept] == [("offline", True)]
    late.close()
    assert not [m for m in tap.messages if m.topic.startswith("homeassistant/") and not m.payload]

    # A retained command waiting on the broker must never open a door.
    tap.publish(BASE1 + "/open_door", "front", retain=True)
    mark = len(tap.messages)
    bridge = bridge_factory(config, workdir=workdir)
    wait_for(lambda: [m for m in since(tap, mark, "sophonfog/status") if m.text == "online"], 10)
    # The device is announced at startup from what the bridge remembers, before any event.
    announced = since(tap, mark, DEVICE1_CONFIG)
    assert announced and json.loads(announced[-1].payload)["cmps"]["face"]["platform"] == "event"
    tap.publish(BASE1 + "/open_door", "front")
    wait_for(lambda: tap.on(RELAY_TOPIC), 10, what="the live command's pulse")
    [access] = wait_for(lambda: tap.on("sophonfog/door/front/access"), 10, what="its decision")
    assert json.loads(access.payload)["decision"] == "open"
    assert len(tap.on(RELAY_TOPIC)) == 1  # the retained command came first and was ignored

    # Killed: the broker announces the last will.
    mark = len(tap.messages)
    bridge.kill()
    offline = wait_for(lambda: since(tap, mark, "sophonfog/status"), 10, what="last will")
    assert [m.text for m in offline] == ["offline"]
    tap.close()


def _run(broker, conf):
    """Start Mosquitto with `conf` for a broker of ours; wait until it listens."""
    broker.proc = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: port_open(broker.port), 10, what="mosquitto to listen")
    return broker


class PersistentBroker(Mosquitto):
    """Mosquitto on a fixed port that keeps sessions across its own restart."""

    def start(self) -> PersistentBroker:
        store = self.workdir / "store"
        store.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "persistent.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {store}/\n"
        )
        return _run(self, conf)


class SessionTap:
    """A subscriber with a persistent session: the broker queues what it misses."""

    def __init__(self, port: int, topic: str):
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"session-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self._subscribed.is_set, 10, what="session subscription")

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))

    def identities(self, topic: str) -> list[str]:
        with self._lock:
            return [json.loads(m.payload)["identity_id"] for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_events_during_a_broker_outage_arrive_in_order(bridge_factory, tmp_path: Path):
    broker = PersistentBroker(tmp_path).start()
    try:
        tap = SessionTap(broker.port, BASE1 + "/event")
        config = mqtt_config(broker, reconnect_max_s=1)
        bridge = bridge_factory(config)
        post_event(bridge, "employee", seed=0, identity_id="p0")
        wait_for(lambda: tap.identities(BASE1 + "/event") == ["p0"], 10, what="p0")

        broker.stop()
        wait_for(lambda: not bridge.health()["plugins"]["mqtt"]["connected"], 10)
        for i in range(1, 6):
            post_event(bridge, "visitor", seed=i, identity_id=f"p{i}")
        mqtt_health = wait_for(
            lambda: (h := bridge.health()["plugins"]["mqtt"])["backlog"] >= 5 and h, 5
        )
        assert mqtt_health["state"] == "retrying"

        broker.start()  # same port, same persisted sessions
        expected = [f"p{i}" for i in range(6)]
        wait_for(
            lambda: _first_seen(tap.identities(BASE1 + "/event")) == expected,
            20,
            what=f"{expected} in order, got {tap.identities(BASE1 + '/event')}",
        )
        wait_for(bridge.drained, 10, what="the mqtt backlog to drain")
        assert bridge.health()["plugins"]["mqtt"]["connected"] is True
        tap.close()
    finally:
        broker.stop()


def _first_seen(ids: list[str]) -> list[str]:
    """At-least-once: a record in flight at the outage may come twice, never out of order."""
    return list(dict.fromkeys(ids))


HOSTILE = ["1.2.3.4", "1_2_3_4", "a/b+#", "小明", "box"]


def test_two_bridges_and_hostile_ids_never_collide(mosquitto, bridge_factory):
    tap = Tap(mosquitto.host, mosquitto.port)
    bridges = {}
    for name in ("north", "south"):
        bridge = bridge_factory(mqtt_config(mosquitto, bridge_id=name, people="employees"))
        for i, ep_id in enumerate(HOSTILE):
            post_event(bridge, "employee", seed=i, ep_id=ep_id, identity_id="小明")
        bridges[name] = bridge
    for name in bridges:
        wait_for(
            lambda n=name: len(tap.matching(lambda m: _is_event(m, f"sophonfog_{n}"))) == 5,
            15,
            what=f"{name}'s events",
        )

    found = configs(tap)
    by_bridge = {
        name: {
            t: c
            for t, c in found.items()
            if f"_sophonfog_{name}_" in t or f"sophonfog_{name}_" in t
        }
        for name in bridges
    }
    assert len(by_bridge["north"]) + len(by_bridge["south"]) == len(found)
    unique = {name: _unique_ids(cfgs) for name, cfgs in by_bridge.items()}
    assert unique["north"] and not unique["north"] & unique["south"]
    assert all(u.startswith("sophonfog_north_") for u in unique["north"])
    for name, cfgs in by_bridge.items():
        assert {c["availability_topic"] for c in cfgs.values()} == {f"sophonfog_{name}/status"}
        entity_ids = [
            c["default_entity_id"] for cfg in cfgs.values() for c in cfg["cmps"].values()
            if "default_entity_id" in c
        ]  # fmt: skip
        assert len(entity_ids) == len(set(entity_ids))
        event_topics = {
            m.topic for m in tap.matching(lambda m, n=name: _is_event(m, f"sophonfog_{n}"))
        }
        slugs = sorted(t.split("/")[1] for t in event_topics)
        assert len(slugs) == len(HOSTILE), slugs
        assert all(re.fullmatch(r"[a-z0-9_-]+", s) for s in slugs)
        assert "1_2_3_4" in slugs and any(s.startswith("1-2-3-4-") for s in slugs)
        assert any(s.startswith("xiao-ming-") for s in slugs)
        assert "box" not in slugs, "a device may not take a first-level name of the plugin"
        person = [m for m in tap.messages if m.topic.startswith(f"sophonfog_{name}/person/")]
        assert {m.topic.split("/")[2] for m in person} == {"xiao-ming-" + _hash("小明")}
        payload_ids = {
            json.loads(m.payload)["device"]
            for m in tap.matching(lambda m, n=name: _is_event(m, f"sophonfog_{n}"))
        }
        assert payload_ids == set(HOSTILE), "original ids stay in the payloads"
    clients = {b.health()["plugins"]["mqtt"]["client_id"] for b in bridges.values()}
    assert len(clients) == 2 and all(c.startswith("sophonfog-bridge-") for c in clients)
    tap.close()


def _is_event(message: Message, base: str) -> bool:
    parts = message.topic.split("/")
    return len(parts) == 3 and parts[0] == base and parts[2] == "event"


def _unique_ids(cfgs: dict[str, dict]) -> set[str]:
    ids = {
        c["unique_id"] for cfg in cfgs.values() for c in cfg["cmps"].values() if "unique_id" in c
    }
    ids |= {cfg["dev"]["identifiers"][0] for cfg in cfgs.values()}
    return ids


def test_rediscovery_never_brings_back_an_older_retained_state(mosquitto, bridge_factory):
    """An HA restart re-publishes retained states while events keep coming: the broker
    must never end up holding an older `last` than one it already had."""
    tap = Tap(mosquitto.host, mosquitto.port)
    bridge = bridge_factory(mqtt_config(mosquitto, rediscovery_delay_s=0))
    wait_for(lambda: [m for m in tap.on("sophonfog/status") if m.text == "online"], 10)
    stop = threading.Event()

    def ha_restarts() -> None:
        while not stop.is_set():
            tap.publish("homeassistant/status", "online")

    spammer = threading.Thread(target=ha_restarts, daemon=True)
    spammer.start()
    try:
        for seed in range(40):
            post_event(bridge, "visitor", seed=seed, identity_id=f"p{seed}")
        wait_for(lambda: len(tap.on(BASE1 + "/event")) == 40, 20, what="all events")
    finally:
        stop.set()
        spammer.join(10)
    # One subscriber sees one publisher's messages in the broker's order, so the retained
    # value at any moment is the last one seen: it must only ever move forward.
    seen = [json.loads(m.payload)["timestamp"] for m in tap.on(BASE1 + "/last")]
    regressions = [(a, b) for a, b in itertools.pairwise(seen) if b < a]
    assert len(seen) > 40 and regressions == []
    tap.close()


class LoggingBroker(Mosquitto):
    """Mosquitto that logs every packet to `log` (as root it would log as `mosquitto`,
    which may not enter the test's private temporary folder: `user root`)."""

    anonymous = "true"

    def start(self) -> LoggingBroker:
        self.log = self.workdir / "mosquitto.log"
        conf = self.workdir / "logging.conf"
        conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous {self.anonymous}\n"
            f"log_dest file {self.log}\nlog_type all\n"
        )
        return _run(self, conf)

    def pings_from(self, client_id: str) -> int:
        return self.log.read_text().count(f"Received PINGREQ from {client_id}")

    def connects(self) -> int:
        return self.log.read_text().count("Sending CONNACK")


def test_an_idle_bridge_pings_the_broker(bridge_factory, tmp_path: Path):
    """Nothing to publish for longer than the keep-alive: the plugin's network thread keeps
    the link alive with PINGREQs (a broker may drop a client after 1.5 keep-alives)."""
    broker = LoggingBroker(tmp_path).start()
    try:
        tap = Tap(broker.host, broker.port, ("sophonfog/status",))
        bridge = bridge_factory(mqtt_config(broker, keepalive=5))
        wait_for(lambda: [m for m in tap.on("sophonfog/status") if m.text == "online"], 10)
        client_id = bridge.health()["plugins"]["mqtt"]["client_id"]
        wait_for(lambda: broker.pings_from(client_id) >= 1, 15, what="a keep-alive ping")
        assert [m.text for m in tap.on("sophonfog/status")] == ["online"]
        tap.close()
    finally:
        broker.stop()


class RefusingBroker(LoggingBroker):
    anonymous = "false"  # and no password file: every CONNECT is refused


def test_a_refused_connection_is_retried_with_backoff(bridge_factory, tmp_path: Path):
    broker = RefusingBroker(tmp_path).start()
    try:
        started = time.monotonic()
        bridge = bridge_factory(mqtt_config(broker, reconnect_min_s=1, reconnect_max_s=60))
        wait_for(lambda: broker.connects() >= 3, 15, what="three attempts")
        # 1 s, then 2 s between attempts: never a burst of them.
        assert time.monotonic() - started >= 2.5, f"{broker.connects()} attempts"
        health = bridge.health()["plugins"]["mqtt"]
        assert health["connected"] is False and "refused" in health["mqtt_error"]
    finally:
        broker.stop()
