"""Whether one event opens one door: a pure function of the event, the door and its state.

The checks run from the most fundamental to the most circumstantial, and the first one
that fails decides; the rule name says which. Nothing here touches a relay or a clock
of its own, so every rule is testable with plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sophonfog_bridge import DecisionResult, Event, PersonType


@dataclass(frozen=True)
class DoorState:
    """What the decision needs to know about the door beyond its config."""

    last_open_mono: float | None = None
    already_pulsed: bool = False


@dataclass(frozen=True)
class Verdict:
    decision: DecisionResult
    rule: str
    reason: str

    @property
    def opens(self) -> bool:
        return self.decision is DecisionResult.OPEN


def _deny(rule: str, reason: str) -> Verdict:
    return Verdict(DecisionResult.DENY, rule, reason)


def who(event: Event) -> str:
    return f"{event.person_type.value} {event.identity_name or '?'} ({event.identity_id})"


def decide(
    event: Event,
    door: Mapping[str, Any],
    state: DoorState,
    *,
    live: bool,
    now: datetime,
    mono: float,
) -> Verdict:
    """Open, or deny with the rule that denied and why."""
    if not live:
        return _deny("not_live", "a replayed or retried delivery never opens a door")
    if not event.is_live:
        return _deny("history", "history events never open a door")
    if event.device_type.value not in door["device_types"]:
        return _deny(
            "device_type",
            f"device type {event.device_type.value} does not open this door "
            f"(allowed: {', '.join(door['device_types'])})",
        )
    if event.person_type is PersonType.BLACKLIST:
        return _deny("blacklist", f"{who(event)} is blacklisted")
    if event.person_type.value not in door["person_types"]:
        return _deny("person_type", f"{who(event)}: {event.person_type.value} is not allowed")
    if event.identity_id in door["deny_identities"]:
        return _deny("identity_denied", f"{who(event)} is on the deny list")
    if door["identities"] and event.identity_id not in door["identities"]:
        return _deny("identity_not_allowed", f"{who(event)} is not on the allow list")
    if door["groups"] and event.group_name not in door["groups"]:
        return _deny("group", f"{who(event)}: group {event.group_name!r} is not allowed")
    # Written so that a NaN score (false under every comparison) denies rather than opens.
    if not event.score >= door["min_score"]:
        return _deny("score", f"score {event.score:.3f} < min_score {door['min_score']:.3f}")
    age = event.age_s(now)
    if age > door["max_age_s"]:
        return _deny("stale", f"event is {age:.1f} s old (max_age_s {door['max_age_s']:g})")
    if age < -door["clock_skew_s"]:
        return _deny(
            "clock_skew",
            f"event is {-age:.1f} s in the future (clock_skew_s {door['clock_skew_s']:g})",
        )
    if state.already_pulsed:
        return _deny("duplicate", f"event {event.event_id} already pulsed this door")
    if state.last_open_mono is not None:
        since = mono - state.last_open_mono
        if since < door["cooldown_s"]:
            return _deny(
                "cooldown", f"opened {since:.1f} s ago (cooldown_s {door['cooldown_s']:g})"
            )
    return Verdict(
        DecisionResult.OPEN, "allowed", f"{who(event)} score {event.score:.3f} at {event.device}"
    )


def still_fresh(event: Event, door: Mapping[str, Any], now: datetime) -> Verdict | None:
    """Re-checked just before the pulse: a relay busy for long must not open for the past."""
    age = event.age_s(now)
    if age > door["max_age_s"]:
        return _deny(
            "stale",
            f"event was {age:.1f} s old when the relay was free (max_age_s {door['max_age_s']:g})",
        )
    return None
