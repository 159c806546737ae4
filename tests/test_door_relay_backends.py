"""Each door_relay backend sends exactly what the device's documented API expects.

HTTP presets and the SophonFog box run against a real local server; the command backend
runs a real program; GPIO uses gpiozero's MockFactory; MQTT goes through a real bridge to
a real Mosquitto, read back by a real subscriber; user backends and remote opening go
through a real bridge too.
"""

from __future__ import annotations

import base64
import json
import sys
import time

import pytest
from sophonfog_bridge.plugins.door_relay.backends import build
from sophonfog_bridge.plugins.door_relay.pulse import BackendError, Pulse, RelayUnconfirmed
from sophonfog_bridge.plugins.door_relay.schema import Backend

from sophonfog_bridge import samples
from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.host import build_host

from .conftest import wait_for
from .door_relay_helpers import RelayServer, UserBackends, mqtt_section, open_buttons
from .mqtt_tap import Tap
from .recorder import read_lines

IMAGE = samples.jpeg(16, 16)
GATE_IP = "192.168.1.101"
GATE = f"AKOPKKKKK__{GATE_IP}"


def backend(**cfg):
    return build(Backend(cfg), bridge=None, user={})


def pulse(seconds: float = 2.0) -> Pulse:
    return Pulse("front_gate", seconds, "event", "e1")


@pytest.fixture
def relay():
    server = RelayServer()
    yield server
    server.close()


def test_shelly_gen1_timer_and_basic_auth(relay):
    relay_backend = backend(
        type="http", preset="shelly_gen1", host=relay.host, username="u", password="p"
    )
    assert relay_backend.pulse(pulse(2)) == "shelly ison=true"
    backend(type="http", preset="shelly_gen1", host=relay.host, channel=1).pulse(pulse(1.5))
    first, second = relay.seen()
    assert (first.method, first.path) == ("GET", "/relay/0?turn=on&timer=2")
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert (second.method, second.path) == ("GET", "/relay/1?turn=on&timer=1.5")
    assert "Authorization" not in second.headers


def test_shelly_gen2_rpc_with_sha256_digest():
    relay = RelayServer(digest=("admin", "s3cret"))
    try:
        relay_backend = backend(
            type="http", preset="shelly_gen2", host=relay.host, password="s3cret", auth="digest"
        )
        assert relay_backend.pulse(pulse(2)) == "shelly Switch.Set ok"
        [seen] = relay.seen()  # the server records only requests that passed digest auth
        assert (seen.method, seen.path) == ("POST", "/rpc")
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.json() == {
            "id": 1,
            "method": "Switch.Set",
            "params": {"id": 0, "on": True, "toggle_after": 2.0},
        }
        wrong = backend(
            type="http", preset="shelly_gen2", host=relay.host, password="nope", auth="digest"
        )
        with pytest.raises(BackendError, match="HTTP 401"):
            wrong.pulse(pulse())
        assert len(relay.seen()) == 1
    finally:
        relay.close()


def test_tasmota_sets_pulsetime_before_power_on(relay):
    backend(type="http", preset="tasmota", host=relay.host).pulse(pulse(2))
    backend(type="http", preset="tasmota", host=relay.host, channel=2, password="pw").pulse(
        pulse(15)
    )
    paths = [s.path for s in relay.seen()]
    assert paths == [
        "/cm?cmnd=PulseTime1%2020",
        "/cm?cmnd=Power1%20ON",
        "/cm?cmnd=PulseTime2%20115&user=admin&password=pw",
        "/cm?cmnd=Power2%20ON&user=admin&password=pw",
    ]


def test_tasmota_refusing_pulsetime_never_switches_on():
    refusing = RelayServer(status=500)
    try:
        with pytest.raises(BackendError, match="HTTP 500"):
            backend(type="http", preset="tasmota", host=refusing.host).pulse(pulse())
        assert [s.path for s in refusing.seen()] == ["/cm?cmnd=PulseTime1%2020"]
    finally:
        refusing.close()


def test_esphome_button_press(relay):
    backend(type="http", preset="esphome", host=relay.host, button="gate open").pulse(pulse())
    [seen] = relay.seen()
    assert (seen.method, seen.path, seen.body) == ("POST", "/button/gate%20open/press", b"")


def test_home_assistant_button_press_with_bearer_token(relay):
    backend(
        type="http",
        preset="home_assistant",
        host=relay.host,
        entity_id="button.front_gate_open",
        token="abc.def",
    ).pulse(pulse())
    [seen] = relay.seen()
    assert (seen.method, seen.path) == ("POST", "/api/services/button/press")
    assert seen.headers["Authorization"] == "Bearer abc.def"
    assert seen.json() == {"entity_id": "button.front_gate_open"}


