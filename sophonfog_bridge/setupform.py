"""The status page's "add a box" form: its fields checked, every problem named at once.

Also where the box must send to: the bridge's address as the user gave it, else the Host
the browser used (not through ingress: there the browser sees Home Assistant's URL), else
the local address of the route to the box. The token, if set, is a path segment of it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol

from .config import BOX_SCHEMA, FIRMWARES

HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


@dataclass(frozen=True)
class BoxRequest:
    box: dict[str, Any]  # a validated `boxes:` entry
    bridge_url: str  # http://host:port[/<token>], what the box is given
    replace: bool
    dry_run: bool


def host_and_port(text: str, default_port: int) -> tuple[str, int]:
    """`192.168.1.20`, `box.local:5555`, `[fe80::1]:5555`, `http://...` -> (host, port);
    ValueError naming what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("empty")
    bare = text.split("://", 1)[-1]
    if bare.count(":") > 1 and not bare.startswith("["):
        bare = f"[{bare}]"  # a bare IPv6 address has no port
    if "://" in text and not text.lower().startswith("http://"):
        raise ValueError(f"{text!r}: only http:// addresses")
    try:
        parts = urlsplit("http://" + bare)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535") from None
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r}: give only a host or IP address and a port")
    host = parts.hostname or ""
    if not _is_host(host):
        raise ValueError(f"{text!r} is not a host name or IP address")
    if port == 0:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, port or default_port


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(HOST_NAME.match(host))


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def route_address(box_host: str, port: int) -> str | None:
    """This machine's address on the route to the box: a UDP socket's local end after
    `connect` (which sends nothing). None if there is no route."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(box_host, port, 0, socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(where)
            return str(probe.getsockname()[0])
    except (OSError, IndexError, UnicodeError):
        return None


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def bridge_url(given: str, box_host: str, http: dict[str, Any], host_header: str | None) -> str:
    """The URL the box is given; ValueError when it is unusable or cannot be told."""
    port = int(http["port"])
    if given.strip():
        host, port = host_and_port(given, port)
        base = f"http://{url_host(host)}:{port}"
    elif host_header and not is_loopback(urlsplit("http://" + host_header).hostname or ""):
        base = f"http://{host_header}"
    else:
        found = route_address(box_host, port)
        if found is None:
            raise ValueError(f"cannot tell which address reaches {box_host}: give it")
        base = f"http://{url_host(found)}:{port}"
    return base + (f"/{http['token']}" if http.get("token") else "")


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value).strip()


def _port(data: dict[str, Any], key: str, label: str, default: int, problems: list[str]) -> int:
    text = _text(data, key)
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        problems.append(f"{label}: {text!r} is not a port (1-65535)")
        return default
    return int(text)


def read_form(
    data: dict[str, Any], http: dict[str, Any], host_header: str | None
) -> tuple[BoxRequest | None, list[str]]:
    """The request the form makes, or None and every problem in it."""
    problems: list[str] = []
    host, api_port = "", 5555
    try:
        host, api_port = host_and_port(_text(data, "address"), 5555)
    except ValueError as err:
        problems.append(f"box address: {err}")
    entry: dict[str, Any] = {
        "host": host,
        "api_port": api_port,
        "ws_port": _port(data, "ws_port", "websocket port", 5679, problems),
        "system_port": _port(data, "system_port", "system port", 8888, problems),
        "firmware": _text(data, "firmware").lower() or "auto",
    }
    if entry["firmware"] not in FIRMWARES:
        problems.append(f"firmware: {entry['firmware']!r}: use one of {', '.join(FIRMWARES)}")
    name = _text(data, "name") or host
    if len(name) > 64:
        problems.append("name: at most 64 characters")
    username, password = _text(data, "username"), data.get("password") or ""
    if password and not username:
        problems.append("username: a password was given without one")
    url = ""
    if host:
        try:
            url = bridge_url(_text(data, "bridge"), host, http, host_header)
        except ValueError as err:
            problems.append(f"bridge address: {err}")
    if problems:
        return None, problems
    entry.update(name=name, username=username or None, password=str(password) or None)
    try:
        box = BOX_SCHEMA(entry)
    except vol.Invalid as err:  # the checks above should have caught it: still say so
        return None, [f"box: {err}"]
    return BoxRequest(box, url, bool(data.get("replace")), bool(data.get("dry_run"))), []
