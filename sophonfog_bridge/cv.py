"""Config validators shared by the core and every plugin (Home Assistant's `cv`, smaller).

Each is a small named voluptuous validator, composed with `vol.All` in a plugin's one
`CONFIG_SCHEMA`; a plugin imports them as `from sophonfog_bridge import cv`. Their error
messages are part of what users see (and what tests check): change them with care.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol

from .event import DeviceType, PersonType

__all__ = [
    "Cidr",
    "DeviceTypeName",
    "Host",
    "HostPort",
    "HttpUrl",
    "IpAddress",
    "NonBlank",
    "Number",
    "PersonTypeName",
    "Port",
    "Positive",
    "Seconds",
    "Whole",
]


def Number(low: float | None = None, high: float | None = None, *, low_included: bool = True):
    """A real number (`"2.5"` too) within `low`..`high`; either end may be open."""
    return vol.All(vol.Coerce(float), vol.Range(min=low, max=high, min_included=low_included))


def Seconds(low: float = 0, high: float | None = None, low_included: bool = True):
    """A duration in seconds, `low`..`high` (at least 0 unless told)."""
    return Number(low, high, low_included=low_included)


def Whole(low: int | None = None, high: int | None = None):
    """A whole number (`"8"` too) within `low`..`high`."""
    return vol.All(vol.Coerce(int), vol.Range(min=low, max=high))


Port = Whole(1, 65535)
Positive = Number(0, low_included=False)
PersonTypeName = vol.All(vol.Strip, vol.Lower, vol.In([p.value for p in PersonType]))
DeviceTypeName = vol.All(vol.Strip, vol.Lower, vol.In([d.value for d in DeviceType]))


def NonBlank(value: Any) -> str:
    """Text (a number is taken as its digits) that is not empty once trimmed."""
    text = str(value).strip() if isinstance(value, (str, int)) else None
    if not text:
        raise vol.Invalid(f"expected a non-empty string, got {value!r}")
    return text


def HttpUrl(value: Any) -> str:
    text = NonBlank(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise vol.Invalid(f"not an http(s) URL: {value!r}")
    return text


def Host(value: Any) -> str:
    """A host name or an IP, nothing that could smuggle a path or port."""
    text = str(value).strip()
    if not text or any(c in text for c in "/?#@ ") or len(text) > 253:
        raise vol.Invalid(f"not a host name or IP address: {value!r}")
    return text


def HostPort(value: Any) -> str:
    """`host` or `host:port`, no scheme or path (for settings that build the URL)."""
    text = NonBlank(value)
    if "/" in text or "?" in text or "@" in text or " " in text:
        raise vol.Invalid(f"use a bare host or host:port, not a URL: {value!r}")
    return text


def IpAddress(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise vol.Invalid(f"not an IP address: {value!r}") from None


def Cidr(value: Any) -> str:
    """An address or a network (`10.0.0.0/8`), normalised; host bits are allowed."""
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise vol.Invalid(f"not an IP address or CIDR network: {value!r}") from None
