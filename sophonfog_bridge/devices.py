"""Capture devices and boxes the bridge has seen, remembered on disk across restarts.

Home Assistant entities for a gate must exist before anyone walks through it, so the
mqtt plugin announces every remembered device at startup, not only after an event.

Anyone who may post can name new devices, so the memory is bounded (the devices changed
least recently go first) and the file is written by a thread of its own: a request never
waits for a rewrite of it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from .event import BoxStatus, DeviceType, Event, SubDevice
from .files import atomic_write

log = logging.getLogger(__name__)

MAX_DEVICES = 1024
WRITE_DELAY_S = 0.5


def device_record(event: Event) -> dict[str, Any]:
    """What an event says of its capture device, in the shape the device memory keeps."""
    return {
        "device": event.device,
        "ep_id": event.ep_id,
        "device_ip": event.device_ip,
        "device_type": event.device_type.value,
        "box": event.box,
        "name": event.device_name,
    }


class KnownDevices:
    def __init__(self, path: str | os.PathLike, max_devices: int = MAX_DEVICES):
        self.path = Path(path)
        self.max_devices = max_devices
        self._lock = threading.Lock()
        self._devices: OrderedDict[str, dict[str, Any]] = OrderedDict(self._read())
        self._by_ip = {
            d["device_ip"]: d["ep_id"]
            for d in self._devices.values()
            if d.get("ep_id") and d.get("device_ip")
        }
        self._wake = threading.Condition()
        self._changed = False
        self._closed = False
        self._writer: threading.Thread | None = None
        self.forgotten = 0

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("devices: cannot read %s (%s); starting empty", self.path, err)
            return {}
        if not isinstance(data, dict):
            log.warning("devices: %s is not a JSON object; starting empty", self.path)
            return {}
        entries = [(k, v) for k, v in data.items() if isinstance(v, dict)]
        return dict(entries[-self.max_devices :])

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._devices.values()]

    def ep_id_for_ip(self, ip: str) -> str | None:
        """The `<dev_sno>__<ip>` id a heartbeat or history event gave this camera IP."""
        return self._by_ip.get(ip)

    def observe_event(self, event: Event) -> bool:
        return self._merge(event.device, device_record(event))

    def observe_status(self, status: BoxStatus) -> bool:
        changed = False
        for sub in status.sub_devices:
            ip = sub.ip or (sub.ep_id.split("__", 1)[1] if "__" in sub.ep_id else None)
            changed |= self._merge(
                sub.ep_id,
                {
                    "device": sub.ep_id,
                    "ep_id": sub.ep_id,
                    "device_ip": ip,
                    "device_type": sub.device_type.value,
                    "box": status.box,
                    "name": sub.name,
                    "location": sub.location,
                },
            )
        return changed

    def observe_listed(self, box: str, devices: list[SubDevice]) -> bool:
        """A V5/V6 box's device list: names its devices (HA shows the name), no status."""
        changed = False
        for sub in devices:
            changed |= self._merge(
                sub.ep_id,
                {
                    "device": sub.ep_id,
                    "device_ip": sub.ip,
                    "device_type": sub.device_type.value,
                    "box": box,
                    "name": sub.name,
                },
            )
        return changed

    def _merge(self, key: str, info: dict[str, Any]) -> bool:
        """Store what is new; only a real change wakes the writer."""
        with self._lock:
            current = self._devices.get(key, {})
            merged = {**current}
            for name, value in info.items():
                if value in (None, "") or (
                    name == "device_type" and value == DeviceType.UNKNOWN.value and name in current
                ):
                    continue
                merged[name] = value
            if merged == current:
                return False
            self._devices[key] = merged
            self._devices.move_to_end(key)
            if merged.get("ep_id") and merged.get("device_ip"):
                self._by_ip[merged["device_ip"]] = merged["ep_id"]
            self._bound()
        self._wake_writer()
        return True

    def _bound(self) -> None:
        while len(self._devices) > self.max_devices:
            _, old = self._devices.popitem(last=False)
            if self._by_ip.get(old.get("device_ip")) == old.get("ep_id"):
                self._by_ip.pop(old.get("device_ip"), None)
            self.forgotten += 1
            if self.forgotten == 1 or self.forgotten % 1000 == 0:
                log.warning(
                    "devices: more than %d capture devices seen; forgot %d least recently "
                    "changed (is something posting made-up devices?)",
                    self.max_devices,
                    self.forgotten,
                )

    # ---- the writer ----------------------------------------------------------------------

    def _wake_writer(self) -> None:
        with self._wake:
            self._changed = True
            if self._writer is None and not self._closed:
                self._writer = threading.Thread(
                    target=self._write_loop, name="devices-writer", daemon=True
                )
                self._writer.start()
            self._wake.notify()

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._changed or self._closed)
                # A burst of new devices costs one rewrite, not one per device.
                self._wake.wait_for(lambda: self._closed, WRITE_DELAY_S)
                if self._closed:
                    return
            self.flush()

    def flush(self) -> None:
        """Write the file now if anything changed since the last write."""
        with self._wake:
            if not self._changed:
                return
            self._changed = False
        with self._lock:
            text = json.dumps(self._devices, ensure_ascii=False, indent=1)
        self._write(text)

    def close(self) -> None:
        """Stop the writer and write what it had not written yet."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join(5)
        self.flush()

    def _write(self, text: str) -> None:
        try:
            # No fsync: a power cut may forget the newest devices; their next event names them.
            atomic_write(self.path, text, fsync=False)
        except OSError as err:
            log.warning("devices: cannot save %s: %s", self.path, err)
