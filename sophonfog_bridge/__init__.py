"""sophonfog-bridge: SophonFog / SE3 face-recognition events for Home Assistant and doors."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sophonfog-bridge")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

from .devices import device_record
from .dispatcher import Delivery, RetryLater
from .event import (
    BoxLink,
    BoxStatus,
    DecisionResult,
    DeviceType,
    DoorDecision,
    Event,
    EventKind,
    FaceRect,
    PersonType,
    SubDevice,
)
from .hookspecs import hookimpl, hookspec

__all__ = [
    "BoxLink",
    "BoxStatus",
    "DecisionResult",
    "Delivery",
    "DeviceType",
    "DoorDecision",
    "Event",
    "EventKind",
    "FaceRect",
    "PersonType",
    "RetryLater",
    "SubDevice",
    "__version__",
    "device_record",
    "hookimpl",
    "hookspec",
]
