"""Who the emulated box says it is: serial, licence code, MAC, addresses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoxIdentity:
    """The box's own names, as they appear in history uploads and status pushes."""

    license_key: str = "NAAXWN000120210813164813"  # V6 mq_license_key, V5 dev_sno
    serial: str = "SE5EMU0001"
    mac: str = "e0:a5:09:26:14:22"
    name: str = "SE5 emulator"
    ip: str = "192.168.1.180 192.168.150.1"  # as the docs show it: WAN, then the fixed LAN port

    @property
    def hex_mac(self) -> str:
        """The MAC as V5 writes it inside `ep_id`: `0xe0a509261422`."""
        return "0x" + self.mac.replace(":", "")