def test_plain_url_with_body_and_pulse_placeholder(relay):
    backend(
        type="http",
        url=f"http://{relay.host}/relay/0?turn=on&timer={{pulse_s}}",
    ).pulse(pulse(3))
    backend(
        type="http",
        url=f"http://{relay.host}/rpc",
        method="post",
        body={"id": 1, "method": "Switch.Set", "params": {"id": 0, "on": True}},
    ).pulse(pulse())
    first, second = relay.seen()
    assert (first.method, first.path) == ("GET", "/relay/0?turn=on&timer=3")
    assert (second.method, second.json()["method"]) == ("POST", "Switch.Set")


def test_http_errors_are_backend_errors(relay):
    failing = RelayServer(status=503)
    try:
        with pytest.raises(BackendError, match="HTTP 503"):
            backend(type="http", preset="shelly_gen1", host=failing.host).pulse(pulse())
        with pytest.raises(BackendError, match="unreachable") as refused:
            backend(type="http", preset="shelly_gen1", host="127.0.0.1:9").pulse(pulse())
        assert not isinstance(refused.value, RelayUnconfirmed)  # never sent: the door is shut
    finally:
        failing.close()
    # A device that answers 200 but not what its API documents did not switch.
    off = RelayServer(body=b'{"ison": false}')
    rpc_error = RelayServer(body=b'{"id":1,"error":{"code":-103,"message":"Invalid id"}}')
    try:
        with pytest.raises(BackendError, match="shelly did not confirm"):
            backend(type="http", preset="shelly_gen1", host=off.host).pulse(pulse())
        with pytest.raises(BackendError, match="shelly rpc error"):
            backend(type="http", preset="shelly_gen2", host=rpc_error.host).pulse(pulse())
    finally:
        off.close()
        rpc_error.close()


def test_a_request_sent_without_an_answer_is_unconfirmed():
    slow = RelayServer(delay_s=1.0)
    try:
        with pytest.raises(RelayUnconfirmed, match=r"timed out after 0\.3 s"):
            backend(type="http", preset="shelly_gen1", host=slow.host, timeout_s=0.3).pulse(pulse())
        with pytest.raises(RelayUnconfirmed):
            backend(type="sophon", host=slow.host, action_ip="10.0.0.9", timeout_s=0.3).pulse(
                pulse()
            )
        assert len(slow.seen()) == 2  # both reached the relay
        # Tasmota's PulseTime only prepares: when its answer is lost, Power is never sent.
        tasmota = backend(type="http", preset="tasmota", host=slow.host, timeout_s=0.3)
        with pytest.raises(BackendError, match="opening command was not sent") as shut:
            tasmota.pulse(pulse())
        assert not isinstance(shut.value, RelayUnconfirmed)
        assert [s.query["cmnd"][0] for s in slow.seen()[2:]] == ["PulseTime1 20"]
    finally:
        slow.close()


def test_sophon_box_event_action(relay):
    box = backend(type="sophon", host=relay.host, action_ip="192.168.1.120")
    assert box.pulse(pulse(2.5)) == "box HTTP 200"
    [seen] = relay.seen()
    assert (seen.method, seen.path) == ("PUT", "/SophonFogSys/api/EventAction")
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {
        "action": [
            {
                "action_ip": "192.168.1.120",
                "action_port": "5555",
                "action_mode": "opendoor",
                "action_duration": 3,
                "logic_port": 0,
            }
        ]
    }


def test_command_runs_a_real_program_without_a_shell(tmp_path):
    out = tmp_path / "argv.json"
    script = "import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"
    argv = [sys.executable, "-c", script, str(out), "{door}", "{pulse_s}", "$(reboot); *"]
    assert backend(type="command", argv=argv).pulse(pulse(2)) == "command exited 0"
    assert json.loads(out.read_text()) == [str(out), "front_gate", "2", "$(reboot); *"]

    failing = [sys.executable, "-c", "import sys; sys.stderr.write('relay jammed'); sys.exit(3)"]
    with pytest.raises(BackendError, match="exited 3: relay jammed"):
        backend(type="command", argv=failing).pulse(pulse())
    hanging = [sys.executable, "-c", "import time; time.sleep(30)"]
    started = time.monotonic()
    # It ran and may have switched the relay before hanging: not confirmed, not "shut".
    with pytest.raises(RelayUnconfirmed, match="timed out"):
        backend(type="command", argv=hanging, timeout_s=0.3).pulse(pulse())
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("active_low", [False, True])
def test_gpio_pulse_timed_by_the_bridge(active_low):
    gpio = backend(type="gpio", pin=17, active_low=active_low, pin_factory="mock")
    pin = gpio.device.pin
    shut = active_low  # the electrical level of a shut door
    assert pin.state == shut
    gpio.pulse(pulse(0.2))
    wait_for(lambda: pin.state == (not shut), 2, what="relay energised")
    wait_for(lambda: pin.state == shut, 2, what="relay released")
    gpio.close()


