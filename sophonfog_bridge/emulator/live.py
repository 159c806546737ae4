"""The real-time websocket (`ws://box:5679`): one subscription per socket, then pushed records."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger("sophonfog_bridge.emulator.live")

DIALECTS = {
    "v6": ("with_face_image", "with_register_image", "media_device_ids"),
    "v5": ("need_face", "need_register", "event_list"),
}


@dataclass(frozen=True)
class Subscription:
    """What one client asked for. `problem` says why it gets nothing, when it does."""

    devices: frozenset[str] = frozenset()
    with_face: bool = False
    with_register: bool = False
    problem: str | None = None


def parse_subscription(message: Any, firmware: str) -> Subscription:
    """The client's first message in this firmware's dialect; anything else subscribes to none."""
    face_key, register_key, list_key = DIALECTS[firmware]
    if not isinstance(message, dict):
        return Subscription(problem="the subscription is not a JSON object")
    other = DIALECTS["v5" if firmware == "v6" else "v6"]
    if list_key not in message:
        if any(key in message for key in other):
            return Subscription(problem=f"{firmware.upper()} box got the other dialect's keys")
        return Subscription(problem=f"no {list_key!r} in the subscription")
    ids = message[list_key]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return Subscription(problem=f"{list_key!r} is not a list of device id strings")
    flags = [message.get(face_key, False), message.get(register_key, False)]
    if not all(isinstance(flag, bool) for flag in flags):
        return Subscription(problem=f"{face_key!r} and {register_key!r} must be true or false")
    # The docs do not say whether an empty list means all devices or none; this box reads none.
    problem = None if ids else f"empty {list_key!r}: the emulator pushes nothing"
    return Subscription(frozenset(ids), flags[0], flags[1], problem)


class _Client:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.subscription: Subscription | None = None
        self.lock = threading.Lock()

    def send(self, frame: str | bytes) -> bool:
        try:
            with self.lock:
                self.connection.send(frame)
            return True
        except (ConnectionClosed, OSError):
            return False


class LiveServer:
    """The websocket server. `render(event, subscription)` builds the record for one client."""

    def __init__(
        self,
        firmware: str,
        render: Callable[[dict[str, Any], Subscription], dict[str, Any]],
        binary_frames: bool = False,
    ) -> None:
        self.firmware = firmware
        self.render = render
        self.binary_frames = binary_frames
        self.subscriptions: list[Any] = []
        self.later_messages: list[Any] = []
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int) -> None:
        # No pings from the box: the docs say it sends nothing after the socket opens.
        self._server = serve(
            self._handle, host, port, ping_interval=None, compression=None, max_size=2**20
        )
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"emulator-ws-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._clients)

    def _handle(self, connection: ServerConnection) -> None:
        client = _Client(connection)
        with self._lock:
            self._clients.add(client)
        try:
            self._subscribe(client, connection.recv())
            # Changing the subscription on an open socket is not documented: later messages
            # are kept for tests to look at and otherwise ignored.
            for message in connection:
                self.later_messages.append(message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.discard(client)

    def _subscribe(self, client: _Client, frame: str | bytes) -> None:
        try:
            message: Any = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            message = frame
        subscription = parse_subscription(message, self.firmware)
        client.subscription = subscription
        self.subscriptions.append(message)
        if subscription.problem:
            log.warning("subscription %r: %s", frame, subscription.problem)

    def push(self, event: dict[str, Any]) -> int:
        """Send the event to every client subscribed to its device; how many got it."""
        with self._lock:
            clients = [c for c in self._clients if c.subscription is not None]
        sent = 0
        for client in clients:
            subscription = client.subscription
            if subscription is None or event["device_id"] not in subscription.devices:
                continue
            text = json.dumps(self.render(event, subscription), ensure_ascii=False)
            sent += client.send(text.encode() if self.binary_frames else text)
        return sent

    def send_raw(self, frame: str | bytes) -> int:
        """Send this frame as is (str: text frame, bytes: binary) to every open socket."""
        with self._lock:
            clients = list(self._clients)
        return sum(client.send(frame) for client in clients)

    def drop(self, code: int | None = None) -> int:
        """Close every client socket: abruptly (no close frame) or with this close code."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            if code is None:
                # Shutting the socket down (not closing it under websockets' reader thread)
                # ends the TCP connection with no close frame, like a box losing power.
                with contextlib.suppress(OSError):
                    client.connection.socket.shutdown(socket.SHUT_RDWR)
            else:
                client.connection.close(code)
        return len(clients)
