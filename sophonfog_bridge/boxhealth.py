"""A box's system monitor push (V2 `gateway_ext_data`, V5 and V6 `gateway_*` blocks) ->
BoxStatus health fields.

The firmware generations report the same facts under different names and in different
forms: CPU load as 0..1 or percent, sizes as numbers or `"3.71G"` / `"549.0M"`, the fan as
`"0r/min"` or a float, the uptime as `"1 day, 9 hours"` or `"2hours,40minutes"`. A value
that cannot be read is left out (None): the push is worth more than one of its numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# The box's sizes come from `free -h` / `df -h` style text: binary units, G taken as GB.
_SIZE_UNITS = {"": 1.0, "b": 1 / 1024**3, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
# A bare number this large is bytes, not GB (no box has a petabyte).
_BYTES_ABOVE = 1e6
_DURATION_PART = re.compile(
    r"([0-9]+(?:\.[0-9]+)?)\s*(weeks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"\b(\d+):(\d{2})(?::(\d{2}))?\b")
_UNIT_S = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_RPM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:r\s*/\s*min|rpm)?\s*$", re.IGNORECASE)
# Keys whose presence says a push reports the box's health (and not only its devices).
HEALTH_KEYS = frozenset(
    {
        "gateway_ext_data",
        "cpu_info",
        "tpu_info",
        "memory_info",
        "disk_info",
        "emmc",
        "hdd",
        "external_hard_drives_info",
        "temperature",
        "core_temperature",
        "board_temperature",
        "fan_speed",
        "uptime",
        "gateway_status",
    }
)
MONITOR_DICTS = tuple(sorted(k for k in HEALTH_KEYS if k.endswith(("_info", "emmc", "hdd"))))


def number(value: Any) -> float | None:
    """A finite number from a number or numeric text, else None."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def size_gb(value: Any) -> float | None:
    """`"3.71G"`, `"549.0M"`, `"1.8T"`, `"512 KB"`, a number of GB or of bytes -> GB."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            return None
        amount, unit = float(match.group(1)), match.group(2).lower()
        if unit == "" and amount > _BYTES_ABOVE:
            unit = "b"
        return round(amount * _SIZE_UNITS[unit], 3)
    amount = number(value)
    if amount is None or amount < 0:
        return None
    return round(amount / 1024**3 if amount > _BYTES_ABOVE else amount, 3)


def percent(value: Any) -> float | None:
    """Load as the box gives it, 0..1 (V5/V6) or percent (V2), in percent."""
    amount = number(value)
    if amount is None or amount < 0:
        return None
    return round(amount * 100 if amount <= 1 else amount, 1)


def fraction(value: Any) -> float | None:
    """A usage ratio as 0..1, whether the box sent 0..1 or percent."""
    amount = number(value)
    if amount is None or amount < 0:
        return None
    return round(amount / 100 if amount > 1 else amount, 4)


def rpm(value: Any) -> float | None:
    """`"0r/min"`, `"2400 rpm"` or a float -> revolutions per minute."""
    if isinstance(value, str):
        match = _RPM.match(value)
        return float(match.group(1)) if match else None
    return number(value)


def duration_s(value: Any) -> float | None:
    """`"30 minutes"`, `"1 day, 9 hours"`, `"2hours,40minutes"`, `"3 days, 4:05"` -> seconds."""
    if not isinstance(value, str):
        seconds = number(value)
        return seconds if seconds is None or seconds >= 0 else None
    total, found = 0.0, False
    for amount, unit in _DURATION_PART.findall(value):
        total += float(amount) * _UNIT_S[unit[0].lower()]
        found = True
    clock = _CLOCK.search(value)
    if clock:
        hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        total += hours * 3600 + minutes * 60 + seconds
        found = True
    if not found and value.strip().replace(".", "", 1).isdigit():
        return float(value)
    return total if found else None


def _ratio(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return round(used / total, 4)


def _block(payload: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    for name in names:
        value = payload.get(name)
        if isinstance(value, Mapping):
            return value
    return {}


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    return next((data[k] for k in keys if data.get(k) not in (None, "")), None)


def health_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Every health field the push carries, as BoxStatus keyword arguments."""
    ext = _block(payload, "gateway_ext_data")
    cpu = _block(payload, "cpu_info")
    tpu = _block(payload, "tpu_info")
    fields: dict[str, Any] = {
        "cpu_usage": percent(_first(cpu, "cur_cpu_usage", "cpu_rate"))
        if cpu
        else number(ext.get("cpu_usage")),
        "tpu_usage": percent(_first(tpu, "tpu_usage", "tpu_rate")),
        "temperature": number(
            _first(payload, "core_temperature", "temperature") or ext.get("temperature")
        ),
        "board_temperature": number(payload.get("board_temperature")),
        "fan_speed_rpm": rpm(payload.get("fan_speed")),
        "uptime_s": duration_s(payload.get("uptime")),
    }
    fields.update(_memory(payload, ext))
    fields.update(_disk(payload, ext))
    fields.update(_external_disk(payload))
    return fields


def _memory(payload: Mapping[str, Any], ext: Mapping[str, Any]) -> dict[str, Any]:
    memory = _block(payload, "memory_info")
    if not memory:
        return {
            "memory_size_gb": size_gb(ext.get("memory_size")),
            "memory_usage": fraction(ext.get("memory_usage")),
        }
    total = size_gb(_first(memory, "total_memory", "hardware_total_memory", "svt_memory"))
    used = size_gb(_first(memory, "total_used_memory", "svt_used_memory"))
    usage = fraction(_first(memory, "total_memory_scale", "svt_memory_usage"))
    if used is None and total is not None:
        free = size_gb(_first(memory, "total_free_memory", "svt_free_memory"))
        used = None if free is None else round(total - free, 3)
    if usage is None:
        usage = _ratio(used, total)
    return {"memory_size_gb": total, "memory_used_gb": used, "memory_usage": usage}


def _disk(payload: Mapping[str, Any], ext: Mapping[str, Any]) -> dict[str, Any]:
    disk = _block(payload, "disk_info", "emmc")
    if not disk:
        return {
            "disk_size_gb": size_gb(ext.get("disk_size")),
            "disk_free_gb": size_gb(ext.get("disk_free_size")),
        }
    total = size_gb(_first(disk, "total_disk", "hardware_total_disk", "nominal_capacity"))
    used = size_gb(disk.get("used_disk"))
    usage = fraction(_first(disk, "disk_usage", "disk_rate"))
    return {
        "disk_size_gb": total,
        "disk_free_gb": size_gb(disk.get("free_disk")),
        "disk_usage": usage if usage is not None else _ratio(used, total),
    }


def _external_disk(payload: Mapping[str, Any]) -> dict[str, Any]:
    disk = _block(payload, "external_hard_drives_info", "hdd")
    if not disk:
        return {}
    state = _first(disk, "mount_status", "external_hard_state")
    mounted = None if state is None else str(state).strip().lower() in ("1", "true", "yes")
    return {
        "external_disk_mounted": mounted,
        "external_disk_size_gb": size_gb(
            _first(disk, "external_hard_total_disk", "total_disk", "nominal_capacity")
        ),
        "external_disk_free_gb": size_gb(_first(disk, "external_hard_free_disk", "free_disk")),
    }


def reports_health(payload: Mapping[str, Any]) -> bool:
    return any(key in payload for key in HEALTH_KEYS)