def _config(tmp_path, doors, extra_plugins=None):
    return {
        "plugins": {
            "door_relay": {"enabled": True, "doors": doors},
            "recorder": {"path": str(tmp_path / "recorded.jsonl")},
            "mqtt": {"enabled": False},
            "snapshots": {"enabled": False},
            "syslog": {"enabled": False},
            **(extra_plugins or {}),
        }
    }


def _employee(**kwargs):
    return samples.event_payload(
        "v2r2", scene=IMAGE, registered=IMAGE, face=IMAGE, identity_id="e-1", **kwargs
    )


def _decisions(tmp_path):
    return [line for line in read_lines(tmp_path / "recorded.jsonl") if "decision" in line]


def test_mqtt_backends_publish_through_the_mqtt_plugin(bridge_factory, tmp_path, mosquitto):
    tap = Tap(mosquitto.host, mosquitto.port, ("zigbee2mqtt/#", "cmnd/#"))
    try:
        doors = [
            {
                "name": "z2m_gate",
                "devices": [GATE_IP],
                "backend": {"type": "mqtt", "preset": "zigbee2mqtt", "device": "gate_relay"},
            },
            {
                "name": "tasmota_gate",
                "devices": [GATE_IP],
                "pulse_s": 1.5,
                "backend": {"type": "mqtt", "preset": "tasmota", "device": "tasmota_1"},
            },
        ]
        cfg = _config(tmp_path, doors)
        cfg["plugins"]["mqtt"] = mqtt_section(mosquitto)  # the real mqtt plugin's connection
        bridge = bridge_factory(cfg, {"recorder": "tests.recorder:Recorder"})
        wait_for(lambda: bridge.health()["plugins"]["mqtt"]["connected"], 10, what="connected")
        bridge.post("/RealTimeEvent", _employee())
        wait_for(lambda: len(tap.messages) == 3, 5, what="three MQTT messages")
        z2m = tap.on("zigbee2mqtt/gate_relay/set")
        assert [json.loads(m.text) for m in z2m] == [{"state": "ON", "on_time": 2}]
        assert [(m.topic, m.text) for m in tap.matching(lambda m: m.topic.startswith("cmnd/"))] == [
            ("cmnd/tasmota_1/PulseTime1", "15"),
            ("cmnd/tasmota_1/POWER1", "ON"),
        ]
        assert not any(m.retain for m in tap.messages)
        # QoS 0: a command is sent now or never, never re-sent late after a reconnect.
        assert {m.qos for m in tap.messages} == {0}
        wait_for(lambda: len(_decisions(tmp_path)) == 2, what="two decisions")
        assert {d["decision"] for d in _decisions(tmp_path)} == {"open"}
    finally:
        tap.close()


def test_mqtt_backend_without_a_publisher_stays_shut(bridge_factory, tmp_path):
    doors = [
        {
            "name": "front_gate",
            "devices": [GATE_IP],
            "backend": {"type": "mqtt", "topic": "relay/front/set", "payload": "ON"},
        }
    ]
    bridge = bridge_factory(_config(tmp_path, doors), {"recorder": "tests.recorder:Recorder"})
    bridge.post("/RealTimeEvent", _employee())
    [decision] = wait_for(lambda: _decisions(tmp_path), what="the decision")
    assert (decision["decision"], decision["rule"]) == ("error", "backend")
    assert "no plugin publishes MQTT" in decision["reason"]


def _remote_doors(pulses) -> list[dict]:
    return [
        {
            "name": "front_gate",
            "devices": [GATE_IP, GATE],
            "allow_remote_open": True,
            "cooldown_s": 30,
            "backend": {"type": "file_relay", "path": str(pulses)},
        },
        {
            "name": "vault",
            "devices": ["192.168.1.150"],
            "backend": {"type": "file_relay", "path": str(pulses)},
        },
    ]


def _pressable(bridge_factory, tmp_path, broker, doors):
    """A bridge with the real mqtt plugin, a known gate, and its HA "Open door" button."""
    cfg = _config(tmp_path, doors)
    cfg["plugins"]["mqtt"] = mqtt_section(broker)
    plugins = {
        "recorder": "tests.recorder:Recorder",
        "user_backends": "tests.door_relay_helpers:UserBackends",
    }
    tap = Tap(broker.host, broker.port)
    bridge = bridge_factory(cfg, plugins)
    assert bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", 1)).ok
    buttons = wait_for(lambda: open_buttons(tap), 10, what="the Open door button")
    return bridge, tap, buttons, cfg, plugins


