"""The socket work of the MQTT connection, done by the thread that needs it.

paho's own network thread (`loop_start`) makes every publish a hand-over: the publishing
thread queues the packet and wakes paho's thread, which writes it, sleeps, wakes for the
PUBACK and wakes the publisher, the interpreter lock going back and forth each time. At 40
events/s that was ~6 sleeps and wake-ups of paho's thread and ~4.5 of the publisher an
event (voluntary context switches in /proc); now ~3 of the publisher and none of another
thread, ~0.5 ms of CPU less an event on a 2-core server. paho offers its loop in parts
for an event loop of one's own (`loop_read`, `loop_write`, `loop_misc`, `on_socket_open`
and `_close`), and that is what this uses: a thread that publishes holds `io`, writes, and
reads the acknowledgements itself. The network thread serves the
socket while nobody publishes (commands, Home Assistant's status, pings), notices a lost
link and reconnects with backoff. It is not woken by a publisher's traffic: while one
holds the socket, the network thread's epoll does not watch it (Linux applies a change
of the interest list to a wait already under way; without epoll, a poll() that is woken
and finds nothing to read).

Every call into paho happens under `io`; paho's callbacks run in whichever thread made the
call, and must not take `io` (they only look and hand over).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

_IN, _OUT = select.POLLIN, select.POLLOUT  # the same bits as EPOLLIN, EPOLLOUT
_IDLE_S = 1.0  # how often the network thread runs paho's keep-alive when nothing happens
_EPOLL = hasattr(select, "epoll")


class Link:
    def __init__(self, client: mqtt.Client, backoff_s: tuple[float, float]):
        self.client = client
        self.io = threading.Lock()
        self.backoff_s = backoff_s
        self._poll: Any = select.epoll() if _EPOLL else select.poll()
        self._sock: Any = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._poll.register(self._wake_r, _IN)
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)
        client.on_socket_open = guarded(self._opened)
        client.on_socket_close = guarded(self._closed)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """No more reconnecting or serving; a publisher still does its own socket work."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the socket, for a thread holding `io` -----------------------------------------

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The socket is this thread's until the block ends; the network thread looks away."""
        with self.io:
            self._watch(0)
            try:
                yield
            finally:
                self._watch(_IN | (_OUT if self.client.want_write() else 0))

    def serve(self, timeout: float) -> MQTTErrorCode:
        """Under `io`: wait up to `timeout` for the socket, then read and write what is due."""
        sock = self.client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        readable = _pending(sock)
        if not readable:
            poll = select.poll()
            poll.register(sock, _IN | (_OUT if self.client.want_write() else 0))
            readable = any(event & ~_OUT for _, event in poll.poll(timeout * 1000))
        return self._service(readable)

    # ---- the network thread ------------------------------------------------------------

    def _run(self) -> None:
        low, high = self.backoff_s
        delay = 0.0  # before the first attempt; then doubling up to `high`, as paho does
        while not self._stop.is_set():
            try:
                if self._sock is None:
                    if self._stop.wait(delay):
                        return
                    delay = min(max(delay * 2, low), high)
                    self._connect()
                    continue
                if self.client.is_connected():
                    delay = low  # the next loss waits the least before reconnecting
                self._wait_and_serve()
            except Exception:
                # The thread must outlive any surprise, or the bridge never reconnects.
                log.exception("mqtt: network loop failed; going on")
                if self._stop.wait(max(delay, low)):
                    return

    def _connect(self) -> None:
        with self.io:
            try:
                self.client.reconnect()  # TCP (and TLS), then CONNECT; CONNACK comes later
            except OSError as err:  # refused, unreachable, timed out, TLS failed
                log.debug("mqtt: connecting failed: %s", err)

    def _wait_and_serve(self) -> None:
        events = self._poll.poll(_IDLE_S if _EPOLL else _IDLE_S * 1000)
        if any(fd == self._wake_r.fileno() for fd, _ in events):
            return
        with self.io:
            sock = self.client.socket()
            if sock is None:
                return
            readable = any(fd == sock.fileno() and event & ~_OUT for fd, event in events)
            self._service(readable or _pending(sock))
            self._watch(_IN | (_OUT if self.client.want_write() else 0))

    # ---- both --------------------------------------------------------------------------

    def _service(self, readable: bool) -> MQTTErrorCode:
        client = self.client
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if readable:
            rc = client.loop_read()
            # TLS may hold decrypted bytes the socket no longer signals.
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and _pending(client.socket()):
                rc = client.loop_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.want_write():
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        return rc

    def _watch(self, events: int) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError, ValueError):  # closed meanwhile: nothing to watch
                self._poll.modify(self._sock, events)

    def _opened(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._sock = sock
        self._poll.register(sock, _IN)

    def _closed(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if sock is self._sock:
            self._sock = None
            with contextlib.suppress(OSError, ValueError):
                self._poll.unregister(sock)


def _pending(sock: Any) -> bool:
    pending = getattr(sock, "pending", None)
    return bool(pending and pending())


def guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    """A paho callback that logs its exception instead of letting it reach paho."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            log.exception("mqtt: error in %s callback", callback.__name__)

    return run
