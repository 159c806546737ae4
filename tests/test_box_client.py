"""The websocket client of V5R7/V6 boxes, against the emulated box over real sockets and a
real bridge process: subscription, events into the plugins, reconnects, bad frames."""

from __future__ import annotations

import itertools
import json
import time

import pytest
import requests

from sophonfog_bridge.emulator import EmulatedBox
from sophonfog_bridge.samples import event_payload

from .box_helpers import RECORDER, Listener, box_entry, bridge_config, connected, recorded
from .conftest import wait_for
from .door_relay_helpers import RelayServer
from .mqtt_tap import Tap

FIRMWARES = ["v6", "v5"]
PERSON_TYPES = ["employee", "visitor", "blacklist", "stranger", "vip"]


@pytest.fixture
def boxes():
    started: list[EmulatedBox] = []

    def make(firmware: str = "v6", **kw) -> EmulatedBox:
        box = EmulatedBox(firmware=firmware, **kw).start()
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()


def expected_subscription(firmware: str, ids: list[str]) -> dict:
    if firmware == "v6":
        return {"with_face_image": True, "with_register_image": True, "media_device_ids": ids}
    return {"need_face": True, "need_register": True, "event_list": ids}


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_subscription_names_exactly_the_box_devices(firmware, boxes, bridge_factory, tmp_path):
    box = boxes(firmware, devices=3)
    ids = [d.id for d in box.devices]
    # The second entry picks devices by id and by IP, the way door configs name them.
    pick = box_entry(boxes(firmware, devices=3), name="side", devices=[ids[0], "192.168.1.103"])
    bridge = bridge_factory(bridge_config(tmp_path, [box_entry(box), pick]), RECORDER)
    wait_for(lambda: connected(bridge) and connected(bridge, "side"), what="both boxes up")
    assert box.subscriptions == [expected_subscription(firmware, ids)]
    side = bridge.health()["boxes"]["side"]
    assert [d["subscribed"] for d in side["devices"]] == [True, False, True]
    assert side["firmware"] == firmware and side["last_error"] is None
    wait_for(lambda: recorded(tmp_path, "box_link"), what="the link state reached the plugins")
    link = recorded(tmp_path, "box_link")[0]
    assert link["connected"] is True and link["firmware"] == firmware
    assert [d["name"] for d in link["devices"]] == ["camera 1", "camera 2", "camera 3"]


