"""The bridge's one MQTT connection: paho-mqtt 2.x in its own network thread.

paho reconnects by itself (with backoff) after `connect_async` + `loop_start`, so the
bridge starts and runs with no broker at all. Publishing waits for the broker's PUBACK;
anything short of that is `NotConnected`, which the plugin turns into "retry later".
Callbacks run in paho's network thread: each is guarded so an exception is logged and
never reaches paho, and none of them blocks (waiting for a PUBACK there would deadlock).
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger(__name__)

Message = tuple[str, "bytes | str", bool]  # topic, payload, retain

# Linux only; elsewhere `publish_many` goes one message at a time (see there why).
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
# QoS 1 messages out before waiting: a whole event (at most 7) in one go, while a long
# list (every retained photo after a reconnect) never holds more than a few packets.
WINDOW = 8


class NotConnected(Exception):
    """The broker did not take the message (down, disconnected, or no PUBACK in time)."""


def _guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            log.exception("mqtt: error in %s callback", callback.__name__)

    return run


class MqttConnection:
    def __init__(
        self,
        config: dict[str, Any],
        client_id: str,
        will_topic: str,
        subscriptions: list[str],
        on_connected: Callable[[], None],
        on_message: Callable[[mqtt.MQTTMessage], None],
        on_disconnected: Callable[[], None] = lambda: None,
    ):
        self.host = config["host"]
        self.port = config["port"]
        self.keepalive = config["keepalive"]
        self.timeout = config["publish_timeout_s"]
        self.client_id = client_id
        self.subscriptions = subscriptions
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_disconnected = on_disconnected
        self._connected = threading.Event()
        self.last_error: str | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.will_set(will_topic, "offline", qos=1, retain=True)
        if config["username"] is not None:
            client.username_pw_set(config["username"], config["password"])
        tls = config["tls"]
        if tls is not None:
            client.tls_set(
                ca_certs=tls["ca_certs"],
                certfile=tls["certfile"],
                keyfile=tls["keyfile"],
                cert_reqs=ssl.CERT_NONE if tls["insecure"] else ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(tls["insecure"])
        client.reconnect_delay_set(config["reconnect_min_s"], config["reconnect_max_s"])
        client.on_connect = _guarded(self._handle_connect)
        client.on_disconnect = _guarded(self._handle_disconnect)
        client.on_message = _guarded(self._handle_message)
        client.on_publish = _guarded(self._handle_publish)
        self.client = client
        self.window = WINDOW if _QUICKACK is not None else 1

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    def stop(self, last_words: Iterable[Message] = ()) -> None:
        """Publish `last_words` if still connected (briefly), then disconnect."""
        if self.connected:
            try:
                self.publish_many(last_words, timeout=min(self.timeout, 3.0))
            except NotConnected as err:
                log.warning("mqtt: could not say goodbye: %s", err)
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ---- publishing --------------------------------------------------------------------

    def publish_many(
        self, messages: Iterable[Message], timeout: float | None = None, qos: int = 1
    ) -> None:
        """Publish in order and return once the broker acknowledged every one.

        Up to `window` messages go out before we wait, and we wait once for all of them:
        one wake-up of this thread per record instead of one per message. A burst of
        QoS 1 publishes makes the broker send PUBACKs back to back, and Nagle's algorithm
        on the broker (the Mosquitto default) holds every PUBACK after the first until
        our kernel ACKs it, which Linux delays by up to 40 ms on a connection it thinks
        interactive: ~42 ms instead of ~1.4 ms for a snapshot, event and last-state
        triple, measured on loopback. So after each PUBACK the network thread sets
        TCP_QUICKACK (`_handle_publish`), which sends that ACK at once, and the broker
        lets the rest go. Without TCP_QUICKACK (not Linux) the window is 1: each publish
        after the previous PUBACK, carrying the ACK itself.

        `timeout` is for each wait, so for a window's PUBACKs. The broker takes one
        connection's packets in order, so the messages reach it in the order given.
        """
        deadline = self.timeout if timeout is None else timeout
        pending: deque[mqtt.MQTTMessageInfo] = deque()
        for topic, payload, retain in messages:
            if len(pending) >= self.window:
                self._acknowledged(pending.popleft(), deadline)
            info = self._send(topic, payload, retain, qos)
            if qos > 0:
                pending.append(info)
        if pending:
            # The newest first: PUBACKs come in order (MQTT 4.6), so this is one wait.
            self._acknowledged(pending[-1], deadline)
        for info in pending:
            self._acknowledged(info, deadline)

    def _acknowledged(self, info: mqtt.MQTTMessageInfo, timeout: float) -> None:
        try:
            if not info.is_published():
                info.wait_for_publish(timeout)
            published = info.is_published()
        except (RuntimeError, ValueError) as err:
            raise NotConnected(str(err)) from None
        if not published:
            raise NotConnected(f"no PUBACK within {timeout:g}s")

    def _send(self, topic: str, payload: bytes | str, retain: bool, qos: int):
        if not self.connected:
            raise NotConnected(f"not connected to {self.host}:{self.port}")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish failed: {mqtt.error_string(info.rc)}")
        return info

    # ---- paho callbacks (network thread) -------------------------------------------------

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"connect refused: {reason_code}"
            log.warning("mqtt: %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        log.info("mqtt: connected to %s:%s as %s", self.host, self.port, self.client_id)
        self.last_error = None
        self._connected.set()
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        self._on_connected()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self.connected
        self._connected.clear()
        self._on_disconnected()
        if was_connected:
            self.last_error = f"disconnected: {reason_code}"
            log.warning("mqtt: disconnected from %s:%s (%s)", self.host, self.port, reason_code)

    def _handle_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self._on_message(message)

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        """A PUBACK came in: ACK it at once, so the broker's Nagle lets the next one go.

        Not sticky: Linux goes back to delaying ACKs by itself, so it is set every time.
        """
        sock = client.socket()
        if self.window == 1 or sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError as err:
            # Pipelining without it would wait ~40 ms a record: one at a time from now on.
            log.warning("mqtt: cannot set TCP_QUICKACK (%s); publishing one at a time", err)
            self.window = 1
