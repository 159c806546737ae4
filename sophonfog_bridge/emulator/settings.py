"""The box's configuration: the documented config keys per firmware, and the monitor config."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

V6_DEFAULTS: dict[str, Any] = {
    "HISTORY_EVENT_UPLOAD_URL": "",
    "HISTORY_REPORT_PEROID": 5,
    "MEDIA_DEVICE_MONITOR_URL": "",
    "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 60,
    "WEB_HEART_URL": "",
    "WEB_HEART_TIME": 20,
    "GATE_PASS_MODE": "normal",
    "MATCH_THRESHOLD": 82.0,
    "GATE_DUPLICATE_REMOVAL_TIMEOUT": 6,
    "GATE_WORK_MODE": "local",
    "GATE_APPLY_MODE": "recognize",
    "GATE_SUPPORT_STRANGER_GROUP": False,
    "GATE_EVENT_IMAGE_PATH": "local",
    "REGN_IMAGE_TYPE": "all",
    "GRAB_IMAGE_TYPE": "recognize_face",
    "MQ_LICENSE_KEY": "",
    "MQ_LOGIN_URL": "",
    "MQ_LOGIN_TOKEN": "",
}

V5_DEFAULTS: dict[str, Any] = {
    "HISTORY_UPLOAD_EVENT_URL": "",
    "HISTORY_CONTENT_TYPE": "json",
    "HISTORY_EVENT_NEED_REG_PIC": True,
    "HISROTY_EVENT_NEED_REG_PIC": "true",
    "HISTORY_EVENT_NEED_SPOT_PIC": True,
    "HISTORY_EVENT_NEED_RECOGNIZE_FACE": True,
    "HISTORY_UPLOAD_NEED_INFO": True,
    "REPORTED_PEROID": 5,
    "PASSMODE": "normal",
    "THRESHOLD": 82,
    "THRESHOLD_RANGE": "0.0,82.0,100.0",
    "DUPLICATE_REMOVAL_TIMEOUT": 6,
    "WORK_MODE": "mq",
    "APPLY_MODE": "recognize",
    "SUPPORT_STRANGER_GROUP": False,
    "EVENT_IMAGE_PATH": "local",
    "PHOTO_TYPE": "recognize_face",
    "DEV_SNO": "",
    "LOGIN_URL": "",
    "LOGIN_TOKEN": "",
    "EVENT_WORK_MODE": "opendoor",
    "DEVICE_MONITOR_ADDR": "",
    "WEB_HEART_URL": "",
    "WEB_HEART_TIME": 20,
    "DEVICE_LIST_INFO_UPLOAD_ADDR": "",
    "EVENTOPLAD_URL": "",
}

PERIOD_KEYS = {
    "HISTORY_REPORT_PEROID",
    "MEDIA_DEVICE_MONITOR_REPORT_PEROID",
    "WEB_HEART_TIME",
    "REPORTED_PEROID",
}


def split_urls(value: Any) -> list[str]:
    """URLs from a list or a comma-separated string (V5 writes "http://a/report,")."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _check(name: str, value: Any, defaults: dict[str, Any]) -> Any:
    """The value to keep, or ValueError naming the problem."""
    if name not in defaults:
        raise ValueError(f"unknown config {name!r}")
    if name in PERIOD_KEYS:
        # The V6 table types values as strings ("6.0"); the examples send numbers.
        period = float(value)
        if period <= 0:
            raise ValueError(f"{name} must be a positive number of seconds")
        return int(period) if period.is_integer() else period
    if isinstance(defaults[name], str) and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


class Settings:
    """The config dictionary, and the system-monitor config of port 8888."""

    def __init__(self, firmware: str, license_key: str) -> None:
        self.defaults = V6_DEFAULTS if firmware == "v6" else V5_DEFAULTS
        self._values = dict(self.defaults)
        self._values["MQ_LICENSE_KEY" if firmware == "v6" else "DEV_SNO"] = license_key
        self._lock = threading.Lock()
        self.firmware = firmware
        self.monitor: dict[str, Any] = {"urls": [], "period": 20, "reporter_id": license_key}
        self.on_change: Callable[[], None] = lambda: None  # the upload loops re-read at once

    def all(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def get(self, name: str) -> Any:
        with self._lock:
            return self._values[name]

    def update(self, values: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """Keep every valid key; the names kept and, per rejected key, why."""
        ok, failed = [], {}
        for name, value in values.items():
            try:
                checked = _check(name, value, self.defaults)
            except (TypeError, ValueError) as err:
                failed[name] = str(err)
                continue
            with self._lock:
                self._values[name] = checked
            ok.append(name)
        if ok:
            self.on_change()
        return ok, failed

    def history(self) -> tuple[list[str], float]:
        """Where history uploads go, and every how many seconds."""
        url_key, period_key = (
            ("HISTORY_EVENT_UPLOAD_URL", "HISTORY_REPORT_PEROID")
            if self.firmware == "v6"
            else ("HISTORY_UPLOAD_EVENT_URL", "REPORTED_PEROID")
        )
        return split_urls(self.get(url_key)), self.get(period_key)

    def history_photos(self) -> frozenset[str]:
        """Which photos V5 history uploads carry (V6 always sends all three)."""
        keys = {
            "reg": "HISTORY_EVENT_NEED_REG_PIC",
            "spot": "HISTORY_EVENT_NEED_SPOT_PIC",
            "face": "HISTORY_EVENT_NEED_RECOGNIZE_FACE",
        }
        if self.firmware == "v6":
            return frozenset(keys)
        return frozenset(k for k, key in keys.items() if self.get(key) not in (False, "false"))

    def device_monitor(self) -> tuple[list[str], float]:
        """Where capture-device status goes. V6 documents two key pairs; the first set wins.
        V5 names no key for this push; WEB_HEART_URL is the emulator's guess."""
        if self.firmware == "v6" and self.get("MEDIA_DEVICE_MONITOR_URL"):
            urls = split_urls(self.get("MEDIA_DEVICE_MONITOR_URL"))
            return urls, self.get("MEDIA_DEVICE_MONITOR_REPORT_PEROID")
        return split_urls(self.get("WEB_HEART_URL")), self.get("WEB_HEART_TIME")

    def set_monitor(self, urls: list[str], period: Any, reporter_id: Any = None) -> None:
        period = float(period)
        if period <= 0:
            raise ValueError("the report period must be a positive number of seconds")
        with self._lock:
            self.monitor = {
                "urls": urls,
                "period": int(period) if period.is_integer() else period,
                "reporter_id": self.monitor["reporter_id"] if reporter_id is None else reporter_id,
            }
        self.on_change()

    def system_monitor(self) -> tuple[list[str], float]:
        with self._lock:
            return list(self.monitor["urls"]), self.monitor["period"]