def mapped_box(firmware: str, boxes) -> EmulatedBox:
    # Gates list as "photo" devices; V5 records then say device_type "0" (gate), while
    # the V6 record has no such field and the device stays unknown.
    return boxes(firmware, devices=[{"type": "photo"}, {"type": "photo", "ip": "192.168.1.102"}])


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_a_fresh_employee_opens_the_mapped_door_once(firmware, boxes, bridge_factory, tmp_path):
    box = mapped_box(firmware, boxes)
    front, back = RelayServer(), RelayServer()
    types = ["gate", "access_control", "unknown"]

    def door(name, devices, relay):
        return {
            "name": name,
            "devices": devices,
            "device_types": types,
            "cooldown_s": 0,
            "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host},
        }

    try:
        doors = [door("front", [box.devices[0].id], front), door("back", ["192.168.1.102"], back)]
        relay = {"enabled": True, "doors": doors}
        cfg = bridge_config(tmp_path, [box_entry(box)], door_relay=relay)
        bridge = bridge_factory(cfg, RECORDER)
        wait_for(lambda: connected(bridge), what="box connected")
        box.emit("employee", device=0)
        box.emit("employee", device=1)
        wait_for(lambda: len(front.seen()) == 1 and len(back.seen()) == 1, what="both doors open")
        stale_ms = int(time.time() * 1000) - 60_000
        for person in ("visitor", "stranger", "blacklist"):
            box.emit(person, device=0)
        box.emit("employee", device=0, timestamp_ms=stale_ms)
        wait_for(lambda: len(recorded(tmp_path, "door_decision")) == 6, what="six decisions")
        rules = sorted(d["rule"] for d in recorded(tmp_path, "door_decision"))
        assert rules == ["allowed", "allowed", "blacklist", "person_type", "person_type", "stale"]
        wait_for(bridge.drained, what="drained")
        assert (len(front.seen()), len(back.seen())) == (1, 1)
    finally:
        front.close()
        back.close()


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_live_events_reach_mqtt_and_discovery_like_http_events(
    firmware, boxes, bridge_factory, tmp_path, mosquitto
):
    box = boxes(firmware, devices=1)
    tap = Tap(mosquitto.host, mosquitto.port)
    mqtt = {"host": mosquitto.host, "port": mosquitto.port, "rediscovery_delay_s": 0.2}
    bridge = bridge_factory(bridge_config(tmp_path, [box_entry(box)], mqtt=mqtt), RECORDER)
    wait_for(lambda: connected(bridge), what="box connected")
    device = box.devices[0]
    dev_topic = f"sophonfog/{device.id}"
    for person in PERSON_TYPES:
        box.emit(person)
    http = event_payload("v2r2", timestamp_ms=int(time.time() * 1000))
    assert bridge.post("/RealTimeEvent", http).status_code == 200

    def events():
        return [json.loads(m.text) for m in tap.on(f"{dev_topic}/event")]

    wait_for(lambda: len(events()) == len(PERSON_TYPES), what="every person type on MQTT")
    assert [e["event_type"] for e in events()] == PERSON_TYPES
    assert {e["box"] for e in events()} == {"lobby"}
    assert {e["device_ip"] for e in events()} == {device.ip}
    http_events = wait_for(
        lambda: tap.matching(
            lambda m: m.topic.endswith("/event") and not m.topic.startswith(dev_topic + "/")
        ),
        what="the HTTP event on MQTT",
    )
    http_event = json.loads(http_events[0].text)
    assert set(http_event) == set(events()[0])  # the same fields, whichever the route

    config_topic = f"homeassistant/device/sophonfog_sophonfog_dev_{device.id}/config"
    wait_for(lambda: tap.on(config_topic), what="discovery of the capture device")
    capture = json.loads(tap.on(config_topic)[-1].text)
    assert capture["dev"]["name"] == device.name  # from the box's device list
    assert capture["dev"]["via_device"] == "sophonfog_sophonfog_box_lobby"
    assert "face" in capture["cmps"] and "snapshot" in capture["cmps"]
    box_topic = "homeassistant/device/sophonfog_sophonfog_box_lobby/config"
    link = json.loads(tap.on(box_topic)[-1].text)["cmps"]["link"]
    assert link["device_class"] == "connectivity"
    assert link["state_topic"] == "sophonfog/box/lobby/link"
    state = json.loads(tap.on("sophonfog/box/lobby/link")[-1].text)
    assert state["connected"] is True and state["firmware"] == firmware
    box.stop()
    wait_for(
        lambda: not json.loads(tap.on("sophonfog/box/lobby/link")[-1].text)["connected"],
        what="the link sensor going off",
    )
    tap.close()


def test_a_door_on_a_v6_gate_that_can_never_match_is_warned_about(boxes, bridge_factory, tmp_path):
    """A V6 gate lists as "photo" and its records carry no type: its events are `unknown`,
    which the default device_types refuse. The door stays shut (never widened silently),
    and the log says once why, and what to change."""
    box = mapped_box("v6", boxes)
    relay = RelayServer()
    try:
        door = {
            "name": "front",
            "devices": [box.devices[0].id],
            "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host},
        }
        ok = {**door, "name": "back", "devices": ["192.168.1.102"], "device_types": ["unknown"]}
        cfg = bridge_config(
            tmp_path, [box_entry(box)], door_relay={"enabled": True, "doors": [door, ok]}
        )
        bridge = bridge_factory(cfg, RECORDER)
        wait_for(lambda: connected(bridge), what="box connected")
        warning = (
            f"door front: device {box.devices[0].id} of box lobby sends "
            "events of device_type unknown, which device_types [gate, access_control] "
            "never allows"
        )
        wait_for(lambda: warning in bridge.logs(), what="the warning")
        box.emit("employee", device=0)
        wait_for(lambda: recorded(tmp_path, "door_decision"), what="the door decision")
        assert [d["rule"] for d in recorded(tmp_path, "door_decision")] == ["device_type"]
        box.drop_connections()
        wait_for(lambda: bridge.health()["boxes"]["lobby"]["reconnects"] >= 1, what="reconnect")
        wait_for(lambda: connected(bridge), what="box connected again")
        assert bridge.logs().count(warning) == 1
        assert f"door back: device {box.devices[1].id}" not in bridge.logs()
        assert relay.seen() == []
    finally:
        relay.close()


