"""The status bodies the box pushes: capture-device status and the system monitor report."""

from __future__ import annotations

from typing import Any

from .state import BoxState


def device_status(state: BoxState) -> dict[str, Any]:
    """V6 per §4.1 (`mq_license_key`, `sub_devices`); V5 as its documented push (`dev_sno`)."""
    key = state.identity.license_key
    if state.firmware == "v6":
        return {
            "mq_license_key": key,
            "sub_devices": [
                {
                    "media_device_id": d.id,
                    "media_device_url": d.address,
                    "media_device_ip": d.ip,
                    "media_device_name": d.name,
                    "media_device_status": d.status,
                    "media_device_type": d.type,
                    "permission_id": d.permission_id,
                }
                for d in state.devices
            ],
        }
    return {
        "dev_sno": key,
        "sub_devices": [
            {
                "ep_id": f"{key}__{d.address}",
                "ep_ip": d.ip,
                "ep_status": d.status,
                "ep_location": d.id,
                "ep_type": d.type,
                "ep_name": d.name,
            }
            for d in state.devices
        ],
    }


def _part(name: str, total: float, used: float) -> dict[str, Any]:
    return {
        f"{name}_scale": round(used / total, 4),
        "total": f"{total:.2f}G",
        "free": f"{total - used:.2f}G",
        "used": f"{used:.2f}G",
    }


def _uptime(seconds: float, firmware: str) -> str:
    hours, minutes = int(seconds // 3600), int(seconds % 3600 // 60)
    if firmware == "v6":
        return f"{hours}hours,{minutes}minutes"
    return f"{hours} hours, {minutes} minutes" if hours else f"{minutes} minutes"


def _memory(firmware: str) -> dict[str, Any]:
    parts = {
        "system": _part("system", 1.5, 0.9),
        "tpu": _part("tpu", 1.2, 0.4),
        "video": _part("video", 1.01, 0.2),
    }
    if firmware == "v6":
        return {
            "total_memory": "3.71G",
            "svt_memory": "3.71G",
            "svt_free_memory": "2.21G",
            "svt_used_memory": "1.50G",
            "svt_memory_usage": 0.4043,
            **parts,
        }
    return {
        "hardware_total_memory": "4G",
        "total_memory": "3.71G",
        "total_free_memory": "2.21G",
        "total_used_memory": "1.50G",
        "total_memory_scale": 0.4043,
        **parts,
    }


def _disk(mounted: bool) -> dict[str, Any]:
    return {
        "mount_status": mounted,
        "nominal_capacity": "32G" if mounted else "0G",
        "disk_usage": 0.31 if mounted else 0.0,
        "total_disk": "28.90G" if mounted else "0G",
        "free_disk": "19.94G" if mounted else "0G",
        "used_disk": "8.96G" if mounted else "0G",
    }


def system_status(state: BoxState, uptime_s: float) -> dict[str, Any]:
    """The system monitor report (§4.2) in the firmware's shape; sizes are strings like "3.71G"."""
    box, monitor = state.identity, state.settings.monitor
    top = {
        "gateway_ip": box.ip,
        "gateway_port": 80,
        "gateway_name": box.name,
        "gateway_sn": box.serial,
        "gateway_status": "online",
    }
    if state.firmware == "v6":
        return {
            **top,
            "gateway_mac": box.mac,
            "reporter_id": monitor["reporter_id"],
            "cpu_info": {
                "cur_cpu_usage": 0.23,
                "cpu_arch": "aarch64",
                "cpu_freq": "2.3GHz",
                "cpu_cores": "8",
            },
            "tpu_info": {"tpu_usage": 0.12, "tpu_description": "BM1684"},
            "memory_info": _memory("v6"),
            "emmc": _disk(True),
            "hdd": _disk(False),
            "core_temperature": 52.0,
            "board_temperature": 41.0,
            "fan_speed": 0.0,
            "uptime": _uptime(uptime_s, "v6"),
        }
    return {
        **top,
        "dev_sno": monitor["reporter_id"],
        "gateway_ext_data": {
            "sw_version": "V5R7C01",
            "sdk_version": "2.3.2",
            "nnsdk_version": "2.3.2",
            "gateway_mac": box.mac,
            "box_usage": None,
        },
        "cpu_info": {
            "cpu_rate": 0.23,
            "info": {"cpu_type": "aarch64", "cpu_freq": "2.3GHz", "cpu_count": "8"},
        },
        "tpu_info": {"tpu_rate": 0.12, "info": {"detail": "BM1684"}},
        "memory_info": _memory("v5"),
        "disk_info": {
            "hardware_total_disk": "32G",
            "disk_rate": 0.31,
            "total_disk": "28.90G",
            "free_disk": "19.94G",
            "used_disk": "8.96G",
        },
        "external_hard_drives_info": {
            "external_hard_state": "0",
            "external_hard_disk_rate": 0.0,
            "external_hard_total_disk": "0G",
            "external_hard_free_disk": "0G",
            "external_hard_used_disk": "0G",
        },
        "temperature": 52,
        "board_temperature": 41,
        "fan_speed": "0r/min",
        "uptime": _uptime(uptime_s, "v5"),
    }
