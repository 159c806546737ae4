"""Shared parts for the hostile-input, fault and security tests.

A bridge here is always a real process; these helpers only build its config, craft the
nasty inputs, and check the invariants every hostile request must keep.
"""

from __future__ import annotations

import json
import socket
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import requests

RECORDER = {"recorder": "tests.recorder:Recorder"}


def plugin_sections(tmp_path: Path, **enabled: dict[str, Any]) -> dict[str, Any]:
    """Every installed plugin off except the recorder and those named in `enabled`.

    Built from the installed entry points, so a plugin package added to the environment
    later does not change what these tests exercise.
    """
    sections: dict[str, Any] = {
        ep.name: {"enabled": False} for ep in entry_points(group="sophonfog_bridge")
    }
    sections["recorder"] = {"path": str(tmp_path / "rec.jsonl")}
    sections.update(enabled)
    return sections


def config(tmp_path: Path, http: dict[str, Any] | None = None, **enabled) -> dict[str, Any]:
    return {"plugins": plugin_sections(tmp_path, **enabled), "http": dict(http or {})}


def json_body(payload: Any) -> bytes:
    """JSON as a sloppy client writes it: NaN and Infinity stay bare tokens."""
    return json.dumps(payload, allow_nan=True, ensure_ascii=False).encode()


class Checked:
    """Posts through one session and checks what every answer must be, good or bad input."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.session = requests.Session()

    def last_seq(self) -> int:
        return self.session.get(self.bridge.url + "/healthz", timeout=5).json()["spool_last_seq"]

    def post(
        self,
        body: bytes,
        content_type: str = "application/json",
        path: str = "/RealTimeEvent",
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        before = self.last_seq()
        answer = self.session.post(
            self.bridge.url + path,
            data=body,
            headers={"Content-Type": content_type, **(headers or {})},
            timeout=30,
        )
        assert self.bridge.proc.poll() is None, "the bridge died"
        assert answer.status_code < 500, (answer.status_code, answer.text[:300])
        assert answer.headers["Content-Type"].startswith("application/json"), answer.text[:300]
        reply = answer.json()
        assert isinstance(reply, dict) and "status" in reply and "message" in reply
        after = self.last_seq()
        if answer.status_code != 200:
            assert 400 <= answer.status_code < 500
            assert reply["status"] == answer.status_code
            assert after == before, "a rejected request left a spool record"
        elif reply.get("duplicate") or reply.get("dropped"):
            assert after == before
        else:
            assert reply["status"] == 0 and reply["message"] == "SUCCESS"
            assert after == before + 1, "an accepted request must be spooled exactly once"
        return answer


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def raw_connection(port: int, head: bytes) -> socket.socket:
    """A client that sends `head` (request line, headers, maybe part of a body) and stalls."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (reads EOF or a reset)."""
    sock.settimeout(0.05)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except OSError:
        return True
