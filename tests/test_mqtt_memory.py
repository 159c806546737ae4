"""The mqtt plugin's memory (newest live event per device, each box's status) on real files,
and through a real bridge that is killed."""

from __future__ import annotations

import time
from pathlib import Path

from sophonfog_bridge.plugins.mqtt.memory import COMPACT_EVERY, Memory

from sophonfog_bridge import samples
from sophonfog_bridge.wire import parse_status

from .conftest import wait_for
from .mqtt_tap import Tap
from .test_uploads import BASE, LIVE, SCENE, UPLOAD, live_v6, upload_v6


def test_every_change_outlives_a_crash_and_a_torn_line_costs_only_itself(tmp_path: Path):
    path = tmp_path / "state" / "memory.json"
    memory = Memory(path)
    memory.load()
    for n in range(5):
        memory.note_event(f"dev{n % 2}", f"event{n}")
    status = parse_status(samples.status_payload("AKOPKKKKK", 2))
    memory.note_box(status)
    # No close(): the process died. A crash mid-write leaves at most a torn last line.
    with open(memory.journal, "ab") as journal:
        journal.write(b'["e","dev0","event9')

    again = Memory(path)
    again.load()
    assert again.latest == {"dev0": "event4", "dev1": "event3"}
    assert list(again.latest) == ["dev1", "dev0"]  # the newest last, as before the crash
    assert again.boxes["AKOPKKKKK"].sub_devices == status.sub_devices
    # Loading folded the journal into the snapshot: a second start reads the same.
    assert memory.journal.read_bytes() == b""
    third = Memory(path)
    third.load()
    assert third.latest == again.latest and set(third.boxes) == {"AKOPKKKKK"}


def test_the_journal_stays_small(tmp_path: Path):
    memory = Memory(tmp_path / "memory.json")
    memory.load()
    for n in range(COMPACT_EVERY * 2 + 10):
        memory.note_event("dev", f"event{n}")
    lines = memory.journal.read_bytes().count(b"\n")
    assert lines < COMPACT_EVERY
    memory.close()
    assert memory.journal.read_bytes() == b""
    again = Memory(tmp_path / "memory.json")
    again.load()
    assert again.latest == {"dev": f"event{COMPACT_EVERY * 2 + 9}"}


def test_after_a_kill_a_late_completion_of_an_older_event_stays_off_the_photo(
    bridge_factory, tmp_path, mosquitto
):
    """Killed right after the newest live event went out: the memory still knows it, so
    the older event's upload does not replace the photo, and the newest one's does."""
    tap = Tap(mosquitto.host, mosquitto.port)
    others = ("door_relay", "snapshots", "syslog")
    config = {
        "bridge_id": "sophonfog",
        "plugins": {
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            **{name: {"enabled": False} for name in others},
        },
    }
    bridge = bridge_factory(config, workdir=tmp_path / "bridge")
    ts = int(time.time() * 1000)
    assert bridge.post(LIVE, live_v6("40001", ts)).ok
    assert bridge.post(LIVE, live_v6("40002", ts + 5000)).ok
    wait_for(lambda: len(tap.on(BASE + "/event")) == 2, 10, what="both live events")
    wait_for(bridge.drained, 10, what="the mqtt plugin done")
    bridge.kill()

    bridge.start()
    assert bridge.post(UPLOAD, upload_v6("40001", ts)).json().get("completes") is True
    wait_for(bridge.drained, 10, what="the older completion handled")
    assert tap.on(BASE + "/snapshot") == []
    assert bridge.post(UPLOAD, upload_v6("40002", ts + 5000)).json().get("completes") is True
    wait_for(lambda: tap.on(BASE + "/snapshot"), 10, what="the newest event's scene")
    assert [m.payload for m in tap.on(BASE + "/snapshot")] == [SCENE]
    tap.close()
