"""What the emulated box knows, shared by its HTTP APIs, websocket and upload loops."""

from __future__ import annotations

from dataclasses import dataclass, field

from .devices import Device
from .identity import BoxIdentity
from .settings import Settings
from .store import EventStore


@dataclass
class BoxState:
    firmware: str
    identity: BoxIdentity
    settings: Settings
    devices: list[Device]
    username: str = "admin"
    password: str = "admin"
    store: EventStore = field(default_factory=EventStore)
    devices_initialising: bool = False  # V6 answers DEVICE_INIT_ERROR while this is set
    newest_first: bool = True  # order of event-query results (not documented)

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)
