"""Remote openings through the real chain, no stand-ins.

A press on Home Assistant's "Open door" button is an MQTT message on the button's command
topic: here a real paho client publishes it to a real Mosquitto, the bridge's real mqtt
plugin hands it to the real door_relay plugin, which pulses a real HTTP relay
(ThreadingHTTPServer) or publishes a relay command through the mqtt plugin's own
connection; the decision comes back on MQTT.
"""

from __future__ import annotations

import threading
import time

import pytest

from sophonfog_bridge import samples

from .conftest import wait_for
from .door_relay_helpers import RelayServer, access_messages, mqtt_section, open_buttons
from .mqtt_tap import Tap
from .recorder import read_lines

GATE = "AKOPKKKKK__192.168.1.101"
RECORDER = {"recorder": "tests.recorder:Recorder"}


def chain_config(tmp_path, broker, doors: list[dict]) -> dict:
    return {
        "plugins": {
            "door_relay": {"enabled": True, "doors": doors},
            "mqtt": mqtt_section(broker),
            "recorder": {"path": str(tmp_path / "recorded.jsonl")},
            "snapshots": {"enabled": False},
            "syslog": {"enabled": False},
        },
    }


def remote_door(backend: dict, **extra) -> dict:
    return {
        "name": "front_gate",
        "devices": [GATE],
        "allow_remote_open": True,
        "backend": backend,
        **extra,
    }


def shelly(relay: RelayServer, timeout_s: float = 2.0) -> dict:
    return {"type": "http", "preset": "shelly_gen1", "host": relay.host, "timeout_s": timeout_s}


def start(bridge_factory, tmp_path, broker, doors):
    """A bridge that knows the gate (a heartbeat), and the HA button offered for it."""
    tap = Tap(broker.host, broker.port)
    bridge = bridge_factory(chain_config(tmp_path, broker, doors), RECORDER)
    assert bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", 1)).ok
    button = wait_for(lambda: open_buttons(tap).get("front_gate"), 10, what="the Open door button")
    return bridge, tap, button


@pytest.fixture
def relay():
    server = RelayServer()
    yield server
    server.close()


def test_a_button_press_pulses_the_relay_once_and_reports_on_mqtt(
    bridge_factory, tmp_path, mosquitto, relay
):
    bridge, tap, (topic, press) = start(
        bridge_factory, tmp_path, mosquitto, [remote_door(shelly(relay), cooldown_s=30)]
    )
    try:
        tap.publish(topic, press)
        wait_for(lambda: relay.seen(), 10, what="the relay request")
        [opened] = wait_for(lambda: access_messages(tap, "front_gate"), 10, what="the decision")
        assert (opened["decision"], opened["rule"], opened["source"]) == (
            "open",
            "remote",
            "remote",
        )
        assert "mqtt" in opened["reason"] and opened["decision_id"]
        # A second press inside the cooldown: denied, announced, no second pulse.
        tap.publish(topic, press)
        wait_for(lambda: len(access_messages(tap, "front_gate")) == 2, 10, what="the 2nd decision")
        again = access_messages(tap, "front_gate")[1]
        assert (again["decision"], again["rule"]) == ("deny", "cooldown")
        # A press for a door that is not remote-openable there does nothing at all: the
        # press after it is handled after it, and is the only decision that follows.
        tap.publish(topic, "vault")
        tap.publish(topic, press)
        wait_for(lambda: len(access_messages(tap, "front_gate")) == 3, 10, what="the 3rd")
        wait_for(bridge.drained, what="bridge drained")
        assert [d["rule"] for d in access_messages(tap, "front_gate")][1:] == ["cooldown"] * 2
        [request] = relay.seen()
        assert (request.method, request.path) == ("GET", "/relay/0?turn=on&timer=2")
        recorded = [x for x in read_lines(tmp_path / "recorded.jsonl") if "decision" in x]
        assert [d["decision_id"] for d in recorded][:2] == [
            opened["decision_id"],
            again["decision_id"],
        ]
    finally:
        tap.close()


def test_a_press_queued_behind_a_slow_relay_goes_stale(bridge_factory, tmp_path, mosquitto):
    slow = RelayServer(gate=threading.Event())  # answers only when the test releases it
    doors = [remote_door(shelly(slow, timeout_s=20), cooldown_s=0, remote_max_age_s=1)]
    bridge, tap, (topic, press) = start(bridge_factory, tmp_path, mosquitto, doors)
    try:
        tap.publish(topic, press)
        wait_for(lambda: slow.seen(), 10, what="the first pulse")
        tap.publish(topic, press)  # waits behind the first for the relay

        def queued() -> int:
            return bridge.health()["plugins"]["door_relay"]["doors"]["front_gate"]["queued"]

        wait_for(lambda: queued() == 1, 10, what="the second press queued")
        time.sleep(1.5)  # the queued press is now older than remote_max_age_s, by design
        slow.gate.set()
        found = wait_for(
            lambda: len(d := access_messages(tap, "front_gate")) == 2 and d, 15, what="decisions"
        )
        assert found[0]["decision"] == "open"
        assert (found[1]["decision"], found[1]["rule"]) == ("deny", "stale")
        assert "remote_max_age_s" in found[1]["reason"]
        wait_for(bridge.drained, what="bridge drained")
        assert len(slow.seen()) == 1
    finally:
        tap.close()
        slow.gate.set()
        slow.close()


def test_the_mqtt_backend_publishes_through_the_mqtt_plugins_connection(
    bridge_factory, tmp_path, mosquitto
):
    backend = {"type": "mqtt", "topic": "relay/front/set", "payload": '{"pulse": {pulse_s}}'}
    bridge, tap, (topic, press) = start(
        bridge_factory, tmp_path, mosquitto, [remote_door(backend, pulse_s=1.5, cooldown_s=0)]
    )
    try:
        tap.publish(topic, press)
        [command] = wait_for(lambda: tap.on("relay/front/set"), 10, what="the relay command")
        assert (command.text, command.retain, command.qos) == ('{"pulse": 1.5}', False, 0)
        [decision] = wait_for(lambda: access_messages(tap, "front_gate"), 10, what="decision")
        assert (decision["decision"], decision["source"]) == ("open", "remote")
        assert "published to relay/front/set" in decision["reason"]
        # An event at the gate goes the same way.
        event = samples.event_payload("v2r1", identity_id="e-chain", ep_id=GATE)
        assert bridge.post("/RealTimeEvent", event).ok
        wait_for(lambda: len(tap.on("relay/front/set")) == 2, 10, what="the event's command")
        wait_for(bridge.drained, what="bridge drained")
        assert len(tap.on("relay/front/set")) == 2
    finally:
        tap.close()