@pytest.mark.parametrize("how", ["close_frame", "abrupt", "restart"])
def test_reconnects_and_subscribes_again_within_10s(how, boxes, bridge_factory, tmp_path):
    box = boxes("v6", devices=1)
    bridge = bridge_factory(bridge_config(tmp_path, [box_entry(box)]), RECORDER)
    wait_for(lambda: connected(bridge), what="box connected")
    if how == "restart":
        box.restart()
    else:
        box.drop_connections(1001 if how == "close_frame" else None)
    wait_for(lambda: len(box.subscriptions) == 2 and box.connections == 1, 10, what="resubscribed")
    wait_for(lambda: box.emit("employee")["pushed_to"] == 1, 5, what="pushed to the new socket")
    wait_for(lambda: recorded(tmp_path), 5, what="the event after the reconnect")
    health = wait_for(lambda: connected(bridge), what="connected again")
    assert health["reconnects"] == 1
    assert "disconnected" in bridge.logs()


def test_box_down_backs_off_without_flood_or_spin(bridge_factory, tmp_path):
    down = Listener()  # the box's API port closes every connection at once
    try:
        entry = {"host": "127.0.0.1", "name": "gone", "firmware": "v6", "api_port": down.port}
        bridge = bridge_factory(bridge_config(tmp_path, [entry]), RECORDER)
        cpu_before = _cpu_s(bridge.proc.pid)
        time.sleep(20)  # the window observed: attempts are counted as they happen
        cpu = _cpu_s(bridge.proc.pid) - cpu_before
        gaps = [b - a for a, b in itertools.pairwise(down.attempts)]
    finally:
        down.close()
    # 1, 2, 4, 8 s (±20 %) fit in 20 s: five or six attempts, each gap longer than the last.
    assert 4 <= len(down.attempts) <= 7, down.attempts
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps)), gaps
    lines = bridge.logs().splitlines()
    warnings = [line for line in lines if "box gone" in line and "WARNING" in line]
    assert len(warnings) == 1, warnings  # said once, not once per attempt
    assert cpu < 2.0, f"{cpu:.2f} s of CPU in 20 s"
    health = bridge.health()["boxes"]["gone"]
    assert health["connected"] is False and "cannot reach" in health["last_error"]
    assert health["reconnects"] == len(down.attempts) - 1


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


GARBAGE = {
    "not_json": "this is not JSON {",
    "not_object": "[1, 2, 3]",
    "not_object_big": json.dumps("x" * 200_000),
    "invalid": json.dumps({"media_device_id": "x", "timestamp": 1}),
}


def test_garbage_frames_are_logged_once_skipped_and_the_socket_stays(
    boxes, bridge_factory, tmp_path
):
    box = boxes("v6", devices=1)
    bridge = bridge_factory(bridge_config(tmp_path, [box_entry(box)]), RECORDER)
    wait_for(lambda: connected(bridge), what="box connected")
    for frame in GARBAGE.values():
        for _ in range(3):
            assert box.send_raw(frame) == 1
    box.send_raw(b"\xff\xfe binary, not UTF-8")
    sent = box.emit("employee")
    wait_for(lambda: recorded(tmp_path), what="the valid event after the garbage")
    assert recorded(tmp_path)[0]["identity_id"] == sent["identity_id"]
    logs = bridge.logs()
    assert logs.count("is not JSON") == 1  # two text frames and one binary: one line
    assert logs.count("not an object") == 1
    assert logs.count("a record was refused") == 1
    metrics = requests.get(bridge.url + "/metrics", timeout=5).text
    assert 'sophonfog_box_frames_skipped_total{box="lobby",reason="not_json"} 4.0' in metrics
    assert 'sophonfog_box_frames_skipped_total{box="lobby",reason="not_object"} 6.0' in metrics
    assert 'sophonfog_box_connected{box="lobby"} 1.0' in metrics
    assert len(box.subscriptions) == 1 and connected(bridge)["reconnects"] == 0


