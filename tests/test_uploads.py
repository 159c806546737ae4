"""V5/V6 history uploads and status pushes through a real bridge, broker, relay and folder.

One recognition reaches the bridge live and again as the box's history upload: the live
copy acts once (HA event, door pulse), the upload only completes it with the scene photo
the live V6 record never carries. An upload the bridge never saw live is history.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from sophonfog_bridge.plugins.mqtt.topics import slug

from sophonfog_bridge import samples
from sophonfog_bridge.wire import event_id_for

from .conftest import wait_for
from .door_relay_helpers import RelayServer
from .mqtt_tap import Tap
from .recorder import read_lines
from .test_mqtt import check_config, configs

V6_DEVICE = "fb4eb129a3d64f0a81a04a00e36547b1"
LIVE = "/RealTimeEvent"
UPLOAD = "/EventServer/api/SophonFogHistoryEvent"
SCENE = samples.jpeg(320, 240, seed=41)
FACE = samples.jpeg(64, 64, seed=42)
REG = samples.jpeg(64, 64, seed=43)
BASE = f"sophonfog/{V6_DEVICE}"


@pytest.fixture
def relay():
    server = RelayServer()
    yield server
    server.close()


def bridge_config(tmp: Path, broker, relay: RelayServer) -> dict:
    door = {
        "name": "front_gate",
        "devices": [V6_DEVICE],
        # The V6 record has no gate/panel code; the box client fills it from the device list.
        "device_types": ["unknown"],
        "cooldown_s": 0,
        "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host, "timeout_s": 1},
    }
    return {
        "bridge_id": "sophonfog",
        "plugins": {
            "mqtt": {"host": broker.host, "port": broker.port},
            "door_relay": {"enabled": True, "doors": [door]},
            "snapshots": {
                "path": str(tmp / "snaps"),
                "thumbnail_px": 64,
                "save_face": True,
                "annotate_on": "save",
            },
            "syslog": {"enabled": False},
            "recorder": {"path": str(tmp / "recorded.jsonl")},
            "attendance_csv": {"path": str(tmp / "attendance"), "timezone": "UTC"},
        },
    }


def start(bridge_factory, tmp_path, mosquitto, relay):
    tap = Tap(mosquitto.host, mosquitto.port)
    bridge = bridge_factory(
        bridge_config(tmp_path, mosquitto, relay), plugins={"recorder": "tests.recorder:Recorder"}
    )
    wait_for(lambda: [m for m in tap.on("sophonfog/status") if m.text == "online"], 10)
    return bridge, tap


def live_v6(identity_id: str, ts_ms: int) -> dict:
    record = samples.event_payload(
        "ws", ep_id=V6_DEVICE, identity_id=identity_id, timestamp_ms=ts_ms, face=FACE,
        registered=REG,
    )  # fmt: skip
    record["recognize_face_attr"] = {"box": [100, 40, 200, 160], "gender": "male"}
    return record


def upload_v6(identity_id: str, ts_ms: int) -> dict:
    return samples.v6_history(
        V6_DEVICE, identity_id, "小明", "employee", 0.95, ts_ms, SCENE, REG, FACE
    )


def dated_files(tmp: Path) -> list[Path]:
    """The event files under the dated folders, not the per-device `latest` links."""
    root = tmp / "snaps"
    return sorted(p for p in root.glob("????-??-??/*/*") if not p.name.startswith("."))


def events(tmp: Path) -> list[dict]:
    return [line for line in read_lines(tmp / "recorded.jsonl") if line["record"] == "event"]


def test_live_v6_event_then_its_upload(bridge_factory, tmp_path, mosquitto, relay):
    bridge, tap = start(bridge_factory, tmp_path, mosquitto, relay)
    ts = int(time.time() * 1000)
    first = bridge.post(LIVE, live_v6("10001", ts)).json()
    wait_for(lambda: len(relay.seen()) == 1, 10, what="the door pulse of the live copy")
    wait_for(lambda: tap.on(BASE + "/event"), 10, what="the HA event")
    wait_for(lambda: dated_files(tmp_path), 10, what="the live copy's photos")

    upload = bridge.post(UPLOAD, upload_v6("10001", ts))
    assert upload.status_code == 200, upload.text
    assert upload.json()["event_id"] == first["event_id"]
    assert upload.json().get("completes") is True
    wait_for(lambda: tap.on(BASE + "/snapshot"), 10, what="the scene on the snapshot topic")
    wait_for(bridge.drained, 10, what="every plugin done")

    # The scene, byte for byte, once on disk and once on MQTT.
    files = dated_files(tmp_path)
    scenes = [p for p in files if p.read_bytes() == SCENE]
    assert len(scenes) == 1 and scenes[0].suffix == ".jpg", files
    stem = scenes[0].stem
    names = {p.name for p in files}
    assert {f"{stem}_annotated.jpg", f"{stem}_thumb.jpg", f"{stem}_face.jpg"} <= names
    assert (scenes[0].with_name(f"{stem}_face.jpg")).read_bytes() == FACE
    snapshots = tap.on(BASE + "/snapshot")
    assert [m.payload for m in snapshots] == [SCENE]
    late = Tap(mosquitto.host, mosquitto.port, (BASE + "/snapshot",))
    retained = wait_for(lambda: late.on(BASE + "/snapshot"), 5, what="the retained scene")
    assert [(m.payload, m.retain) for m in retained] == [(SCENE, True)]
    late.close()

    # One HA event, one door pulse, no history message: the upload acted on nothing.
    assert len(tap.on(BASE + "/event")) == 1
    assert tap.on(BASE + "/history") == []
    assert len(relay.seen()) == 1
    recorded = [e for e in events(tmp_path) if e["event_id"] == first["event_id"]]
    assert [(e["kind"], e["completes"]) for e in recorded] == [
        ("realtime", False),
        ("history", True),
    ]
    assert recorded[1]["spot_pic"]["len"] == len(SCENE) and recorded[1]["face_pic"] is None

    # The status page shows the scene with the event.
    page = requests.get(bridge.url + "/status.json", timeout=5).json()
    (shown,) = [e for e in page["events"] if e["event_id"] == first["event_id"]]
    assert set(shown["images"]) >= {"face", "scene", "registered"} and shown["kind"] == "realtime"
    thumb = requests.get(f"{bridge.url}/status/image/{first['event_id']}/scene", timeout=5)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"

    # The upload again (the box retries) adds nothing: a duplicate, nothing changes.
    again = bridge.post(UPLOAD, upload_v6("10001", ts)).json()
    assert again.get("duplicate") is True and "completes" not in again
    wait_for(bridge.drained, 10, what="every plugin done")
    assert len(events(tmp_path)) == 2 and dated_files(tmp_path) == files
    assert len(tap.on(BASE + "/snapshot")) == 1 and len(relay.seen()) == 1


def test_an_upload_never_seen_live_is_history(bridge_factory, tmp_path, mosquitto, relay):
    bridge, tap = start(bridge_factory, tmp_path, mosquitto, relay)
    ts = int(time.time() * 1000)
    answer = bridge.post(UPLOAD, upload_v6("20002", ts)).json()
    assert "completes" not in answer and "duplicate" not in answer
    wait_for(lambda: tap.on(BASE + "/history"), 10, what="the upload on /history")
    wait_for(bridge.drained, 10, what="every plugin done")
    (history,) = [json.loads(m.payload) for m in tap.on(BASE + "/history")]
    assert history["event_id"] == answer["event_id"] and history["kind"] == "history"
    assert history["identity_id"] == "20002" and history["device"] == V6_DEVICE
    assert tap.on(BASE + "/event") == [] and tap.on(BASE + "/snapshot") == []
    assert relay.seen() == []
    decisions = [line for line in read_lines(tmp_path / "recorded.jsonl") if "decision" in line]
    assert decisions == []
    (recorded,) = events(tmp_path)
    assert (recorded["kind"], recorded["completes"]) == ("history", False)
    assert recorded["device_name"] == "Front door" and recorded["ir_pic"] is None
    # Recorded with every photo, and in the attendance.
    assert recorded["spot_pic"]["len"] == len(SCENE) and recorded["reg_pic"]["len"] == len(REG)
    day = time.strftime("%Y-%m-%d", time.gmtime(ts / 1000))
    with open(tmp_path / "attendance" / f"attendance-{day}.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["identity_id"] for r in rows] == ["20002"]
    assert any(p.read_bytes() == SCENE for p in dated_files(tmp_path))


def test_a_completion_survives_a_restart(bridge_factory, tmp_path, mosquitto, relay):
    """The dedup memory of photos is rebuilt from the spool: after a restart the upload
    still completes the live copy (and a second upload is still a duplicate)."""
    bridge, _ = start(bridge_factory, tmp_path, mosquitto, relay)
    ts = int(time.time() * 1000)
    first = bridge.post(LIVE, live_v6("30003", ts)).json()
    wait_for(bridge.drained, 10, what="the live copy delivered")
    assert bridge.stop() == 0
    bridge.start()
    assert bridge.post(UPLOAD, upload_v6("30003", ts)).json().get("completes") is True
    assert bridge.post(UPLOAD, upload_v6("30003", ts)).json().get("duplicate") is True
    wait_for(bridge.drained, 10, what="the completion delivered")
    kinds = [(e["kind"], e["completes"]) for e in events(tmp_path)]
    assert kinds == [("realtime", False), ("history", True)]
    assert [e["event_id"] for e in events(tmp_path)] == [first["event_id"]] * 2
    assert len(relay.seen()) == 1


def test_after_a_restart_the_completion_and_the_box_health_still_reach_mqtt(
    bridge_factory, tmp_path, mosquitto, relay
):
    """The mqtt plugin's memory (the newest event per device, each box's health) outlives a
    restart: the scene of an upload after it goes out, and a devices-only push keeps the
    health the system push gave before it."""
    bridge, tap = start(bridge_factory, tmp_path, mosquitto, relay)
    box = "AFVKV6"
    assert bridge.post("/DeviceStatus", samples.system_payload("v6", box=box)).ok
    ts = int(time.time() * 1000)
    assert bridge.post(LIVE, live_v6("30004", ts)).ok
    wait_for(bridge.drained, 10, what="the live copy delivered")
    assert bridge.stop() == 0
    bridge.start()
    assert bridge.post(UPLOAD, upload_v6("30004", ts)).json().get("completes") is True
    assert bridge.post("/DeviceStatus", samples.devices_payload("v6", box=box)).ok
    wait_for(bridge.drained, 10, what="the completion delivered")
    wait_for(lambda: tap.on(BASE + "/snapshot"), 10, what="the scene on the snapshot topic")
    assert [m.payload for m in tap.on(BASE + "/snapshot")] == [SCENE]
    state_topic = f"sophonfog/box/{slug(box)}/status"
    wait_for(lambda: len(tap.on(state_topic)) == 2, 10, what="both box states")
    state = json.loads(tap.on(state_topic)[-1].payload)
    assert state["cpu_usage"] == 31.0 and state["uptime_s"] == 9600.0, "health blanked"
    assert len(state["sub_devices"]) == 2


BOX_SENSORS = {
    "cpu_usage": ("%", None),
    "tpu_usage": ("%", None),
    "memory_usage": ("%", None),
    "disk_usage": ("%", None),
    "disk_free_gb": ("GB", "data_size"),
    "temperature": ("°C", "temperature"),
    "board_temperature": ("°C", "temperature"),
    "fan_speed_rpm": ("rpm", None),
    "uptime_s": ("s", "duration"),
}


@pytest.mark.parametrize("version", ["v5", "v6"])
def test_box_health_becomes_ha_sensors(bridge_factory, tmp_path, mosquitto, version):
    tap = Tap(mosquitto.host, mosquitto.port)
    config = {
        "bridge_id": "sophonfog",
        "plugins": {
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            **{n: {"enabled": False} for n in ("door_relay", "snapshots", "syslog")},
        },
    }
    bridge = bridge_factory(config)
    box = f"AFVK{version.upper()}"
    assert bridge.post("/DeviceStatus", samples.system_payload(version, box=box)).ok
    # The capture-device push, on the same route, must not blank the health out.
    assert bridge.post("/DeviceStatus", samples.devices_payload(version, box=box)).ok
    state_topic = f"sophonfog/box/{slug(box)}/status"
    wait_for(lambda: len(tap.on(state_topic)) == 2, 10, what="both box states")

    topic = f"homeassistant/device/sophonfog_sophonfog_box_{slug(box)}/config"
    found = wait_for(lambda: configs(tap).get(topic), 10, what="the box's discovery config")
    assert check_config(topic, found) == []
    sensors = {k: c for k, c in found["cmps"].items() if c["platform"] == "sensor"}
    for key, (unit, device_class) in BOX_SENSORS.items():
        assert sensors[key]["unit_of_measurement"] == unit, key
        assert sensors[key].get("device_class") == device_class, key
        assert sensors[key]["state_class"] == "measurement", key
        assert sensors[key]["entity_category"] == "diagnostic", key
        assert sensors[key]["state_topic"] == state_topic
    if version == "v5":
        assert sensors["external_disk_free_gb"]["unit_of_measurement"] == "GB"

    state = json.loads(tap.on(state_topic)[-1].payload)
    expected = {
        "v5": {"cpu_usage": 23.5, "tpu_usage": 12.0, "memory_usage": 46.0, "disk_usage": 25.0,
               "disk_free_gb": 21.0, "temperature": 52.0, "board_temperature": 41.0,
               "fan_speed_rpm": 0.0, "uptime_s": 118800.0, "external_disk_free_gb": 465.7},
        "v6": {"cpu_usage": 31.0, "tpu_usage": 40.0, "memory_usage": 14.8, "disk_usage": 30.0,
               "disk_free_gb": 19.6, "temperature": 55.5, "board_temperature": 43.0,
               "fan_speed_rpm": 2400.0, "uptime_s": 9600.0},
    }[version]  # fmt: skip
    assert {k: state[k] for k in expected} == expected
    assert [d["online"] for d in state["sub_devices"]] == [True, False]
    online = {f"{box}__192.168.1.101": True, f"{box}__192.168.1.102": False}
    assert state["devices_online"] == online


@pytest.mark.parametrize("firmware", ["v5", "v6"])
def test_the_emulated_boxs_pushes_land_whole(bridge_factory, tmp_path, firmware):
    """The box emulator's own history upload and status pushes, POSTed by it to the bridge."""
    from sophonfog_bridge.emulator import EmulatedBox

    config = {
        "plugins": {
            "recorder": {"path": str(tmp_path / "recorded.jsonl")},
            **{n: {"enabled": False} for n in ("mqtt", "door_relay", "snapshots", "syslog")},
        }
    }
    bridge = bridge_factory(config, plugins={"recorder": "tests.recorder:Recorder"})
    status_url = bridge.url + "/DeviceStatus"
    with EmulatedBox(firmware, devices=1, push_period=0.05) as box:
        if firmware == "v6":
            box.set_config(
                {
                    "HISTORY_EVENT_UPLOAD_URL": bridge.url + UPLOAD,
                    "MEDIA_DEVICE_MONITOR_URL": status_url,
                }
            )
            monitor = (
                "/sophon/v2/system/setsystemmonitorconfig",
                {"device_monitor_url": status_url},
            )
        else:
            box.set_config({"HISTORY_UPLOAD_EVENT_URL": bridge.url + UPLOAD})
            monitor = ("/SophonSystem/api/monitor", {"monitor_address_list": [status_url]})
        path, body = monitor
        requests.post(box.system_url + path, json={**body, "report_period": 1}, timeout=5)
        sent = box.emit("employee", device=0, identity_id="42", name="Tom", score=91.0)
        wait_for(
            lambda: [u for u in box.uploads if u["kind"] == "history" and u["ok"]],
            10,
            what="the box's history upload accepted",
        )
        wait_for(
            lambda: {u["kind"] for u in box.uploads if u["ok"]} >= {"system_status"},
            10,
            what="the box's system push accepted",
        )
    wait_for(bridge.drained, 10, what="every record delivered")
    lines = read_lines(tmp_path / "recorded.jsonl")
    (event,) = [line for line in lines if line["record"] == "event"]
    assert event["kind"] == "history" and event["identity_id"] == "42"
    # The id its live copy gets: from the camera's id, the identity and the time in ms.
    moment = datetime.fromtimestamp(sent["timestamp_ms"] / 1000, timezone.utc)
    assert event["event_id"] == event_id_for(f"id:{sent['device_id']}", "42", moment)
    if firmware == "v6":
        assert event["device"] == sent["device_id"]
    assert event["spot_pic"]["len"] == len(sent["images"]["scene"])
    assert event["face_pic"]["len"] == len(sent["images"]["face"])
    assert event["face_rect"] == dict(
        zip(("left", "top", "right", "bottom"), sent["face_box"], strict=True)
    )
    assert event["device_name"] and "feature" not in json.dumps(event)
    statuses = [line for line in lines if line["record"] == "box_status"]
    health = [s for s in statuses if "health" in s["parts"]]
    assert health and health[-1]["cpu_usage"] is not None and health[-1]["uptime_s"] is not None
