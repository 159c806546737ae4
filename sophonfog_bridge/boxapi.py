"""A client for the box's own HTTP API (port 5555): where it sends its events.

`POST /SophonFogSys/api/EventServerUrl` replaces the box's whole list of receivers, so
adding the bridge without dropping the others means reading the list first. Not every
firmware answers a GET on that path; callers must be told when it does not.
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


class BoxClient:
    def __init__(self, box: str, timeout: float = 5.0):
        self.base = box_base_url(box)
        self.timeout = timeout

    def _request(self, method: str, path: str, payload: Any = None) -> BoxAnswer:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return BoxAnswer(response.status, _decode(response.read()))
        except urllib.error.HTTPError as err:
            return BoxAnswer(err.code, _decode(err.read()))
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise BoxApiError(f"cannot reach {self.base}: {reason}") from None

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
