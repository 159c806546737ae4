"""A client for the box's own HTTP API (port 5555, system API on 8888).

`POST /SophonFogSys/api/EventServerUrl` replaces the box's whole list of receivers, so
adding the bridge without dropping the others means reading the list first. Not every
firmware answers a GET on that path; callers must be told when it does not.

V5R7 and V6 boxes answer other paths; `probe_firmware` tells the generations apart by
which documented read answers, and `login` signs in when credentials are configured.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

EVENT_SERVER_PATH = "/SophonFogSys/api/EventServerUrl"
DEFAULT_PORT = 5555
URL_KEY = "event_server_url"


class BoxApiError(Exception):
    """The box could not be reached or gave an answer we cannot use."""


class BoxUnreachable(BoxApiError):
    """Nothing answered at the box's address."""


@dataclass(frozen=True)
class BoxAnswer:
    status: int
    body: Any  # parsed JSON, else text

    @property
    def ok(self) -> bool:
        """HTTP 2xx, and no error code in a JSON body (the box uses status/code 0)."""
        if not 200 <= self.status < 300:
            return False
        if isinstance(self.body, dict):
            for key in ("status", "code"):
                if key in self.body and str(self.body[key]).lower() not in ("0", "200", "success"):
                    return False
        return True

    def text(self) -> str:
        if isinstance(self.body, str):
            return self.body
        return json.dumps(self.body, ensure_ascii=False)

    def error(self) -> str | None:
        """The box's own error (`CODE: message`; V5 codes are ints, V6 strings), or None."""
        found = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(found, dict):
            return f"{found.get('code', '?')}: {found.get('message', '')}".strip()
        if not self.ok:
            return f"HTTP {self.status}: {self.text()[:200]}"
        return None


def box_base_url(box: str) -> str:
    """`192.168.1.20`, `192.168.1.20:5555` or `http://192.168.1.20:5555` -> base URL."""
    text = box.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BoxApiError(f"not a box address: {box!r}")
    port = parts.port or DEFAULT_PORT
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def receivers_in(body: Any) -> list[str] | None:
    """The receiver list in a box answer, wherever this firmware put it."""
    candidates = [body]
    if isinstance(body, dict):
        candidates += [body.get(k) for k in ("data", "result", "content")]
    for candidate in candidates:
        if isinstance(candidate, dict) and URL_KEY in candidate:
            value = candidate[URL_KEY]
            if isinstance(value, str):
                return [u.strip() for u in value.split(",") if u.strip()]
            if isinstance(value, list):
                return [str(u) for u in value if str(u).strip()]
    return None


def merge_receivers(current: list[str], url: str, replace: bool) -> list[str]:
    """Our URL kept in its place if the box has it already, else appended after the others
    (the box posts in order, so existing receivers keep their timing)."""
    if replace:
        return [url]
    return list(current) if url in current else [*current, url]


def call(method: str, url: str, payload: Any = None, timeout: float = 5.0) -> BoxAnswer:
    """One JSON request to a box; BoxApiError when nothing answers."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return BoxAnswer(response.status, _decode(response.read()))
    except urllib.error.HTTPError as err:
        return BoxAnswer(err.code, _decode(err.read()))
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        base = url.split("/", 3)[:3]
        raise BoxUnreachable(f"cannot reach {'/'.join(base)}: {reason}") from None


V6_DEVICES = "/sophon/v2/face/getmediadevices"
V5_DEVICES = "/SophonDevice/api/Devices"


def probe_firmware(api_base: str, timeout: float = 5.0) -> str:
    """v6, v5 or v2, by which generation's device list answers (V2 has none of them)."""
    v6 = call("POST", api_base + V6_DEVICES, {}, timeout)
    if v6.ok and isinstance(v6.body, dict) and isinstance(v6.body.get("devices"), list):
        return "v6"
    v5 = call("GET", api_base + V5_DEVICES, None, timeout)
    data = v5.body.get("data") if isinstance(v5.body, dict) else None
    if v5.ok and isinstance(data, dict) and "devices_list" in data:
        return "v5"
    return "v2"


def login(box: dict[str, Any], firmware: str, timeout: float = 5.0) -> None:
    """Sign in when the box config has credentials; BoxApiError with the box's error code.

    V6 on the API port (`/sophon/v2/face/login`), V5 on the system port
    (`/SophonSystem/api/login`). The docs do not say a session is needed; we log in so a
    wrong password is reported rather than discovered later.
    """
    if not box.get("username") or firmware not in ("v5", "v6"):
        return
    host = box["host"]
    if firmware == "v6":
        url = f"http://{host}:{box['api_port']}/sophon/v2/face/login"
    else:
        url = f"http://{host}:{box['system_port']}/SophonSystem/api/login"
    body = {"username": box["username"], "password": box.get("password") or ""}
    answer = call("POST", url, body, timeout)
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    accepted = isinstance(answer.body, dict) and (
        answer.body.get("result") is True or (isinstance(data, dict) and data.get("success"))
    )
    if not answer.ok or not accepted:
        raise BoxApiError(f"login as {box['username']} refused: {answer.error() or answer.text()}")


class BoxClient:
    def __init__(self, box: str, timeout: float = 5.0):
        self.base = box_base_url(box)
        self.timeout = timeout

    def _request(self, method: str, path: str, payload: Any = None) -> BoxAnswer:
        return call(method, self.base + path, payload, self.timeout)

    def receivers(self) -> list[str]:
        """The box's current receiver URLs; BoxApiError if it will not tell."""
        answer = self._request("GET", EVENT_SERVER_PATH)
        if not 200 <= answer.status < 300:
            raise BoxApiError(f"GET {EVENT_SERVER_PATH} answered HTTP {answer.status}")
        found = receivers_in(answer.body)
        if found is None:
            raise BoxApiError(f"GET {EVENT_SERVER_PATH}: no {URL_KEY} in {answer.text()[:200]}")
        return found

    def set_receivers(self, urls: list[str], reg_pic: bool, form_data: bool) -> BoxAnswer:
        return self._request("POST", EVENT_SERVER_PATH, settings_body(urls, reg_pic, form_data))


def settings_body(urls: list[str], reg_pic: bool, form_data: bool) -> dict[str, Any]:
    return {
        URL_KEY: list(urls),
        "real_need_reg_pic": reg_pic,
        "content-type": "form-data" if form_data else "json",
    }


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
