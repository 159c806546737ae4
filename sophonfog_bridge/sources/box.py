"""One client per V5R7/V6 box: its websocket of live events, handed to the one accept path.

The box sends nothing until the client subscribes, then one JSON record per frame. It
documents no keepalive, no reconnect policy and no way to change a subscription on an
open socket, so the client pings, reconnects with backoff and jitter, and subscribes
afresh on every connect, after listing the box's devices (the subscription must name
them, and an empty list's meaning is not documented: it never sends one). Each box has
its own thread; nothing here can hold up the HTTP receiver or another box.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from ..accept import AcceptPath
from ..event import BoxLink, DeviceType, SubDevice, utcnow
from ..spool import SpoolFull
from ..wire import WireError
from .backfill import Backfill
from .boxapi_v5v6 import BoxApi, BoxApiError, ListedDevice, bracket
from .ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from ..bridge import Bridge

log = logging.getLogger(__name__)
# websockets logs every frame's start at DEBUG: names and ids of people. Never that.
_ws_log = logging.getLogger(__name__ + ".websocket")
_ws_log.setLevel(logging.INFO)

RECV_POLL_S = 1.0
PING_S = 10.0
OPEN_TIMEOUT_S = 5.0
STABLE_S = 10.0
STILL_DOWN_LOG_S = 600.0
BACKOFF_S = (1.0, 30.0)
# A frame is read whole (websockets would drop the socket over a bigger one) and then
# judged against the receiver's own body limit.
FRAME_READ_LIMIT = 256 << 20
# The device list's types are not the record's: "photo" is a gate or a snapshot camera,
# which the list cannot tell apart, so it stays unknown (a door must list it to open).
LISTED_TYPES = {
    "rtsp": DeviceType.IPC_DYNAMIC,
    "gb28181": DeviceType.IPC_DYNAMIC,
    "file": DeviceType.IPC_DYNAMIC,
}


class Down(Exception):
    """This attempt ended; the message says why, for the log and /healthz."""


def subscription(firmware: str, devices: Sequence[ListedDevice]) -> dict[str, Any]:
    """The one message a box wants after the socket opens, in its firmware's dialect."""
    ids = [d.id for d in devices]
    if firmware == "v6":
        return {"with_face_image": True, "with_register_image": True, "media_device_ids": ids}
    return {"need_face": True, "need_register": True, "event_list": ids}


def chosen(listed: Sequence[ListedDevice], wanted: Sequence[str]) -> list[ListedDevice]:
    """The configured devices (by id or IP) among those listed, or all when none are set."""
    if not wanted:
        return list(listed)
    return [d for d in listed if d.id in wanted or (d.ip is not None and d.ip in wanted)]


