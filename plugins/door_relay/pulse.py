"""What a backend is asked to do, and how it says it could not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BackendError(RuntimeError):
    """The relay did not open: it was never reached, or it answered that it failed.

    The message goes into the decision's reason, which says the door stayed shut.
    """


class RelayUnconfirmed(BackendError):
    """The command left for the relay but no answer came back: the door may have opened.

    A lost answer is not a refusal: the relay may have acted on the command and the reply
    been lost (a timeout, a dropped connection). The decision says so.
    """


@dataclass(frozen=True)
class Pulse:
    """One opening: hold the relay closed for `pulse_s` seconds."""

    door: str
    pulse_s: float
    source: str = "event"
    event_id: str | None = None


class Backend(Protocol):
    """A relay driver. `pulse` returns a short confirmation or raises.

    Raise BackendError when the relay certainly did not open, RelayUnconfirmed when the
    command may have reached it; any other exception counts as unconfirmed. User backends
    (the `door_backends` hook) implement the same: `pulse(pulse) -> str`, and optionally
    `describe() -> str` (no secrets) and `close()`.
    """

    def pulse(self, pulse: Pulse) -> str: ...


def seconds_text(value: float) -> str:
    """2.0 -> "2", 1.5 -> "1.5": what device APIs expect in a URL or payload."""
    return f"{value:g}"
