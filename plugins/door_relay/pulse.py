"""What a backend is asked to do, and how it says it could not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BackendError(RuntimeError):
    """The relay did not confirm the pulse; the message goes into the decision's reason."""


@dataclass(frozen=True)
class Pulse:
    """One opening: hold the relay closed for `pulse_s` seconds."""

    door: str
    pulse_s: float
    source: str = "event"
    event_id: str | None = None


class Backend(Protocol):
    """A relay driver. `pulse` returns a short confirmation or raises (BackendError ideally).

    User backends (the `door_backends` hook) implement the same: `pulse(pulse) -> str`,
    and optionally `describe() -> str` (no secrets) and `close()`.
    """

    def pulse(self, pulse: Pulse) -> str: ...


def seconds_text(value: float) -> str:
    """2.0 -> "2", 1.5 -> "1.5": what device APIs expect in a URL or payload."""
    return f"{value:g}"