def test_two_boxes_one_hung_the_other_and_http_unaffected(boxes, bridge_factory, tmp_path):
    box = boxes("v5", devices=1)
    hung = Listener(hang=True)  # accepts and never answers: every call times out
    try:
        dead = {"host": "127.0.0.1", "name": "hung", "api_port": hung.port}
        bridge = bridge_factory(bridge_config(tmp_path, [dead, box_entry(box)]), RECORDER)
        wait_for(lambda: connected(bridge), what="the good box connected")
        http = event_payload("v2r2")
        for _ in range(3):
            box.emit("employee")
            started = time.perf_counter()
            answer = bridge.post("/RealTimeEvent", http)
            assert answer.status_code == 200 and time.perf_counter() - started < 0.5
        wait_for(lambda: len(recorded(tmp_path)) == 4, what="three websocket events + one HTTP")
        # The three HTTP posts were one recognition (same id), so one event.
        assert sorted(e["transport"] for e in recorded(tmp_path)) == ["http", *["websocket"] * 3]
        assert bridge.health()["boxes"]["hung"]["connected"] is False
    finally:
        hung.close()


def test_a_new_device_means_a_new_subscription(boxes, bridge_factory, tmp_path):
    box = boxes("v6", devices=1)
    entry = box_entry(box, device_refresh_s=1)
    bridge = bridge_factory(bridge_config(tmp_path, [entry]), RECORDER)
    wait_for(lambda: connected(bridge), what="box connected")
    box.set_devices(2)
    ids = [d.id for d in box.devices]
    wait_for(lambda: box.subscriptions[-1] == expected_subscription("v6", ids), 10, what="resub")
    wait_for(lambda: box.emit("visitor", device=1)["pushed_to"] == 1, 5, what="on the new socket")
    wait_for(lambda: recorded(tmp_path), what="the new device's event")


def test_no_devices_no_subscription_until_the_box_lists_one(boxes, bridge_factory, tmp_path):
    box = boxes("v6", devices=0)
    bridge = bridge_factory(bridge_config(tmp_path, [box_entry(box)]), RECORDER)
    health = wait_for(
        lambda: (h := bridge.health()["boxes"]["lobby"])["last_error"] and h, what="reported"
    )
    assert "lists no capture devices" in health["last_error"] and not health["connected"]
    assert box.subscriptions == [] and box.connections == 0
    box.set_devices(1)
    wait_for(lambda: connected(bridge), 10, what="subscribed once a device is listed")
    assert box.subscriptions == [expected_subscription("v6", [box.devices[0].id])]


@pytest.mark.parametrize("firmware, code", [("v6", "PASSWORD_ERROR"), ("v5", "401")])
def test_a_failed_login_is_reported_with_the_box_code(
    firmware, code, boxes, bridge_factory, tmp_path
):
    box = boxes(firmware, devices=1)
    entry = box_entry(box, username="admin", password="s3cret-wrong")
    bridge = bridge_factory(bridge_config(tmp_path, [entry]), RECORDER)
    health = wait_for(
        lambda: (h := bridge.health()["boxes"]["lobby"])["last_error"] and h, what="reported"
    )
    assert "login failed" in health["last_error"] and f"error {code}" in health["last_error"]
    assert box.subscriptions == []
    assert "s3cret-wrong" not in bridge.logs() and "s3cret-wrong" not in json.dumps(health)
