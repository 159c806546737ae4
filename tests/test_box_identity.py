"""One box, one Home Assistant device: the live events and the link sensor name a V5/V6 box by
its config name, its history uploads and status pushes by its licence or serial. The bridge
learns those from the box's API and names every record by the config name (real bridge
process, real Mosquitto, the emulated box)."""

from __future__ import annotations

import json

import pytest

from sophonfog_bridge.emulator import EmulatedBox

from .box_helpers import RECORDER, box_entry, bridge_config, connected, recorded
from .conftest import wait_for
from .mqtt_tap import Tap

DISCOVERY = "homeassistant/device/sophonfog_sophonfog_"
# Where each firmware is told to POST (V5 names no capture-device status key: none).
PUSH_KEYS = {
    "v6": {
        "HISTORY_EVENT_UPLOAD_URL": "{}/EventServer/api/SophonFogHistoryEvent",
        "MEDIA_DEVICE_MONITOR_URL": "{}/DeviceStatus",
    },
    "v5": {"HISTORY_UPLOAD_EVENT_URL": "{}/EventServer/api/SophonFogHistoryEvent"},
}


def discovered(tap: Tap, kind: str) -> set[str]:
    """The ids of the HA devices of this kind (`box`, `dev`) the bridge announced."""
    prefix = DISCOVERY + kind + "_"
    return {
        m.topic[len(prefix) : -len("/config")]
        for m in tap.matching(lambda m: m.topic.startswith(prefix) and m.payload)
    }


@pytest.mark.parametrize("firmware", ["v6", "v5"])
def test_live_event_upload_and_status_push_land_on_one_box_device(
    firmware, bridge_factory, tmp_path, mosquitto
):
    tap = Tap(mosquitto.host, mosquitto.port)
    box = EmulatedBox(firmware, devices=1, push_period=0.3).start()
    try:
        mqtt = {"host": mosquitto.host, "port": mosquitto.port}
        entry = box_entry(box, backfill=False)
        bridge = bridge_factory(bridge_config(tmp_path, [entry], mqtt=mqtt), RECORDER)
        wait_for(lambda: connected(bridge), what="box connected")
        live = box.emit(identity_id="70001")
        wait_for(lambda: recorded(tmp_path), what="the live event")
        # An event made while the socket is down reaches the bridge only as an upload.
        box.stop_socket()
        wait_for(lambda: not connected(bridge), what="the link down")
        missed = box.emit(identity_id="70002")
        box.set_config({k: v.format(bridge.url) for k, v in PUSH_KEYS[firmware].items()})
        box.state.settings.set_monitor([bridge.url + "/DeviceStatus"], 1)
        wait_for(lambda: box.history_cursor == 2, 15, what="both uploads")
        wait_for(
            lambda: {u["kind"] for u in box.uploads if u["ok"]} >= {"history", "system_status"},
            15,
            what="a system status push",
        )
        box.start_socket()
        wait_for(lambda: connected(bridge), 15, what="box connected again")
        wait_for(bridge.drained, 15, what="every plugin caught up")

        events = {e["identity_id"]: e for e in recorded(tmp_path)}
        assert events[live["identity_id"]]["box"] == "lobby"
        assert events[missed["identity_id"]]["box"] == "lobby"
        assert events[missed["identity_id"]]["kind"] == "history"
        statuses = recorded(tmp_path, "box_status")
        assert statuses and {s["box"] for s in statuses} == {"lobby"}
        history = wait_for(
            lambda: [
                json.loads(m.text) for m in tap.matching(lambda m: m.topic.endswith("/history"))
            ],
            what="the upload on MQTT",
        )
        assert [h["box"] for h in history] == ["lobby"]
        wait_for(lambda: tap.on("sophonfog/box/lobby/status"), what="the box health on MQTT")
        assert discovered(tap, "box") == {"lobby"}, "one box shows as several HA devices"
        assert discovered(tap, "dev") == {box.devices[0].id}, "one camera, several HA devices"
    finally:
        tap.close()
        box.stop()
