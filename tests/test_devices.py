"""The bridge's memory of capture devices: bounded, and written off the request path."""

from __future__ import annotations

import json
import threading

from sophonfog_bridge import samples
from sophonfog_bridge.devices import KnownDevices
from sophonfog_bridge.wire import parse_event, parse_status

from .conftest import wait_for


def _event(ip: str):
    return parse_event(samples.event_payload("v2r2", ep_id=f"BOX__{ip}"))


def test_made_up_devices_cannot_grow_it_without_bound(tmp_path):
    devices = KnownDevices(tmp_path / "devices.json", max_devices=10)
    devices.observe_status(parse_status(samples.status_payload("BOX", devices=1)))
    for n in range(50):
        devices.observe_event(_event(f"10.9.0.{n}"))
    devices.close()
    kept = json.loads((tmp_path / "devices.json").read_text())
    assert len(kept) == 10 and len(devices.all()) == 10
    # The newest survive; the heartbeat's camera was changed least recently and went first.
    assert "10.9.0.49" in kept and "BOX__192.168.1.101" not in kept
    assert devices.ep_id_for_ip("192.168.1.101") is None
    assert len(KnownDevices(tmp_path / "devices.json", max_devices=10).all()) == 10


def test_a_new_device_is_written_by_the_writer_thread(tmp_path, monkeypatch):
    devices = KnownDevices(tmp_path / "devices.json")
    writers: list[str] = []
    real_write = devices._write

    def noting(text: str) -> None:
        writers.append(threading.current_thread().name)
        real_write(text)

    monkeypatch.setattr(devices, "_write", noting)
    for n in range(20):
        devices.observe_event(_event(f"10.9.1.{n}"))
    wait_for(lambda: (tmp_path / "devices.json").exists(), what="devices.json written")
    wait_for(lambda: len(json.loads((tmp_path / "devices.json").read_text())) == 20)
    devices.close()
    # One burst, few rewrites, none of them on the thread that observed the events.
    assert writers and len(writers) < 20
    assert threading.current_thread().name not in writers[:-1]


def test_close_writes_what_the_writer_had_not(tmp_path):
    devices = KnownDevices(tmp_path / "devices.json")
    devices.observe_event(_event("10.9.2.1"))
    devices.close()
    assert "10.9.2.1" in json.loads((tmp_path / "devices.json").read_text())


def test_a_corrupt_file_starts_empty(tmp_path):
    (tmp_path / "devices.json").write_text("[1, 2")
    assert KnownDevices(tmp_path / "devices.json").all() == []
    (tmp_path / "devices.json").write_text("[1, 2]")
    assert KnownDevices(tmp_path / "devices.json").all() == []
