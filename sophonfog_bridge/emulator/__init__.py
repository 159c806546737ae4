"""An emulated V5R7 / V6 SophonFog box, for tests and for users without one.

Nothing in the bridge imports this package; the `emulate-box` command loads it on demand."""

from .box import EmulatedBox
from .devices import Device
from .identity import BoxIdentity

__all__ = ["BoxIdentity", "Device", "EmulatedBox"]
