"""Real parts for the door_relay tests: a relay HTTP server, a fake box API, helper plugins.

`RelayServer` is a real `ThreadingHTTPServer` on 127.0.0.1 that answers like the device
whose path is asked (Shelly Gen1/Gen2, Tasmota, ESPHome, Home Assistant, the SophonFog
box) and records every request with the time it arrived. With a `gate` it holds each
request until the test sets the gate, and with `hang_up` it then closes the connection
without an answer (a relay that got the command but whose reply was lost). Remote openings
go through the real mqtt plugin: `open_buttons` reads the "Open door" buttons it offers
Home Assistant.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import voluptuous as vol

from sophonfog_bridge import hookimpl


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.perf_counter() when the request line arrived

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    def json(self):
        return json.loads(self.body)


def device_answer(seen: Seen) -> tuple[int, bytes]:
    """What the real device documents as its answer to this request."""
    route = seen.route
    if route.startswith("/relay/"):
        timer = float(seen.query.get("timer", ["0"])[0])
        body = {"ison": True, "has_timer": timer > 0, "timer_duration": timer, "source": "http"}
        return 200, json.dumps(body).encode()
    if route == "/rpc":
        call = seen.json()
        return 200, json.dumps(
            {"id": call["id"], "src": "shellyplus1-test", "result": {"was_on": False}}
        ).encode()
    if route == "/cm":
        command = seen.query["cmnd"][0]
        name, _, value = command.partition(" ")
        if name.lower().startswith("pulsetime"):
            return 200, json.dumps({name: {"Set": int(value), "Remaining": 0}}).encode()
        if name.lower().startswith("power"):
            return 200, json.dumps({name.upper(): value.upper()}).encode()
        return 200, b'{"Command":"Unknown"}'
    if route.startswith("/button/") and route.endswith("/press"):
        return 200, b""
    if route.startswith("/api/services/"):
        return 200, b"[]"
    if route == "/SophonFogSys/api/EventAction":
        return 200, b'{"status": 0, "message": "SUCCESS"}'
    return 404, b"not found"


class RelayServer:
    def __init__(
        self,
        delay_s: float = 0.0,
        status: int | None = None,
        digest: tuple[str, str] | None = None,
        body: bytes | None = None,
        gate: threading.Event | None = None,
        hang_up: bool = False,
    ):
        self.requests: list[Seen] = []
        self.delay_s = delay_s
        self.gate = gate
        self.hang_up = hang_up
        self.status = status
        self.body = body  # answer this instead of the device's documented answer
        self.digest = digest  # (username, password): demand SHA-256 digest auth like Shelly Gen2
        self.nonce = "a1b2c3d4e5"
        self.realm = "shellyplus1-test"
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                at = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers), body, at)
                if owner.digest and not owner._digest_ok(seen):
                    challenge = (
                        f'Digest qop="auth", realm="{owner.realm}", '
                        f'nonce="{owner.nonce}", algorithm=SHA-256'
                    )
                    self._reply(401, b"", {"WWW-Authenticate": challenge})
                    return
                with owner._lock:
                    owner.requests.append(seen)
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                if owner.gate is not None:
                    owner.gate.wait(30)
                if owner.hang_up:
                    self.close_connection = True
                    return
                code, answer = device_answer(seen)
                answer = owner.body if owner.body is not None else answer
                self._reply(owner.status or code, answer, {"Content-Type": "application/json"})

            def _reply(self, code, body, headers):
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bridge gave up waiting: that is what the slow-relay test wants

            do_GET = do_POST = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _digest_ok(self, seen: Seen) -> bool:
        header = seen.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        p = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header)}

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        user, password = self.digest
        ha1 = h(f"{user}:{self.realm}:{password}")
        ha2 = h(f"{seen.method}:{p.get('uri')}")
        want = h(f"{ha1}:{self.nonce}:{p.get('nc')}:{p.get('cnonce')}:auth:{ha2}")
        return p.get("username") == user and p.get("response") == want

    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FileRelay:
    """A user backend: appends one line per pulse to a file (the `door_backends` hook)."""

    config_schema = vol.Schema({vol.Required("path"): str})

    def __init__(self, cfg):
        self.path = Path(cfg["path"])

    def describe(self):
        return f"file {self.path.name}"

    def pulse(self, pulse):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{pulse.door} {pulse.pulse_s} {pulse.source}\n")
        return "written"


class UserBackends:
    @hookimpl
    def door_backends(self):
        return {"file_relay": FileRelay}


def mqtt_section(broker) -> dict:
    """The real mqtt plugin's config for a test broker."""
    return {"host": broker.host, "port": broker.port, "rediscovery_delay_s": 0.2}


def open_buttons(tap) -> dict[str, tuple[str, str]]:
    """The "Open door" buttons Home Assistant discovered: door -> (command topic, payload)."""
    found: dict[str, tuple[str, str]] = {}
    for message in tap.matching(lambda m: m.topic.startswith("homeassistant/device/")):
        if not message.payload:
            continue
        for cmp in json.loads(message.payload)["cmps"].values():
            if cmp["platform"] == "button":
                found[cmp["payload_press"]] = (cmp["command_topic"], cmp["payload_press"])
    return found


def access_messages(tap, door: str, base: str = "sophonfog") -> list[dict]:
    """Door decisions the mqtt plugin published for a decision without a capture device."""
    return [json.loads(m.payload) for m in tap.on(f"{base}/door/{door}/access")]