def test_user_backend_and_remote_opening(bridge_factory, tmp_path, mosquitto):
    pulses = tmp_path / "pulses.txt"
    bridge, tap, buttons, _, _ = _pressable(
        bridge_factory, tmp_path, mosquitto, _remote_doors(pulses)
    )
    try:
        # Only the remote-openable door gets a button.
        assert list(buttons) == ["front_gate"]
        topic, press = buttons["front_gate"]
        tap.publish(topic, press)
        [opened] = wait_for(lambda: _decisions(tmp_path), 10, what="the remote decision")
        assert (opened["decision"], opened["rule"], opened["source"]) == (
            "open",
            "remote",
            "remote",
        )
        assert "mqtt" in opened["reason"]
        assert pulses.read_text() == "front_gate 2.0 remote\n"
        tap.publish(topic, press)
        # A press naming the door without remote opening, on the same topic, does nothing;
        # the press after it is handled after it, so its decision shows the first was done.
        tap.publish(topic, "vault")
        tap.publish(topic, press)
        wait_for(lambda: len(_decisions(tmp_path)) == 3, 10, what="three presses decided")
        # The cooldown taken by the remote opening holds for events too.
        bridge.post("/RealTimeEvent", _employee())
        wait_for(lambda: len(_decisions(tmp_path)) == 4, what="four decisions")
        wait_for(bridge.drained, what="bridge drained")
        recorded = _decisions(tmp_path)
        assert [(d["source"], d["door"], d["decision"], d["rule"]) for d in recorded] == [
            ("remote", "front_gate", "open", "remote"),
            ("remote", "front_gate", "deny", "cooldown"),
            ("remote", "front_gate", "deny", "cooldown"),
            ("event", "front_gate", "deny", "cooldown"),
        ]
        assert "opened" in recorded[3]["reason"]
        assert pulses.read_text() == "front_gate 2.0 remote\n"
    finally:
        tap.close()


def test_a_door_without_remote_opening_refuses_the_hook(tmp_path):
    """open_door is a hook any plugin may call: the real door plugin in a real bridge."""
    pulses = tmp_path / "pulses.txt"
    cfg = _config(tmp_path, _remote_doors(pulses))
    cfg["spool"] = {"path": str(tmp_path / "data")}
    del cfg["plugins"]["recorder"]
    host = build_host(explicit={"user_backends": UserBackends()})
    bridge = Bridge(cfg, host)
    bridge.start()
    try:
        [refused] = [r.value for r in bridge.call("open_door", door="vault", source="script")]
        assert (refused.decision.value, refused.rule) == ("deny", "remote_not_allowed")
        assert bridge.call("open_door", door="no_such_door", source="x") == []
        [opened] = [r.value for r in bridge.call("open_door", door="front_gate", source="script")]
        assert (opened.decision.value, opened.rule) == ("open", "remote")
        assert "script" in opened.reason
    finally:
        bridge.stop()
    assert pulses.read_text() == "front_gate 2.0 remote\n"


def test_a_remote_opening_announced_before_a_kill_is_not_announced_again(
    bridge_factory, tmp_path, mosquitto
):
    pulses = tmp_path / "pulses.txt"
    bridge, tap, buttons, cfg, plugins = _pressable(
        bridge_factory, tmp_path, mosquitto, _remote_doors(pulses)
    )
    try:
        tap.publish(*buttons["front_gate"])
        [opened] = wait_for(lambda: _decisions(tmp_path), 10, what="the remote decision recorded")
        assert (opened["decision"], opened["rule"]) == ("open", "remote")
    finally:
        tap.close()
    wait_for(bridge.drained, what="bridge drained")
    bridge.kill()
    # A kill -9 after the announcement but before its journal mark.
    journal = bridge.workdir / "data" / "state" / "door_relay" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    kept = [line for line in lines if '"announced"' not in line]
    assert len(kept) == 2 and len(lines) == 3
    assert json.loads(kept[0])["decision_id"] == opened["decision_id"]
    journal.write_text("".join(line + "\n" for line in kept))

    restarted = bridge_factory(cfg, plugins, workdir=bridge.workdir)
    wait_for(restarted.drained, what="restart drained")
    health = restarted.health()["plugins"]["door_relay"]
    assert health["journal_unfinished"] == 0
    # The recorder may see its last record twice after a kill -9 (at-least-once), but the
    # re-announcement under the same decision_id was refused: no "interrupted" copy.
    seen = {(d["decision_id"], d["rule"]) for d in _decisions(tmp_path)}
    assert seen == {(opened["decision_id"], "remote")}
    assert pulses.read_text() == "front_gate 2.0 remote\n"
    assert restarted.stop() == 0
