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
import requests
from sophonfog_bridge.plugins.door_relay.backends import build
from sophonfog_bridge.plugins.door_relay.pulse import BackendError, Pulse
from sophonfog_bridge.plugins.door_relay.schema import Backend

from sophonfog_bridge import samples

from .conftest import wait_for
from .door_relay_helpers import RelayServer
from .mqtt_tap import Tap
from .recorder import read_lines

IMAGE = samples.jpeg(16, 16)
GATE_IP = "192.168.1.101"


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
        with pytest.raises(BackendError, match="unreachable"):
            backend(type="http", preset="shelly_gen1", host="127.0.0.1:9").pulse(pulse())
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
    with pytest.raises(BackendError, match="timed out"):
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


def test_mqtt_backends_publish_through_the_bridge(bridge_factory, tmp_path, mosquitto):
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
        publisher = {"mqtt_publisher": {"host": mosquitto.host, "port": mosquitto.port}}
        bridge = bridge_factory(
            _config(tmp_path, doors, publisher),
            {
                "recorder": "tests.recorder:Recorder",
                "mqtt_publisher": "tests.door_relay_helpers:MqttPublisher",
            },
        )
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


def test_user_backend_and_remote_opening(bridge_factory, tmp_path):
    pulses = tmp_path / "pulses.txt"
    doors = [
        {
            "name": "front_gate",
            "devices": [GATE_IP],
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
    bridge = bridge_factory(
        _config(tmp_path, doors),
        {
            "recorder": "tests.recorder:Recorder",
            "user_backends": "tests.door_relay_helpers:UserBackends",
            "remote_button": "tests.door_relay_helpers:RemoteButton",
        },
    )
    listed = requests.get(bridge.url + "/test/remote_doors", timeout=5).json()
    assert listed == {"doors": [{"door": "front_gate", "devices": [GATE_IP]}]}

    def press(name):
        return requests.post(bridge.url + f"/test/open/{name}", timeout=5).json()["decisions"]

    [opened] = press("front_gate")
    assert (opened["decision"], opened["rule"], opened["source"]) == ("open", "remote", "remote")
    assert "test-button" in opened["reason"]
    assert pulses.read_text() == "front_gate 2.0 remote\n"
    [again] = press("front_gate")
    assert (again["decision"], again["rule"]) == ("deny", "cooldown")
    [refused] = press("vault")
    assert (refused["decision"], refused["rule"]) == ("deny", "remote_not_allowed")
    assert press("no_such_door") == []
    # The cooldown taken by the remote opening holds for events too.
    bridge.post("/RealTimeEvent", _employee())
    wait_for(lambda: len(_decisions(tmp_path)) == 4, what="four decisions")
    recorded = _decisions(tmp_path)
    assert [(d["source"], d["decision"], d["rule"]) for d in recorded] == [
        ("remote", "open", "remote"),
        ("remote", "deny", "cooldown"),
        ("remote", "deny", "remote_not_allowed"),
        ("event", "deny", "cooldown"),
    ]
    assert pulses.read_text().count("\n") == 1


def test_a_remote_opening_announced_before_a_kill_is_not_announced_again(bridge_factory, tmp_path):
    pulses = tmp_path / "pulses.txt"
    doors = [
        {
            "name": "front_gate",
            "devices": [GATE_IP],
            "allow_remote_open": True,
            "backend": {"type": "file_relay", "path": str(pulses)},
        }
    ]
    plugins = {
        "recorder": "tests.recorder:Recorder",
        "user_backends": "tests.door_relay_helpers:UserBackends",
        "remote_button": "tests.door_relay_helpers:RemoteButton",
    }
    cfg = _config(tmp_path, doors)
    bridge = bridge_factory(cfg, plugins)
    [opened] = requests.post(bridge.url + "/test/open/front_gate", timeout=5).json()["decisions"]
    assert (opened["decision"], opened["rule"]) == ("open", "remote")
    wait_for(lambda: len(_decisions(tmp_path)) == 1, what="the remote decision recorded")
    bridge.kill()
    # A kill -9 after the announcement but before its journal mark.
    journal = bridge.workdir / "data" / "state" / "door_relay" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    kept = [line for line in lines if '"announced"' not in line]
    assert len(kept) == 2 and len(lines) == 3
    journal.write_text("".join(line + "\n" for line in kept))

    restarted = bridge_factory(cfg, plugins, workdir=bridge.workdir)
    wait_for(restarted.drained, what="restart drained")
    health = restarted.health()["plugins"]["door_relay"]
    assert health["journal_unfinished"] == 0
    # The recorder may see its last record twice after a kill -9 (at-least-once).
    seen = {(d["source"], d["rule"], d["decided_at"]) for d in _decisions(tmp_path)}
    assert seen == {("remote", "remote", opened["decided_at"])}
    assert pulses.read_text() == "front_gate 2.0 remote\n"
    assert restarted.stop() == 0
