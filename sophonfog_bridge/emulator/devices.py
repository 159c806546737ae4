"""The box's capture devices, and how each firmware lists them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEVICE_TYPES = ("photo", "rtsp", "file", "gb28181")
_NAMESPACE = uuid.UUID("5f0c2d36-6f3e-4c39-9a55-6c2b1a0e9b11")


@dataclass(frozen=True)
class Device:
    """One capture device (camera or gate) attached to the box."""

    id: str
    name: str
    ip: str
    type: str = "rtsp"
    url: str = ""
    permission_id: str = "820737ae-a6d3-4322-bf7c-46f48066fb64"
    status: str = "online"
    net_relay: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """The stream URL for video devices, the IP for gates and snapshot cameras."""
        return self.url or (self.ip if self.type == "photo" else f"rtsp://{self.ip}:554/ch1")


def default_devices(count: int) -> list[Device]:
    """`count` devices with ids that stay the same from run to run."""
    devices = []
    for i in range(count):
        kind = "photo" if i % 2 else "rtsp"
        ip = f"192.168.1.{101 + i}"
        devices.append(
            Device(
                id=str(uuid.uuid5(_NAMESPACE, f"device-{i}")),
                name=f"camera {i + 1}",
                ip=ip,
                type=kind,
                url=ip if kind == "photo" else f"rtsp://{ip}:554/ch1",
            )
        )
    return devices


def as_device(spec: Device | str | Mapping[str, Any], index: int = 0) -> Device:
    """A Device from a Device, a bare id, or a dict of Device fields (missing ones defaulted)."""
    if isinstance(spec, Device):
        return spec
    base = default_devices(index + 1)[index]
    if isinstance(spec, str):
        return replace(base, id=spec)
    unknown = set(spec) - set(Device.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown device field(s): {', '.join(sorted(unknown))}")
    device = replace(base, **dict(spec))
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"device type {device.type!r}: use one of {', '.join(DEVICE_TYPES)}")
    return device


def as_devices(specs: int | Iterable[Device | str | Mapping[str, Any]]) -> list[Device]:
    if isinstance(specs, int):
        return default_devices(specs)
    devices = [as_device(spec, i) for i, spec in enumerate(specs)]
    ids = [d.id for d in devices]
    if len(set(ids)) != len(ids):
        raise ValueError("device ids must be unique")
    return devices


def v6_device(device: Device) -> dict[str, Any]:
    """A device as `POST /sophon/v2/face/getmediadevices` lists it (no status field)."""
    return {
        "media_device_id": device.id,
        "media_device_ip": device.ip,
        "media_device_url": device.address,
        "media_device_name": device.name,
        "media_device_type": device.type,
        "net_relay": dict(device.net_relay),
        "permission_id": device.permission_id,
    }


def v5_device(device: Device) -> dict[str, Any]:
    """A device as `GET /SophonDevice/api/Devices` lists it (no status field)."""
    actions = ("do_attribute", "do_detect", "do_feature", "do_match", "do_track")
    return {
        "device_id": device.id,
        "device_name": device.name,
        "device_ip": device.ip,
        "device_key": device.address,
        "device_type": device.type,
        "group_id": "default_group",
        "permission_id": device.permission_id,
        "device_attr": {
            "actions": {
                **dict.fromkeys(actions, True),
                "fast_mode": False,
                "paint_bbox": False,
                "paint_landmark": False,
            }
        },
        "netRelay": dict(device.net_relay),
    }


def v5_preview_list(devices: list[Device]) -> dict[str, Any]:
    ids = [d.id for d in devices]
    return {
        "preview_list": ids,
        "current_preview_list": ids[:4],
        "preview_mode": "4",
        "last_set_name": "WEBUI",
    }
