"""`configure-box` for V5R7 and V6 boxes: point history uploads and status pushes here.

Each generation sets its documented keys (protocol annex §3.2, §4): V5R7 through
`POST /SophonFogSys/api/HistoryEventUrl` and the system monitor on the system port
(`POST /SophonSystem/api/monitor`); V6 through `setconfigs` (`HISTORY_EVENT_UPLOAD_URL`,
`MEDIA_DEVICE_MONITOR_URL` and their periods) and `setsystemmonitorconfig`. Lists that
the docs say may hold several URLs keep the box's other receivers; a single-URL key
that names another receiver is only replaced with `--replace`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .boxapi import BoxAnswer, BoxApiError, call

HISTORY_PERIOD_S = 5  # the docs' default; the box sends what it has every period
DEVICE_STATUS_PERIOD_S = 60
SYSTEM_STATUS_PERIOD_S = 60


@dataclass
class Step:
    """One setting request; `skip` says why it will not be sent."""

    what: str
    method: str
    url: str
    body: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    skip: str | None = None


@dataclass(frozen=True)
class Targets:
    history: str
    status: str
    replace: bool = False


def merged(current: list[str] | None, url: str, replace: bool) -> list[str] | None:
    """Our URL added to the box's list (kept in place if there); None if the list is
    unknown and only --replace may overwrite it."""
    if replace:
        return [url]
    if current is None:
        return None
    return list(current) if url in current else [*current, url]


def split(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _read(method: str, url: str, body: Any, pick: Callable[[Any], Any], timeout: float) -> Any:
    """The value `pick` finds in a read answer, or None when the box will not tell."""
    answer = call(method, url, body, timeout)
    if not answer.ok:
        return None
    try:
        return pick(answer.body)
    except (AttributeError, KeyError, TypeError):
        return None


def _list_step(what: str, url: str, key: str, current: Any, ours: str, t: Targets) -> Step:
    """A POST that sets a whole list of receivers under `key` (the rest of the body is
    filled in by the caller)."""
    urls = merged(None if current is None else split(current), ours, t.replace)
    step = Step(what, "POST", url, {key: urls})
    if urls is None:
        step.skip = "cannot read the box's current list; use --replace to overwrite it"
    elif current is not None and split(current) and ours not in split(current):
        step.notes.append(f"keeps {', '.join(split(current))}")
    return step


def v5_steps(box: dict[str, Any], t: Targets, timeout: float = 5.0) -> list[Step]:
    api = f"http://{box['host']}:{box['api_port']}"
    system = f"http://{box['host']}:{box['system_port']}"
    history_url = api + "/SophonFogSys/api/HistoryEventUrl"
    current = _read(
        "GET", history_url, None, lambda b: b["data"]["history_upload_event_url"], timeout
    )
    history = _list_step(
        "history uploads", history_url, "history_upload_event_url", current, t.history, t
    )
    history.body.update(
        {
            "history_need_reg_pic": True,
            "history_need_spot_pic": True,
            "history_need_recognize_face": True,
            "content-type": "json",
            "reported_peroid": HISTORY_PERIOD_S,
        }
    )
    monitor_url = system + "/SophonSystem/api/monitor"
    current = _read("GET", monitor_url, None, lambda b: b["data"]["monitor_address_list"], timeout)
    monitor = _list_step(
        "box status pushes", monitor_url, "monitor_address_list", current, t.status, t
    )
    monitor.body["report_period"] = SYSTEM_STATUS_PERIOD_S
    monitor.notes.append(
        "V5R7 documents no local setting for the capture-device status push "
        "(its management platform issues that URL)"
    )
    return [history, monitor]


def v6_steps(box: dict[str, Any], t: Targets, timeout: float = 5.0) -> list[Step]:
    api = f"http://{box['host']}:{box['api_port']}/sophon/v2/face"
    system = f"http://{box['host']}:{box['system_port']}/sophon/v2/system"
    configs = _read("POST", api + "/getconfigs", {}, dict, timeout) or {}
    wanted = {
        "HISTORY_EVENT_UPLOAD_URL": t.history,
        "HISTORY_REPORT_PEROID": HISTORY_PERIOD_S,
        "MEDIA_DEVICE_MONITOR_URL": t.status,
        "MEDIA_DEVICE_MONITOR_REPORT_PEROID": DEVICE_STATUS_PERIOD_S,
    }
    step = Step("history uploads and capture-device status", "POST", api + "/setconfigs", {})
    for key, period in (
        ("HISTORY_EVENT_UPLOAD_URL", "HISTORY_REPORT_PEROID"),
        ("MEDIA_DEVICE_MONITOR_URL", "MEDIA_DEVICE_MONITOR_REPORT_PEROID"),
    ):
        now = str(configs.get(key) or "").strip()
        if now and now != wanted[key] and not t.replace:
            step.notes.append(f"{key} stays {now} (another receiver): use --replace to change it")
            continue
        if now and now != wanted[key]:
            step.notes.append(f"{key} replaces {now}")
        step.body[key], step.body[period] = wanted[key], wanted[period]
    step.body = {"config_dict": step.body}
    if not step.body["config_dict"]:
        step.skip = "nothing to change without --replace"
    pick = lambda b: b["device_monitor_url"]  # noqa: E731 - a one-key reader
    current = _read("POST", system + "/getsystemmonitorconfig", {}, pick, timeout)
    monitor = _list_step(
        "box status pushes",
        system + "/setsystemmonitorconfig",
        "device_monitor_url",
        current,
        t.status,
        t,
    )
    if monitor.body["device_monitor_url"] is not None:
        # A comma-separated string, as the docs' set example sends it.
        monitor.body["device_monitor_url"] = ", ".join(monitor.body["device_monitor_url"])
    monitor.body["device_monitor_report_period"] = SYSTEM_STATUS_PERIOD_S
    return [step, monitor]


STEPS = {"v5": v5_steps, "v6": v6_steps}


def send(step: Step, timeout: float = 5.0) -> BoxAnswer:
    """Send one step; BoxApiError if the box cannot be reached."""
    if step.skip:
        raise BoxApiError(step.skip)
    return call(step.method, step.url, step.body, timeout)
