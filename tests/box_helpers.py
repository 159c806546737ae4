"""Real parts for the box-client tests: the emulated box's config entry, what the recorder
plugin saw, and TCP listeners that stand in for a box that is down or hung."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from sophonfog_bridge.emulator import EmulatedBox

from .recorder import read_lines

RECORDER = {"recorder": "tests.recorder:Recorder"}
OTHERS_OFF = {"snapshots": {"enabled": False}, "syslog": {"enabled": False}}


def box_entry(box: EmulatedBox, name: str = "lobby", **extra: Any) -> dict[str, Any]:
    """A `boxes:` entry pointing at an emulated box (firmware auto unless told)."""
    return {
        "host": box.host,
        "name": name,
        "firmware": "auto",
        "api_port": box.api_port,
        "ws_port": box.ws_port,
        "system_port": box.system_port,
        **extra,
    }


def bridge_config(tmp: Path, boxes: list[dict], **plugins: Any) -> dict[str, Any]:
    sections: dict[str, Any] = {
        "mqtt": {"enabled": False},
        **OTHERS_OFF,
        "recorder": {"path": str(tmp / "recorded.jsonl")},
    }
    sections.update(plugins)
    return {"boxes": boxes, "plugins": sections}


def recorded(tmp: Path, kind: str = "event") -> list[dict[str, Any]]:
    return [line for line in read_lines(tmp / "recorded.jsonl") if line["record"] == kind]


def connected(bridge: Any, name: str = "lobby") -> dict[str, Any] | None:
    """The box's /healthz entry once its websocket is up, else None."""
    entry = bridge.health()["boxes"].get(name)
    return entry if entry and entry["connected"] else None


class Listener:
    """A TCP port that counts connection attempts and either closes them at once
    (a box whose services are down) or holds them unanswered (a hung box)."""

    def __init__(self, hang: bool = False):
        self.hang = hang
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.attempts: list[float] = []
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.attempts.append(time.monotonic())
            if self.hang:
                self._held.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self.sock.close()
