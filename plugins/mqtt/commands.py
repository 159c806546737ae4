"""Remote door openings from the HA "Open door" button, off paho's network thread.

A door plugin may take a while (relay pulse) or publish on MQTT itself (its mqtt backend
calls our `mqtt_publish`, which waits for a PUBACK at QoS 1 or 2): run in paho's thread,
either would stall or deadlock the connection, so commands queue here and run in their own
thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class DoorCommands:
    def __init__(
        self,
        bridge: Any,
        device_for_slug: Callable[[str], str | None],
        doors: Callable[[], dict[str, list[str]]],
    ):
        self.bridge = bridge
        self._device_for_slug = device_for_slug
        self._doors = doors
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mqtt-commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)

    def submit(self, dev_slug: str, payload: bytes) -> None:
        self._queue.put((dev_slug, payload.decode("utf-8", "replace").strip()))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._open(*item)
            except Exception:
                log.exception("mqtt: remote door command failed")

    def _open(self, dev_slug: str, door: str) -> None:
        device = self._device_for_slug(dev_slug)
        allowed = self._doors().get(device or "", [])
        if door not in allowed:
            log.warning("mqtt: open %r on %r refused: not a remote door there", door, dev_slug)
            return
        log.info("mqtt: remote open of door %s from device %s", door, device)
        for result in self.bridge.call("open_door", door=door, source="mqtt"):
            if result.error is not None:
                log.warning("mqtt: open_door in %s failed: %s", result.plugin, result.error)
