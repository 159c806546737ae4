"""EmulatedBox: a V5R7 or V6 box on real sockets (HTTP API, system API, live websocket)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from . import api_v5, api_v6, system
from .devices import Device, as_device, as_devices
from .http import HttpServer, Reply, Request
from .identity import BoxIdentity
from .live import LiveServer, Subscription
from .records import live_v5, live_v6
from .replies import v5_error, v6_error
from .settings import Settings
from .state import BoxState
from .store import new_event
from .uploads import Uploads

FIRMWARES = ("v5", "v6")
DeviceSpec = Device | str | Mapping[str, Any]


class EmulatedBox:
    """A SophonFog box for tests and for trying the bridge without one.

    Ports given as 0 are chosen by the OS on the first start() and kept by restart()."""

    def __init__(
        self,
        firmware: str = "v6",
        host: str = "127.0.0.1",
        api_port: int = 0,
        ws_port: int = 0,
        system_port: int = 0,
        devices: int | Iterable[DeviceSpec] = 2,
        *,
        username: str = "admin",
        password: str = "admin",
        live_variant: str = "table",
        binary_frames: bool = False,
        identity: BoxIdentity | None = None,
        push_period: float | None = None,
        upload_timeout: float = 5.0,
        newest_first: bool = True,
    ) -> None:
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware {firmware!r}: use v5 or v6")
        if live_variant not in ("table", "example"):
            raise ValueError(f"live_variant {live_variant!r}: use table or example")
        self.firmware = firmware
        self.host = host
        self.live_variant = live_variant
        identity = identity or BoxIdentity()
        self.state = BoxState(
            firmware=firmware,
            identity=identity,
            settings=Settings(firmware, identity.license_key),
            devices=as_devices(devices),
            username=username,
            password=password,
            newest_first=newest_first,
        )
        self._uploads = Uploads(self.state, push_period, upload_timeout)
        self.state.settings.on_change = self._uploads.poke
        self.requests: list[dict[str, Any]] = []
        self._ports = {"api": api_port, "ws": ws_port, "system": system_port}
        self._live = LiveServer(firmware, self._render, binary_frames)
        self._servers: dict[str, HttpServer] = {}
        self._lock = threading.Lock()
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> EmulatedBox:
        if self._running:
            return self
        api = api_v6 if self.firmware == "v6" else api_v5
        self._servers = {
            "api": HttpServer("api", api.routes(self.state), self.requests.append, self._unknown),
            "system": HttpServer(
                "system", system.routes(self.state), self.requests.append, self._unknown
            ),
        }
        for name, server in self._servers.items():
            server.start(self.host, self._ports[name])
            self._ports[name] = server.port
        self._live.start(self.host, self._ports["ws"])
        self._ports["ws"] = self._live.port
        self._uploads.start()
        self._running = True
        return self

    def stop(self, abrupt: bool = False) -> None:
        """Close every socket (websocket clients get close code 1001, or with `abrupt` no
        close frame at all). The event database, config and logs are kept."""
        if abrupt:
            self._live.drop()
        self._uploads.stop()
        self._live.stop()
        for server in self._servers.values():
            server.stop()
        self._running = False

    def stop_socket(self, abrupt: bool = False) -> None:
        """Stop only the real-time websocket (clients get close code 1001, or with `abrupt`
        no close frame); the HTTP APIs, history uploads and status pushes keep going."""
        if abrupt:
            self._live.drop()
        self._live.stop()

    def start_socket(self) -> None:
        """Listen for websocket clients again, on the same port."""
        self._live.start(self.host, self._ports["ws"])

    def restart(self, abrupt: bool = False) -> None:
        """Stop, then start again on the same ports (like a box rebooting)."""
        self.stop(abrupt)
        self.start()

    def __enter__(self) -> EmulatedBox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where it listens -----------------------------------------------------------------

    @property
    def api_port(self) -> int:
        return self._ports["api"]

    @property
    def ws_port(self) -> int:
        return self._ports["ws"]

    @property
    def system_port(self) -> int:
        return self._ports["system"]

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def system_url(self) -> str:
        return f"http://{self.host}:{self.system_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    # -- devices --------------------------------------------------------------------------

    @property
    def devices(self) -> list[Device]:
        return list(self.state.devices)

    def set_devices(self, devices: int | Iterable[DeviceSpec]) -> None:
        """Replace the device list (ids, dicts of Device fields, Devices, or a count)."""
        self.state.devices = as_devices(devices)

    @property
    def devices_initialising(self) -> bool:
        """While True, V6 `getmediadevices` answers DEVICE_INIT_ERROR ("retry later")."""
        return self.state.devices_initialising

    @devices_initialising.setter
    def devices_initialising(self, value: bool) -> None:
        self.state.devices_initialising = value

    # -- events ---------------------------------------------------------------------------

    def emit(
        self,
        person_type: str = "employee",
        device: DeviceSpec | int | None = None,
        identity_id: str | None = None,
        name: str | None = None,
        score: float | None = None,
        timestamp_ms: int | None = None,
    ) -> dict[str, Any]:
        """Record one recognition and push it live to every client subscribed to its device.

        `device`: a device id, an index into `devices`, a Device, or None for the first.
        `score` is on the 0..100 scale; V5 records carry score / 100."""
        chosen = self._pick_device(device)
        with self._lock:
            event = new_event(
                self.state.store.next_seq(),
                firmware=self.firmware,
                device=chosen,
                person_type=person_type,
                identity_id=identity_id,
                name=name,
                score=score,
                timestamp_ms=timestamp_ms,
            )
            self.state.store.add(event)
        event["pushed_to"] = self._live.push(event)
        return event

    def _pick_device(self, device: DeviceSpec | int | None) -> Device:
        devices = self.state.devices
        if device is None:
            if not devices:
                raise ValueError("the box has no devices; set_devices() first")
            return devices[0]
        if isinstance(device, int):
            return devices[device]
        if isinstance(device, str):
            found = self.state.device(device)
            if found is None:
                raise ValueError(f"no device {device!r} on this box")
            return found
        return as_device(device)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first; `events[i]["images"]` holds its JPEG bytes."""
        return self.state.store.all()

    def _render(self, event: dict[str, Any], sub: Subscription) -> dict[str, Any]:
        if self.firmware == "v6":
            return live_v6(event, sub.with_face, sub.with_register, self.live_variant)
        return live_v5(event, sub.with_face, sub.with_register)

    # -- the websocket ------------------------------------------------------------------

    @property
    def subscriptions(self) -> list[Any]:
        """Every connection's first message, parsed as JSON (the raw text if it was not)."""
        return list(self._live.subscriptions)

    @property
    def connections(self) -> int:
        return self._live.connections

    def drop_connections(self, code: int | None = None) -> int:
        """Close every client socket: abruptly by default, or with this websocket close code."""
        return self._live.drop(code)

    def send_raw(self, frame: str | bytes) -> int:
        """Push a frame as is (str: text, bytes: binary) to every open socket."""
        return self._live.send_raw(frame)

    # -- HTTP -----------------------------------------------------------------------------

    def _unknown(self, request: Request) -> Reply:
        message = f"no such API: {request.method} {request.path}"
        if self.firmware == "v6":
            return v6_error("API_NOT_FOUND", message, 404)
        return v5_error(message, 404)

    @property
    def config(self) -> dict[str, Any]:
        """The box's config keys as they are now."""
        return self.state.settings.all()

    def set_config(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Set config keys as setconfigs / PUT Configs would; the rejected ones, with why."""
        return self.state.settings.update(dict(values))[1]

    @property
    def monitor_config(self) -> dict[str, Any]:
        """The system-monitor config of port 8888: urls, period (s), reporter_id."""
        return dict(self.state.settings.monitor)

    # -- what the box sends on its own ------------------------------------------------------

    @property
    def uploads(self) -> list[dict[str, Any]]:
        """Every POST the box made: kind (history, device_status, system_status), url,
        event_id, status (None: no answer), ok, error, body."""
        return list(self._uploads.log)

    @property
    def history_cursor(self) -> int:
        """How many events (oldest first) every history URL has taken."""
        return self._uploads.cursor
