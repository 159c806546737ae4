"""What the status page shows, kept in memory: recent events, door decisions, boxes.

Everything here is filled from the plugin's own spool worker and read by HTTP threads,
so every access goes through one lock. Nothing is written to disk: after a restart the
page starts empty and fills as events arrive.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sophonfog_bridge import BoxLink, BoxStatus, DoorDecision, Event

IMAGES = {"face": "face_pic", "scene": "spot_pic", "registered": "reg_pic", "ir": "ir_pic"}


@dataclass
class Entry:
    event: Event
    thumbs: dict[str, bytes] = field(default_factory=dict)


class Board:
    def __init__(self, max_events: int):
        self.max_events = max_events
        self._lock = threading.Lock()
        self._events: OrderedDict[str, Entry] = OrderedDict()
        self._decisions: OrderedDict[str, DoorDecision] = OrderedDict()
        self._remote: list[DoorDecision] = []
        self._boxes: dict[str, BoxStatus] = {}
        self._links: dict[str, BoxLink] = {}

    def add_event(self, event: Event) -> None:
        with self._lock:
            entry = self._events.get(event.event_id)
            if event.completes and entry is not None:
                # A later copy's photos join the first copy's entry, where it stands.
                photos = {a: getattr(event, a) for a in IMAGES.values() if getattr(event, a)}
                entry.event = dataclasses.replace(entry.event, **photos)
                for which, attr in IMAGES.items():
                    if attr in photos:
                        entry.thumbs.pop(which, None)
                return
            self._events.pop(event.event_id, None)
            self._events[event.event_id] = Entry(event)
            while len(self._events) > self.max_events:
                self._events.popitem(last=False)

    def add_decision(self, decision: DoorDecision) -> None:
        with self._lock:
            if decision.event_id:
                self._decisions[decision.event_id] = decision
                # Decisions can outlive their events only briefly; keep a bounded map.
                while len(self._decisions) > 4 * self.max_events:
                    self._decisions.popitem(last=False)
            else:
                self._remote = [decision, *self._remote][: self.max_events]

    def add_box(self, status: BoxStatus) -> None:
        with self._lock:
            self._boxes[status.box] = status.merged_onto(self._boxes.get(status.box))

    def add_link(self, link: BoxLink) -> None:
        with self._lock:
            self._links[link.box] = link

    def image(self, event_id: str, which: str) -> tuple[bytes | None, dict[str, bytes] | None]:
        """The original image bytes and the entry's thumbnail cache, or (None, None)."""
        attr = IMAGES.get(which)
        with self._lock:
            entry = self._events.get(event_id)
            if entry is None or attr is None:
                return None, None
            return getattr(entry.event, attr), entry.thumbs

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._events.values())
            decisions = dict(self._decisions)
        out = []
        for entry in reversed(entries):
            e = entry.event
            decision = decisions.get(e.event_id)
            out.append(
                {
                    "event_id": e.event_id,
                    "kind": e.kind.value,
                    "timestamp": e.timestamp.isoformat(),
                    "identity_id": e.identity_id,
                    "identity_name": e.identity_name,
                    "group_name": e.group_name,
                    "person_type": e.person_type.value,
                    "device": e.device,
                    "device_type": e.device_type.value,
                    "score": round(e.score, 4),
                    "images": [w for w, a in IMAGES.items() if getattr(e, a) is not None],
                    "door": _decision(decision) if decision else None,
                }
            )
        return out

    def remote_decisions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_decision(d) for d in self._remote]

    def boxes(self, known_devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Boxes with their capture devices: heartbeats for online state, plus every
        device the bridge remembers (online unknown until a heartbeat names it)."""
        with self._lock:
            statuses = dict(self._boxes)
            links = dict(self._links)
        boxes = {status.box: _heartbeat_box(status) for status in statuses.values()}
        for known in known_devices:
            _add_known_device(boxes, known)
        for name, link in links.items():
            box = boxes.setdefault(name, _unheard_box(name))
            box["link"] = {
                "connected": link.connected,
                "since": link.since.isoformat(),
                "firmware": link.firmware,
                "reason": link.reason,
            }
            if box["online"] is None:
                box["online"] = link.connected
        return [
            {**box, "devices": sorted(box["devices"].values(), key=lambda d: d["device"])}
            for _, box in sorted(boxes.items())
        ]


def _unheard_box(name: str) -> dict[str, Any]:
    """A box known only by name so far: no heartbeat has said whether it is online."""
    return {"box": name, "name": "", "ip": None, "online": None, "devices": {}}


def _heartbeat_box(status: BoxStatus) -> dict[str, Any]:
    return {
        "box": status.box,
        "name": status.name,
        "ip": status.ip,
        "online": status.online,
        "cpu_usage": status.cpu_usage,
        "tpu_usage": status.tpu_usage,
        "memory_usage": status.memory_usage,
        "disk_free_gb": status.disk_free_gb,
        "temperature": status.temperature,
        "board_temperature": status.board_temperature,
        "uptime_s": status.uptime_s,
        "seen_at": status.received_at.isoformat(),
        "devices": {
            sub.ep_id: {
                "device": sub.ep_id,
                "name": sub.name,
                "ip": sub.ip,
                "device_type": sub.device_type.value,
                "location": sub.location,
                "online": sub.online,
            }
            for sub in status.sub_devices
        },
    }


def _add_known_device(boxes: dict[str, dict[str, Any]], known: dict[str, Any]) -> None:
    """A device the bridge remembers, under its box, unless a heartbeat already named it."""
    key = known.get("box") or "(no box)"
    box = boxes.setdefault(key, _unheard_box(key))
    device = known.get("device") or "unknown"
    if device not in box["devices"]:
        box["devices"][device] = {
            "device": device,
            "name": known.get("name", ""),
            "ip": known.get("device_ip"),
            "device_type": known.get("device_type", "unknown"),
            "location": known.get("location", ""),
            "online": None,
        }


def _decision(decision: DoorDecision) -> dict[str, Any]:
    return {
        "door": decision.door,
        "decision": decision.decision.value,
        "reason": decision.reason,
        "rule": decision.rule,
        "source": decision.source,
        "identity_name": decision.identity_name,
        "decided_at": decision.decided_at.isoformat(),
    }
