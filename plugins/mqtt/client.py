"""The bridge's one MQTT connection: paho-mqtt 2.x for the protocol, `network.Link` for the
socket work (a network thread that reconnects with backoff, so the bridge starts and runs
with no broker at all; publishers that do their own reads and writes).

Publishing waits for the broker's PUBACK; anything short of that is `NotConnected`, which
the plugin turns into "retry later". Callbacks run in whichever thread is doing the socket
work: each is guarded so an exception is logged and never reaches paho, and none of them
blocks or publishes (that thread holds the socket).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from .network import Link, guarded

log = logging.getLogger(__name__)

Message = tuple[str, "bytes | str", bool]  # topic, payload, retain

# Linux only; elsewhere `publish_many` goes one message at a time (see there why).
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class NotConnected(Exception):
    """The broker did not take the message (down, disconnected, or no PUBACK in time)."""


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
        client.on_connect = guarded(self._handle_connect)
        client.on_disconnect = guarded(self._handle_disconnect)
        client.on_message = guarded(self._handle_message)
        client.on_publish = guarded(self._handle_publish)
        self.client = client
        self.link = Link(client, (config["reconnect_min_s"], config["reconnect_max_s"]))
        self.serial = _QUICKACK is None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.link.start()

    def stop(self, last_words: Iterable[Message] = ()) -> None:
        """Publish `last_words` if still connected (briefly), then disconnect."""
        self.link.stop()  # no reconnecting from here on; a publisher needs no network thread
        if self.connected:
            try:
                self.publish_many(last_words, timeout=min(self.timeout, 3.0))
            except NotConnected as err:
                log.warning("mqtt: could not say goodbye: %s", err)
        with self.link.held():
            self.client.disconnect()
            deadline = time.monotonic() + 2.0
            while self.client.want_write() and time.monotonic() < deadline:
                if self.link.serve(0.2) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ---- publishing --------------------------------------------------------------------

    def publish_many(
        self, messages: Iterable[Message], timeout: float | None = None, qos: int = 1
    ) -> None:
        """Publish in order and return once the broker acknowledged every one.

        All go out back to back, then this thread reads the PUBACKs itself (`network`).
        A burst of QoS 1 publishes makes the broker send PUBACKs back to back, and
        Nagle's algorithm on the broker (the Mosquitto default) holds every PUBACK after
        the first until our kernel ACKs it, which Linux delays by up to 40 ms on a
        connection it thinks interactive: ~42 ms instead of ~1.4 ms for a snapshot, event
        and last-state triple, measured on loopback. So after each PUBACK we set
        TCP_QUICKACK (`_handle_publish`), which sends that ACK at once, and the broker lets
        the rest go. Without TCP_QUICKACK (not Linux) one message at a time, each after
        the previous PUBACK, carrying the ACK itself. paho keeps at most 20 in flight and
        sends the rest as PUBACKs come.

        `timeout` is how long the broker may go without acknowledging anything. It takes
        one connection's packets in order, so the messages reach it in the order given.
        """
        deadline = self.timeout if timeout is None else timeout
        with self.link.held():
            infos = []
            for topic, payload, retain in messages:
                info = self._send(topic, payload, retain, qos)
                if qos > 0:
                    infos.append(info)
                if self.serial:
                    self._acknowledged(infos, deadline)
            self._acknowledged(infos, deadline)

    def _acknowledged(self, infos: list[mqtt.MQTTMessageInfo], timeout: float) -> None:
        """Under `held`: read until the broker acknowledged all of `infos`."""
        done, give_up = 0, time.monotonic() + timeout
        while True:
            try:
                progress = done
                while done < len(infos) and infos[done].is_published():
                    done += 1
            except (RuntimeError, ValueError) as err:
                raise NotConnected(str(err)) from None
            if done == len(infos):
                return
            now = time.monotonic()
            if done > progress:
                give_up = now + timeout
            elif now >= give_up:
                raise NotConnected(f"no PUBACK within {timeout:g}s")
            rc = self.link.serve(min(give_up - now, 1.0))
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise NotConnected(f"connection lost: {mqtt.error_string(rc)}")

    def _send(self, topic: str, payload: bytes | str, retain: bool, qos: int):
        if not self.connected:
            raise NotConnected(f"not connected to {self.host}:{self.port}")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish failed: {mqtt.error_string(info.rc)}")
        return info

    # ---- paho callbacks (whichever thread does the socket work) ------------------------

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
        if self.serial or sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError as err:
            # Back to back without it would wait ~40 ms a record: one at a time from now on.
            log.warning("mqtt: cannot set TCP_QUICKACK (%s); publishing one at a time", err)
            self.serial = True
