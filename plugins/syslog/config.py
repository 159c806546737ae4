"""The `plugins.syslog` config section: where to send, how to format, how severe."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol

from sophonfog_bridge import DecisionResult, PersonType, cv

DEV_LOG = "/dev/log"
FALLBACK_ADDRESS = "udp://127.0.0.1:514"
DEFAULT_PORTS = {"udp": 514, "tcp": 601}

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13,
    "console": 14, "solaris-cron": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}  # fmt: skip
SEVERITIES = {
    "emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4,
    "notice": 5, "info": 6, "debug": 7,
}  # fmt: skip
DEFAULT_SEVERITIES = {
    PersonType.EMPLOYEE.value: "info",
    PersonType.VISITOR.value: "info",
    PersonType.VIP.value: "info",
    PersonType.STRANGER.value: "notice",
    PersonType.BLACKLIST.value: "warning",
    DecisionResult.OPEN.value: "notice",
    DecisionResult.DENY.value: "info",
    DecisionResult.ERROR.value: "err",
}
_APP_NAME = re.compile(r"^[!-~]{1,48}$")


@dataclass(frozen=True)
class Address:
    """Where messages go: `udp`/`tcp` host and port, or a `unix` socket path."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return self.path if self.path == DEV_LOG else f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(value: Any) -> Address:
    """`/dev/log`, `unix:///path`, `udp://host[:514]`, `tcp://host[:601]`."""
    text = str(value).strip()
    if text.startswith("/"):
        return Address("unix", path=text)
    parts = urlsplit(text)
    if parts.scheme == "unix":
        if not parts.path.startswith("/") or parts.netloc:
            raise vol.Invalid(f"use unix:///absolute/path, not {text!r}")
        return Address("unix", path=parts.path)
    if parts.scheme not in DEFAULT_PORTS:
        raise vol.Invalid(f"{text!r}: use /dev/log, unix:///path, udp://host:514 or tcp://host:601")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise vol.Invalid(f"{text!r}: bad port") from None
    if not parts.hostname or parts.path not in ("", "/"):
        raise vol.Invalid(f"{text!r}: expected {parts.scheme}://host:port")
    return Address(parts.scheme, host=parts.hostname, port=port)


def default_address() -> Address:
    """`/dev/log` where a local syslog daemon listens, else UDP to this machine."""
    return parse_address(DEV_LOG if os.path.exists(DEV_LOG) else FALLBACK_ADDRESS)


def _code(table: dict[str, int], top: int, what: str, hint: str):
    """A validator for a syslog code given by name (as in syslog.conf) or number."""

    def validate(value: Any) -> int:
        name = str(value).strip().lower()
        if name.isdigit() and 0 <= int(name) <= top:
            return int(name)
        if name not in table:
            raise vol.Invalid(f"unknown {what} {value!r}; use {hint}")
        return table[name]

    return validate


Facility = _code(FACILITIES, 23, "facility", "e.g. user, daemon, auth, local0")
Severity = _code(SEVERITIES, 7, "severity", "emerg .. debug")


def SdId(value: Any) -> str:
    # RFC 5424 SD-NAME: 1-32 printable ASCII except = space ] ", with one @ before the
    # private enterprise number.
    text = str(value)
    printable = all(33 <= ord(c) <= 126 and c not in '= ]"' for c in text)
    if not (printable and len(text) <= 32) or text.count("@") != 1:
        raise vol.Invalid("use NAME@ENTERPRISE-NUMBER, e.g. sophonfog@32473")
    if not text.split("@")[0] or not text.split("@")[1].isdigit():
        raise vol.Invalid("use NAME@ENTERPRISE-NUMBER, e.g. sophonfog@32473")
    return text


def AppName(value: Any) -> str:
    text = str(value)
    if not _APP_NAME.match(text):
        raise vol.Invalid("1-48 printable ASCII characters without spaces")
    return text


def _with_defaults(value: dict[str, int]) -> dict[str, int]:
    return {**{k: SEVERITIES[v] for k, v in DEFAULT_SEVERITIES.items()}, **value}


SEVERITY_SCHEMA = vol.All(
    vol.Schema({vol.Optional(k): Severity for k in DEFAULT_SEVERITIES}), _with_defaults
)

CONFIG_SCHEMA = vol.Schema(
    {
        # None: /dev/log where it exists, otherwise udp://127.0.0.1:514.
        vol.Optional("address", default=None): vol.Any(None, parse_address),
        vol.Optional("facility", default="user"): Facility,
        # None: rfc5424, except rfc3164 on a local unix socket (what journald and
        # rsyslog's local socket parse).
        vol.Optional("format", default=None): vol.Any(None, vol.In(["rfc5424", "rfc3164"])),
        vol.Optional("tcp_framing", default="octet-counting"): vol.In(
            ["octet-counting", "newline"]
        ),
        vol.Optional("severities", default=dict): SEVERITY_SCHEMA,
        vol.Optional("app_name", default="sophonfog-bridge"): AppName,
        vol.Optional("sd_id", default="sophonfog@32473"): SdId,
        vol.Optional("timeout_s", default=3.0): cv.Seconds(0.1),
    },
    extra=vol.PREVENT_EXTRA,
)
