"""The HTTP API of a V5R7 or V6 box, as far as the websocket client needs it.

Which firmware it speaks (V6 answers `POST /sophon/v2/face/getmediadevices`, V5 answers
`GET /SophonDevice/api/Devices`), an optional login, and the capture-device list the
subscription is built from. Errors carry the box's own error code: V6 sends
`{"error": {"code": "PASSWORD_ERROR", ...}}`, V5 `{"error": {"code": 401, ...}}`.
Nothing here ever puts the password into a message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from ..wire import Text

TIMEOUT_S = 5.0
MAX_ANSWER = 4 << 20
MAX_DEVICES = 256
V6_DEVICES = "/sophon/v2/face/getmediadevices"
V6_LOGIN = "/sophon/v2/face/login"
V5_DEVICES = "/SophonDevice/api/Devices"
V5_LOGIN = "/SophonSystem/api/login"
# Where a box says the names it gives itself in its uploads and status pushes: its licence
# (V6 `mq_license_key`, V5 `dev_sno`) and the system monitor's reporter id.
V6_IDS = (
    ("api", "/sophon/v2/face/getconfigs", {"config_name": "MQ_LICENSE_KEY"}, "MQ_LICENSE_KEY"),
    ("system", "/sophon/v2/system/getsystemmonitorconfig", {}, "reporter_id"),
)
V5_IDS = (
    ("api", "/SophonConfig/api/Configs/DEV_SNO", None, "DEV_SNO"),
    ("system", "/SophonSystem/api/monitor", None, "dev_sno"),
)


class BoxApiError(Exception):
    """The box's API could not be reached or refused; `code` is the box's own error code."""

    def __init__(self, message: str, code: str | int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ListedDevice:
    """A capture device as the box lists it. `kind` is the list's photo/rtsp/file/gb28181."""

    id: str
    ip: str | None = None
    name: str = ""
    kind: str = ""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any


class BoxApi:
    def __init__(self, host: str, api_port: int, system_port: int, timeout: float = TIMEOUT_S):
        self.host = host
        self.api = f"http://{bracket(host)}:{api_port}"
        self.system = f"http://{bracket(host)}:{system_port}"
        self.timeout = timeout

    def probe(self) -> str:
        """ "v6" or "v5", by which device-list call the box answers in its own dialect."""
        try:
            answer = self._call("POST", self.api + V6_DEVICES, {})
            if isinstance(answer.body, dict) and (
                isinstance(answer.body.get("devices"), list) or isinstance(_code(answer.body), str)
            ):
                return "v6"
            answer = self._call("GET", self.api + V5_DEVICES)
        except BoxApiError as err:
            raise BoxApiError(f"firmware probe: {err}", err.code) from None
        if isinstance(answer.body, dict) and (
            isinstance(answer.body.get("data"), dict) or isinstance(_code(answer.body), int)
        ):
            return "v5"
        raise BoxApiError(
            f"firmware probe: {self.api} answers neither {V6_DEVICES} (V6) nor {V5_DEVICES} "
            "(V5); set firmware: in the box's entry"
        )

    def login(self, firmware: str, username: str, password: str) -> None:
        """Raises BoxApiError with the box's code (V6 `PASSWORD_ERROR`, V5 an int)."""
        url = self.api + V6_LOGIN if firmware == "v6" else self.system + V5_LOGIN
        answer = self._checked("POST", url, {"username": username, "password": password})
        body = answer.body if isinstance(answer.body, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        if body.get("result") is True or data.get("success") is True:
            return
        raise BoxApiError(f"login as {username!r} at {url}: the box did not confirm it")

    def devices(self, firmware: str) -> list[ListedDevice]:
        """The box's capture devices, in its order; entries without an id are skipped."""
        if firmware == "v6":
            # V6 answers unwrapped; V5 wraps its answer in `data`.
            body = self._checked("POST", self.api + V6_DEVICES, {}).body
            entries, prefix = _dig(body, "devices"), "media_device_"
        else:
            body = self._checked("GET", self.api + V5_DEVICES).body
            data = body.get("data") if isinstance(body, dict) else None
            entries, prefix = _dig(data, "devices_list"), "device_"
        if entries is None:
            raise BoxApiError(f"device list: unexpected answer {_short(body)}")
        found: dict[str, ListedDevice] = {}
        for entry in entries[:MAX_DEVICES]:
            device = _device(entry, prefix)
            if device is not None:
                found.setdefault(device.id, device)
        return list(found.values())

    def box_ids(self, firmware: str) -> list[str]:
        """The ids the box names itself by in its pushes; those it does not answer are left out."""
        found = []
        for port, path, body, key in V6_IDS if firmware == "v6" else V5_IDS:
            url = (self.api if port == "api" else self.system) + path
            try:
                answer = self._checked("POST" if body is not None else "GET", url, body).body
            except BoxApiError:
                continue
            # V6 answers flat, V5 inside `data`.
            data = answer.get("data", answer) if isinstance(answer, dict) else None
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, (str, int)) and not isinstance(value, bool) and _safe(value, 128):
                found.append(_safe(value, 128))
        return found

    # ---- HTTP ----------------------------------------------------------------------------

    def _checked(self, method: str, url: str, body: Any = None) -> _Answer:
        answer = self._call(method, url, body)
        code = _code(answer.body) if isinstance(answer.body, dict) else None
        if code is not None or not 200 <= answer.status < 300:
            message = _message(answer.body)
            raise BoxApiError(
                f"{method} {url}: HTTP {answer.status}"
                + (f", error {code}" if code is not None else "")
                + (f": {message}" if message else ""),
                code,
            )
        return answer

    def _call(self, method: str, url: str, body: Any = None) -> _Answer:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            # Every V6 call requires it (UNSUPPORT_CONTENT_TYPE otherwise).
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _Answer(response.status, _parse(response.read(MAX_ANSWER)))
        except urllib.error.HTTPError as err:
            with err:
                return _Answer(err.code, _parse(err.read(MAX_ANSWER)))
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise BoxApiError(f"{method} {url}: cannot reach the box: {reason}") from None


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return raw[:200].decode("utf-8", "replace")


def _code(body: dict[str, Any]) -> str | int | None:
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), (str, int)):
        code = error["code"]
        return _safe(code) if isinstance(code, str) else code
    return None


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return _safe(body["error"].get("message"))
    return _safe(body) if isinstance(body, str) else ""


def _safe(value: Any, limit: int = 160) -> str:
    try:
        return Text(limit)(str(value)[:limit])
    except vol.Invalid:
        return ""


def _short(body: Any) -> str:
    return _safe(json.dumps(body, ensure_ascii=False, default=str) if body is not None else "")


def _dig(body: Any, key: str) -> list[Any] | None:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, list) else None


def _device(entry: Any, prefix: str) -> ListedDevice | None:
    if not isinstance(entry, dict):
        return None
    ident = _safe(entry.get(prefix + "id"), 128) if entry.get(prefix + "id") else ""
    if not ident:
        return None
    return ListedDevice(
        id=ident,
        ip=_safe(entry.get(prefix + "ip"), 64) or None,
        name=_safe(entry.get(prefix + "name"), 64),
        kind=_safe(entry.get(prefix + "type"), 16).lower(),
    )