class Backoff:
    """1 s, 2 s, 4 s ... up to 30 s, each spread by ±20 % so boxes do not retry in step."""

    def __init__(self, low: float = BACKOFF_S[0], high: float = BACKOFF_S[1]):
        self.low, self.high = low, high
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        base = min(self.high, self.low * 2 ** min(self.failures - 1, 16))
        return min(self.high, base * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.failures = 0


class BoxClient:
    """The link to one box: list devices, connect, subscribe, read; again on any loss."""

    def __init__(self, bridge: Bridge, accept: AcceptPath, cfg: Mapping[str, Any]):
        self.bridge = bridge
        self.accept = accept
        self.cfg = cfg
        self.name: str = cfg["name"]
        self.api = BoxApi(cfg["host"], cfg["api_port"], cfg["system_port"])
        self.url = f"ws://{bracket(cfg['host'])}:{cfg['ws_port']}"
        self.firmware: str | None = None if cfg["firmware"] == "auto" else cfg["firmware"]
        self.max_frame = int(bridge.config["http"]["max_body_mb"] * (1 << 20))
        self.metrics = bridge.metrics
        self.skipped = RateLimitedLog(log, f"box {self.name}")
        self.backoff = Backoff()
        self.connected = False
        self.since: datetime | None = None
        self.last_event_at: datetime | None = None
        self.last_error: str | None = None
        self.reconnects = 0
        self.backfill: Backfill | None = None
        self.listed: list[ListedDevice] = []
        self.subscribed: list[ListedDevice] = []
        self._by_id: dict[str, ListedDevice] = {}
        self._by_ip: dict[str, ListedDevice] = {}
        self._down_spooled = False
        self._down_logged: float | None = None
        self._stop = threading.Event()
        self._stop_reason = "the bridge is stopping"
        self._ws: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"box-{self.name}", daemon=True)
        self.metrics.box_connected.labels(self.name).set(0)

    # ---- life ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, reason: str = "the bridge is stopping") -> None:
        self._stop_reason = reason
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        attempts = 0
        while not self._stop.is_set():
            if attempts:
                self.reconnects += 1
                self.metrics.box_reconnects.labels(self.name).inc()
            attempts += 1
            try:
                reason = self._session()
            except Down as err:
                reason = str(err)
            except Exception as err:  # a bug must not end the box's thread for good
                log.exception("box %s: unexpected error", self.name)
                reason = f"{type(err).__name__}: {err}"
            if self._stop.is_set():
                break
            was_up = self.connected
            self._went_down(reason)
            delay = self.backoff.next()
            level = logging.INFO if was_up else logging.DEBUG
            log.log(level, "box %s: reconnecting in %.1f s", self.name, delay)
            self._stop.wait(delay)
        self._went_down(self._stop_reason)

    def _session(self) -> str:
        """One attempt, up to the loss of the socket; returns or raises why it ended."""
        firmware = self._firmware()
        if self.cfg.get("username") and self.cfg.get("password") is not None:
            try:
                self.api.login(firmware, self.cfg["username"], self.cfg["password"])
            except BoxApiError as err:
                raise Down(f"login failed: {err}") from None
        self._list_devices(firmware)
        # Its uploads and status pushes name the box by these: one box, one HA device.
        self.bridge.box_names.learn(self.name, self.api.box_ids(firmware))
        if not self.subscribed:
            raise Down(self._nothing_to_subscribe())
        try:
            ws = connect(
                self.url,
                open_timeout=OPEN_TIMEOUT_S,
                ping_interval=PING_S,
                ping_timeout=PING_S,
                close_timeout=2,
                max_size=FRAME_READ_LIMIT,
                compression=None,
                proxy=None,
                logger=_ws_log,
            )
        except (OSError, TimeoutError, WebSocketException) as err:
            raise Down(f"websocket {self.url}: {err or type(err).__name__}") from None
        with ws:
            self._ws = ws
            try:
                ws.send(json.dumps(subscription(firmware, self.subscribed)))
                self._came_up(firmware)
                return self._read(ws, firmware)
            except ConnectionClosed as err:
                raise Down(_closed(err)) from None
            finally:
                self._ws = None

    def _firmware(self) -> str:
        if self.firmware is None:
            try:
                self.firmware = self.api.probe()
            except BoxApiError as err:
                raise Down(str(err)) from None
            log.info("box %s: speaks %s firmware", self.name, self.firmware.upper())
        return self.firmware

    def _read(self, ws: ClientConnection, firmware: str) -> str:
        refresh_s = self.cfg["device_refresh_s"]
        next_refresh = time.monotonic() + refresh_s
        up_at = time.monotonic()
        while not self._stop.is_set():
            try:
                frame = ws.recv(timeout=RECV_POLL_S)
            except TimeoutError:
                frame = None
            if frame is not None:
                self.frame(frame)
            if time.monotonic() - up_at >= STABLE_S:
                self.backoff.reset()
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + refresh_s
                if self._devices_changed(firmware):
                    # A subscription cannot be changed on an open socket (not documented).
                    self.backoff.reset()
                    return "the device list changed: subscribing again"
        return "the bridge is stopping"

    # ---- devices -------------------------------------------------------------------------

    def _list_devices(self, firmware: str) -> None:
        try:
            listed = self.api.devices(firmware)
        except BoxApiError as err:
            raise Down(f"device list: {err}") from None
        self._set_devices(listed)

    def _set_devices(self, listed: list[ListedDevice]) -> None:
        self.listed = listed
        self.subscribed = chosen(listed, self.cfg["devices"])
        self._by_id = {d.id: d for d in listed}
        self._by_ip = {d.ip: d for d in listed if d.ip}
        self.bridge.box_names.learn(self.name, devices=[d.id for d in listed])
        self.bridge.devices.observe_listed(self.name, [self._sub_device(d) for d in listed])

    def _devices_changed(self, firmware: str) -> bool:
        before = [d.id for d in self.subscribed]
        try:
            self._set_devices(self.api.devices(firmware))
        except BoxApiError as err:
            # The socket is still up: keep it and the subscription it has.
            self.skipped.warn("device_list", f"device list refresh failed: {err}")
            return False
        return [d.id for d in self.subscribed] != before

    def _nothing_to_subscribe(self) -> str:
        if not self.listed:
            return "the box lists no capture devices: nothing to subscribe to"
        return (
            f"none of the configured devices ({', '.join(self.cfg['devices'])}) is among the "
            f"{len(self.listed)} the box lists: nothing to subscribe to"
        )

    @staticmethod
    def _sub_device(device: ListedDevice) -> SubDevice:
        return SubDevice(
            ep_id=device.id,
            name=device.name,
            ip=device.ip,
            device_type=LISTED_TYPES.get(device.kind, DeviceType.UNKNOWN),
        )

    # ---- frames --------------------------------------------------------------------------

    def frame(self, frame: str | bytes) -> None:
        """One pushed frame into the accept path; anything it cannot be is logged, skipped."""
        if len(frame) > self.max_frame:
            self._skip("huge", f"a frame of {len(frame)} bytes is over the body limit")
            return
        try:
            payload = json.loads(frame)
        except (ValueError, RecursionError):
            self._skip("not_json", f"a frame of {len(frame)} bytes is not JSON")
            return
        if not isinstance(payload, dict):
            self._skip("not_object", f"a frame is JSON {type(payload).__name__}, not an object")
            return
        activity = self.bridge.activity
        activity.begin()
        try:
            outcome = self.accept.event(
                payload, transport="websocket", context=self._context(payload)
            )
        except WireError as err:
            self._skip("invalid", f"a record was refused: {err}")
            return
        except SpoolFull as err:
            self._skip("spool_full", f"a record was lost: {err}")
            return
        finally:
            activity.end()
        self.last_event_at = utcnow()
        if self.backfill is not None and outcome.timestamp is not None:
            self.backfill.note_event(outcome.timestamp)

    def _context(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What the device list knows of the record's device: its IP and type, and the box."""
        ident = payload.get("media_device_id") or payload.get("device_id")
        device = self._by_id.get(ident) if isinstance(ident, str) else None
        if device is None:
            ext = payload.get("ext_data") if isinstance(payload.get("ext_data"), dict) else {}
            ip = payload.get("media_device_ip") or ext.get("device_ip")
            device = self._by_ip.get(ip) if isinstance(ip, str) else None
        context: dict[str, Any] = {"box": self.name}
        if device is not None:
            context["device_ip"] = device.ip
            context["device_type"] = LISTED_TYPES.get(device.kind)
        return context

    def _skip(self, reason: str, message: str) -> None:
        self.metrics.box_frames_skipped.labels(self.name, reason).inc()
        self.skipped.warn(reason, message + "; skipped")

    # ---- state ---------------------------------------------------------------------------

    def _came_up(self, firmware: str) -> None:
        self.connected, self.since, self.last_error = True, utcnow(), None
        self._down_spooled = False
        self._down_logged = None
        self.metrics.box_connected.labels(self.name).set(1)
        log.info(
            "box %s: connected to %s (%s), subscribed to %d of %d devices",
            self.name,
            self.url,
            firmware.upper(),
            len(self.subscribed),
            len(self.listed),
        )
        self._spool_link(True, "")
        if self.backfill is not None:
            self.backfill.on_connected()

    def _went_down(self, reason: str) -> None:
        was_up = self.connected
        self.connected = False
        self.metrics.box_connected.labels(self.name).set(0)
        now = time.monotonic()
        if was_up:
            self.since = utcnow()
            level = logging.INFO if self._stop.is_set() else logging.WARNING
            log.log(level, "box %s: disconnected: %s", self.name, reason)
            self._down_logged = now
        elif self._down_logged is None or now - self._down_logged >= STILL_DOWN_LOG_S:
            # Once, then a reminder now and then: errors of a down box differ in detail
            # (reset, refused, timed out) and must not each make a line.
            self.since = self.since or utcnow()
            log.warning(
                "box %s: not connected (%d attempts): %s; retrying with backoff",
                self.name,
                self.backoff.failures + 1,
                reason,
            )
            self._down_logged = now
        else:
            log.debug("box %s: still not connected: %s", self.name, reason)
        self.last_error = reason
        if was_up or not self._down_spooled:
            self._down_spooled = True
            self._spool_link(False, reason)

    def _spool_link(self, connected: bool, reason: str) -> None:
        link = BoxLink(
            box=self.name,
            connected=connected,
            firmware=self.firmware or "",
            host=self.cfg["host"],
            reason=reason,
            devices=tuple(self._sub_device(d) for d in self.listed),
            since=self.since or utcnow(),
        )
        try:
            self.bridge.record(link)
        except (SpoolFull, OSError) as err:
            log.warning("box %s: cannot spool the link state: %s", self.name, err)

    def health(self) -> dict[str, Any]:
        """The link as /healthz shows it: no person data, only the box and its devices."""
        subscribed = {d.id for d in self.subscribed}
        return {
            "host": self.cfg["host"],
            "firmware": self.firmware or self.cfg["firmware"],
            "connected": self.connected,
            "since": self.since.isoformat() if self.since else None,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "devices": [
                {"id": d.id, "ip": d.ip, "name": d.name, "subscribed": d.id in subscribed}
                for d in self.listed
            ],
            "backfill": self.backfill.state() if self.backfill else {"state": "off"},
        }


def _closed(err: ConnectionClosed) -> str:
    if err.rcvd is not None:
        return f"the box closed the socket (code {err.rcvd.code}{_why(err.rcvd.reason)})"
    if err.sent is not None and err.sent.code != 1000:
        return f"the socket failed (code {err.sent.code}{_why(err.sent.reason)})"
    return "the connection was lost (no close frame)"


def _why(reason: str) -> str:
    return f": {reason[:80]}" if reason else ""


class BoxSources:
    """Every configured V5/V6 box's client and back-fill; V2 boxes push over HTTP.

    Boxes added or removed from the status page come and go while the bridge runs."""

    def __init__(self, bridge: Bridge):
        self.bridge = bridge
        self.accept = AcceptPath(bridge)
        self._lock = threading.Lock()
        self.clients = [
            self._client(cfg) for cfg in bridge.config["boxes"] if cfg["firmware"] != "v2"
        ]

    def _client(self, cfg: Mapping[str, Any]) -> BoxClient:
        client = BoxClient(self.bridge, self.accept, cfg)
        if cfg["backfill"]:
            client.backfill = Backfill(cfg, self.accept, self.bridge.state_dir("boxes"))
        return client

    @staticmethod
    def _start(client: BoxClient) -> None:
        if client.backfill is not None:
            client.backfill.start()  # a first gap query: the bridge itself was down
        client.start()

    def start(self) -> None:
        for client in self.clients:
            self._start(client)

    def add(self, cfg: Mapping[str, Any]) -> None:
        """Start a client for a box (one of the same name is stopped first); V2: none."""
        self.remove(cfg["name"], "replaced by a new setting from the panel")
        if cfg["firmware"] == "v2":
            return
        self.bridge.box_names.add(cfg["name"])
        client = self._client(cfg)
        with self._lock:
            self.clients = [*self.clients, client]
        self._start(client)

    def remove(self, name: str, reason: str = "removed from the panel") -> bool:
        with self._lock:
            gone = [c for c in self.clients if c.name == name]
            self.clients = [c for c in self.clients if c.name != name]
        for client in gone:
            self._stop(client, reason)
            client.join(5.0)
        return bool(gone)

    @staticmethod
    def _stop(client: BoxClient, reason: str = "the bridge is stopping") -> None:
        client.stop(reason)
        if client.backfill is not None:
            client.backfill.stop()

    def stop(self, timeout: float = 5.0) -> None:
        for client in self.clients:
            self._stop(client)
        deadline = time.monotonic() + timeout
        for client in self.clients:
            client.join(max(0.0, deadline - time.monotonic()))

    def health(self) -> dict[str, Any]:
        return {client.name: client.health() for client in self.clients}
