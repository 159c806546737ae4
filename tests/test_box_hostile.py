"""Hostile frames on a box's websocket, against one real bridge process (snapshots, mqtt on).

Whatever a frame holds, the socket stays up (no reconnect), the bridge keeps working, no
file lands outside the snapshot folder and no topic outside the bridge's base topic (or
the discovery prefix); a valid event still arrives after all of it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sophonfog_bridge.emulator import EmulatedBox
from sophonfog_bridge.emulator.records import live_v6

from .box_helpers import box_entry, connected
from .conftest import BridgeProcess, Mosquitto, wait_for
from .hostile_support import config, files_under
from .mqtt_tap import Tap
from .recorder import read_lines
from .test_hostile import HOSTILE_TEXT, JSON_VALUES

BASE = "sfbwshostile"
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
V6_FIELDS = [
    "event_id",
    "timestamp",
    "identity_id",
    "identity_name",
    "user_type",
    "score",
    "media_device_ip",
    "media_device_id",
    "media_device_type",
    "register_image",
    "recognize_face_image",
    "recognize_face_attr",
    "reg_pic",
]


class Socket:
    def __init__(self, root: Path, box: EmulatedBox, bridge: BridgeProcess, tap: Tap):
        self.root, self.box, self.bridge, self.tap = root, box, bridge, tap
        self.snaps = root / "work" / "snaps"
        self.template = box.emit("employee")  # a valid record to spoil, as the box sent it

    def send(self, record: object) -> None:
        frame = json.dumps(record, allow_nan=True, ensure_ascii=False)
        assert self.box.send_raw(frame) == 1, "the bridge's socket is gone"

    def outside_files(self) -> set[Path]:
        own = {self.bridge.config_path, self.bridge.log_path, self.root / "rec.jsonl"}
        spool = Path(self.bridge.config["spool"]["path"])
        return {
            p
            for p in files_under(self.root)
            if p not in own and not p.is_relative_to(spool) and not p.is_relative_to(self.snaps)
        }

    def stray_topics(self) -> set[str]:
        allowed = (f"{BASE}/", "homeassistant/")
        return {m.topic for m in self.tap.matching(lambda m: not m.topic.startswith(allowed))}


def v6_record(box: EmulatedBox, **changes) -> dict:
    event = box.events[-1]
    record = live_v6(event, True, True)
    record.update(changes)
    return record


@pytest.fixture(scope="module")
def sock(tmp_path_factory):
    root = tmp_path_factory.mktemp("wshostile")
    broker = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    tap = Tap("127.0.0.1", broker.port)
    box = EmulatedBox(firmware="v6", devices=1).start()
    work = root / "work"
    work.mkdir()
    cfg = config(
        root,
        http={"max_body_mb": 2, "max_image_kb": 512},
        snapshots={"path": str(work / "snaps"), "save_face": True},
        mqtt={"host": "127.0.0.1", "port": broker.port, "base_topic": BASE},
    )
    cfg["boxes"] = [box_entry(box)]
    bridge = BridgeProcess(work, cfg, {"recorder": "tests.recorder:Recorder"}).start()
    wait_for(lambda: connected(bridge), 10, what="box connected")
    wait_for(lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 10, what="mqtt up")
    yield Socket(root, box, bridge, tap)
    assert bridge.stop() == 0
    box.stop()
    tap.close()
    broker.stop()


@HYPOTHESIS
@given(field=st.sampled_from(V6_FIELDS), value=JSON_VALUES, n=st.integers(0, 10**9))
def test_any_value_in_any_field(sock, field, value, n):
    sock.send(v6_record(sock.box, **{"identity_id": f"w{n}", field: value}))


@HYPOTHESIS
@given(name=HOSTILE_TEXT, identity=HOSTILE_TEXT, device=HOSTILE_TEXT, ip=HOSTILE_TEXT)
def test_hostile_names_and_devices(sock, name, identity, device, ip):
    sock.send(
        v6_record(
            sock.box,
            identity_name=name,
            identity_id=identity,
            media_device_id=device,
            media_device_ip=ip,
            timestamp=int(time.time() * 1000),
        )
    )


@HYPOTHESIS
@given(frame=st.binary(max_size=2000) | st.text(max_size=2000))
def test_arbitrary_frames(sock, frame):
    assert sock.box.send_raw(frame) == 1


def test_after_all_of_it_the_socket_is_the_same_and_nothing_escaped(sock):
    # Runs last in this module: every frame above went over the one socket.
    sent = sock.box.emit("visitor")
    recorded = sock.root / "rec.jsonl"

    def arrived():
        return any(line.get("identity_id") == sent["identity_id"] for line in read_lines(recorded))

    wait_for(arrived, 20, what="a valid event after the hostile frames")
    wait_for(sock.bridge.drained, 60, what="every plugin caught up")
    # Many of the spoiled records were still events: the plugins were exercised too.
    assert len([line for line in read_lines(recorded) if line["record"] == "event"]) > 30
    health = connected(sock.bridge)
    assert health is not None and health["reconnects"] == 0
    assert len(sock.box.subscriptions) == 1
    assert sock.outside_files() == set()
    assert sock.stray_topics() == set()
    assert "Traceback" not in sock.bridge.logs()
