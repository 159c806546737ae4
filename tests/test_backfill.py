"""Back-fill against the V5R7 / V6 box emulator, through a real accept path over a real
Bridge and its spool on disk (the process-level tests are in test_backfill_process.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sophonfog_bridge.accept import AcceptPath
from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.config import BOX_SCHEMA
from sophonfog_bridge.emulator import EmulatedBox
from sophonfog_bridge.emulator.images import blank_jpeg
from sophonfog_bridge.emulator.records import history_v5, history_v6, live_v5, live_v6
from sophonfog_bridge.event import Event
from sophonfog_bridge.host import build_host
from sophonfog_bridge.samples import jpeg
from sophonfog_bridge.sources.backfill import Backfill
from sophonfog_bridge.sources.boxquery import to_ms, usable_image


@pytest.fixture(params=["v6", "v5"])
def box(request) -> Iterator[EmulatedBox]:
    with EmulatedBox(firmware=request.param, devices=2) as emulated:
        yield emulated


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    made = Bridge({"spool": {"path": str(tmp_path / "data")}}, build_host(entry_points=False))
    yield made
    made.stop()


def box_config(box: EmulatedBox, **extra) -> dict:
    return BOX_SCHEMA(
        {
            "host": box.host,
            "name": "lobby",
            "firmware": box.firmware,
            "api_port": box.api_port,
            "ws_port": box.ws_port,
            "system_port": box.system_port,
            **extra,
        }
    )


def spooled(bridge: Bridge) -> list:
    return [Event.from_parts(r.meta, r.blobs) for r in bridge.spool.scan(0) if r.kind == "event"]


def live(bridge: Bridge, box: EmulatedBox, backfill: Backfill, **emit) -> dict:
    """An event the box client received live: recorded, and noted by the back-fill."""
    event = box.emit(**emit)
    record = live_v6(event, True, True) if box.firmware == "v6" else live_v5(event, True, True)
    assert AcceptPath(bridge).event(record, transport="websocket").recorded
    backfill.note_event(event["timestamp_ms"])
    return event


def backfill_for(box: EmulatedBox, bridge: Bridge, **extra) -> Backfill:
    made = Backfill(
        box_config(box, **extra),
        AcceptPath(bridge),
        bridge.data_dir / "state" / "boxes",
        page_size=3,
        rates={"page": 50.0, "image": 500.0},
    )
    return made


def test_socket_down_gap_is_recorded_once_as_history_with_photos(box, bridge):
    backfill = backfill_for(box, bridge)
    live(bridge, box, backfill, identity_id="20001")
    missed = [box.emit(identity_id=f"2100{n}", device=n % 2) for n in range(7)]
    counts = backfill.run_once()

    events = [e for e in spooled(bridge) if e.identity_id != "20001"]
    assert counts["recorded"] == 7 and counts["present"] == 1 and counts["pages"] == 3, counts
    assert sorted(e.identity_id for e in events) == sorted(m["identity_id"] for m in missed)
    for event in events:
        assert event.kind.value == "history" and event.transport == "query"
        source = next(m for m in missed if m["identity_id"] == event.identity_id)
        assert round(event.timestamp.timestamp() * 1000) == source["timestamp_ms"]
        assert event.spot_pic == source["images"]["scene"], "scene photo not byte-identical"
        assert event.face_pic == source["images"]["face"]
        assert event.reg_pic == source["images"]["register"]
    # The live copy's overlap was asked again and dropped; a second run adds nothing.
    again = backfill.run_once()
    assert again["recorded"] == 0 and len(spooled(bridge)) == 8, again


def test_query_copy_has_the_live_and_history_copies_id(box, bridge):
    """An event the bridge has (here: its history upload) is not recorded again."""
    accept = AcceptPath(bridge)
    backfill = backfill_for(box, bridge)
    live(bridge, box, backfill, identity_id="30000")
    event = box.emit(identity_id="30001")
    upload = history_v6 if box.firmware == "v6" else history_v5
    assert accept.event(upload(event, box.state.identity), history=True).recorded
    counts = backfill.run_once()
    assert counts["recorded"] == 0 and counts["present"] == 2, counts
    assert [e.identity_id for e in spooled(bridge)] == ["30000", "30001"]


def test_mark_persists_and_a_first_run_owes_nothing(box, bridge):
    box.emit(identity_id="40001", timestamp_ms=int(time.time() * 1000) - 3_600_000)
    backfill = backfill_for(box, bridge)
    assert backfill.run_once() == {"note": "first run: nothing owed"}
    backfill._flush()
    path = bridge.data_dir / "state" / "boxes" / "lobby.json"
    stored = json.loads(path.read_text())
    assert stored["owed_from_ms"] is None and stored["newest_ms"] > time.time() * 1000 - 5000
    # A new Backfill (the bridge restarted) reads it and asks only for the gap.
    box.emit(identity_id="40002")
    counts = backfill_for(box, bridge).run_once()
    assert counts["recorded"] == 1
    assert [e.identity_id for e in spooled(bridge)] == ["40002"]


def test_gap_is_bounded_by_backfill_max_h(box, bridge, caplog):
    now = int(time.time() * 1000)
    backfill = backfill_for(box, bridge, backfill_max_h=1)
    backfill.note_event(now - 5 * 3_600_000)
    box.emit(identity_id="50001", timestamp_ms=now - 2 * 3_600_000)  # beyond the bound
    box.emit(identity_id="50002", timestamp_ms=now - 1_800_000)
    with caplog.at_level(logging.INFO, logger="sophonfog_bridge.sources.backfill"):
        counts = backfill.run_once()
    assert counts["recorded"] == 1
    assert [e.identity_id for e in spooled(bridge)] == ["50002"]
    assert "more than backfill_max_h ago" in caplog.text
    assert "back-fill lobby: page 1/1, 1 recorded" in caplog.text


def test_an_old_gap_is_deduplicated_against_the_spool(box, tmp_path):
    """Past the dedup window (which counts from arrival) the spool itself is asked."""
    config = {"spool": {"path": str(tmp_path / "data"), "dedup_window_s": 0}}
    bridge = Bridge(config, build_host(entry_points=False))
    try:
        backfill = backfill_for(box, bridge)
        first = box.emit(identity_id="60001")
        backfill.note_event(first["timestamp_ms"] - 60_000)
        assert backfill.run_once()["recorded"] == 1
        backfill.mark.owe(first["timestamp_ms"] - 60_000)
        counts = backfill.run_once()
        assert counts == {**counts, "recorded": 0, "present": 1}
        assert len(spooled(bridge)) == 1
    finally:
        bridge.stop()


def test_a_box_that_fails_leaves_the_gap_owed(bridge, tmp_path):
    box = EmulatedBox(firmware="v6").start()
    backfill = backfill_for(box, bridge)
    start = int(time.time() * 1000) - 60_000
    backfill.note_event(start)
    box.emit(identity_id="70001")
    box.stop()
    with pytest.raises(Exception, match="cannot reach"):
        backfill.run_once()
    assert backfill.mark.owed_from_ms == start - 2000
    box.start()
    try:
        backfill.note_event(int(time.time() * 1000))  # a live event after the reconnect
        assert backfill.run_once()["recorded"] == 1, "the owed gap was forgotten"
    finally:
        box.stop()


def test_times_by_magnitude_and_unusable_images():
    assert to_ms(1628066406.608026) == 1628066406608
    assert to_ms("1628066406608") == 1628066406608
    assert to_ms(1607430334) == 1607430334000
    assert to_ms(None) is None and to_ms("x") is None
    assert not usable_image(blank_jpeg()), "V6's blank stand-in is no photo"
    assert not usable_image(b"\xff\xd8\xff" + b"\0" * 50)
    assert not usable_image(b'{"error": "x"}' * 20)
    assert usable_image(jpeg(96, 72, seed=3))
