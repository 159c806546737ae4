"""Capture devices and boxes the bridge has seen, remembered on disk across restarts.

Home Assistant entities for a gate must exist before anyone walks through it, so the
mqtt plugin announces every remembered device at startup, not only after an event.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .event import BoxStatus, DeviceType, Event

log = logging.getLogger(__name__)


class KnownDevices:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._devices: dict[str, dict[str, Any]] = {}
        try:
            self._devices = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as err:
            log.warning("devices: cannot read %s (%s); starting empty", self.path, err)
        self._by_ip = {
            d["device_ip"]: d["ep_id"]
            for d in self._devices.values()
            if d.get("ep_id") and d.get("device_ip")
        }

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._devices.values()]

    def ep_id_for_ip(self, ip: str) -> str | None:
        """The `<dev_sno>__<ip>` id a heartbeat or history event gave this camera IP."""
        return self._by_ip.get(ip)

    def get(self, device: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._devices.get(device)
            return dict(found) if found else None

    def observe_event(self, event: Event) -> bool:
        return self._merge(
            event.device,
            {
                "device": event.device,
                "ep_id": event.ep_id,
                "device_ip": event.device_ip,
                "device_type": event.device_type.value,
                "box": event.box,
            },
        )

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

    def _merge(self, key: str, info: dict[str, Any]) -> bool:
        """Store what is new; only a real change costs a file write."""
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
            if merged.get("ep_id") and merged.get("device_ip"):
                self._by_ip[merged["device_ip"]] = merged["ep_id"]
            self._write(json.dumps(self._devices, ensure_ascii=False, indent=1))
        return True

    def _write(self, text: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".devices-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except OSError as err:
            log.warning("devices: cannot save %s: %s", self.path, err)
