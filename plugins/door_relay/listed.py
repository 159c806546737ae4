"""Doors that can never open for a device a V6 box lists, found when its link comes up.

A V6 record carries no device type: its events have the type the box's device list gives
(`rtsp`... an IPC, and `photo`, a gate *or* a snapshot camera, `unknown`). A door mapping
such a device whose `device_types` does not allow that type stays shut for it. That is
safe (a door is never widened silently) but surprising, so it is said once per door and
device. V5R7 records carry their own device code, so the list does not decide for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sophonfog_bridge import BoxLink


def never_opens(
    doors: Iterable[Mapping[str, Any]], link: BoxLink, said: set[tuple[str, str]]
) -> list[str]:
    """One warning per door and listed device it maps but can never open for; `said`
    remembers those already given."""
    if link.firmware != "v6":
        return []
    out = []
    for door in doors:
        for sub in link.devices:
            kind = sub.device_type.value
            mapped = sub.ep_id in door["devices"] or (sub.ip and sub.ip in door["devices"])
            if not mapped or kind in door["device_types"] or (door["name"], sub.ep_id) in said:
                continue
            said.add((door["name"], sub.ep_id))
            out.append(
                f"door {door['name']}: device {sub.ep_id} of box {link.box} sends events of "
                f"device_type {kind}, which device_types [{', '.join(door['device_types'])}] "
                f"never allows: the door stays shut for it. A V6 box's events carry no device "
                f"type, and its device list cannot tell a gate from a snapshot camera (both "
                f'are "photo", read as unknown): if this device is the door\'s gate, add '
                f"{kind} to device_types"
            )
    return out
