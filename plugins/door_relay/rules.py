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
    """What the decision needs to know about the door beyond its config.

    `last_attempt` is what became of the door's latest attempt that still holds the
    cooldown: "pending" (under way), "opened", or "unconfirmed" (the relay's answer was
    lost). A failed attempt does not hold it. `already_claimed`: this event already claimed
    a pulse of this door (in the journal or in memory), whatever became of that pulse.
    """

    last_attempt_mono: float | None = None
    last_attempt: str = "opened"
    already_claimed: bool = False


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


# Long on purpose: the rules in the one order they are checked (the first that fails is the
# one reported and audited), each a test and a reason; split, the order would be hidden.
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
    if event.replayed:
        return _deny(
            "replayed",
            "a replayed event (sophonfog-bridge replay) never opens a door; "
            "replay with --live to let doors act on it",
        )
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
    if state.already_claimed:
        return _deny("duplicate", f"event {event.event_id} was already decided for this door")
    if state.last_attempt_mono is not None:
        since = mono - state.last_attempt_mono
        if since < door["cooldown_s"]:
            return _deny("cooldown", cooldown_reason(state.last_attempt, since, door["cooldown_s"]))
    return Verdict(
        DecisionResult.OPEN, "allowed", f"{who(event)} score {event.score:.3f} at {event.device}"
    )


def cooldown_reason(last_attempt: str, since: float, cooldown_s: float) -> str:
    """Why the door is in its cooldown, saying what the last attempt really did."""
    limit = f"cooldown_s {cooldown_s:g}"
    if last_attempt == "pending":
        return f"an opening of this door is in progress (started {since:.1f} s ago, {limit})"
    if last_attempt == "unconfirmed":
        return (
            f"an attempt {since:.1f} s ago was not confirmed by the relay "
            f"(the door may have opened; {limit})"
        )
    return f"opened {since:.1f} s ago ({limit})"


def remote_too_late(waited: float, door: Mapping[str, Any]) -> Verdict | None:
    """A remote command that waited too long for the relay must not open: nobody may be there."""
    if waited > door["remote_max_age_s"]:
        return _deny(
            "stale",
            f"the command waited {waited:.1f} s for the relay "
            f"(remote_max_age_s {door['remote_max_age_s']:g}): too late to open",
        )
    return None


def still_fresh(seen_at: datetime, door: Mapping[str, Any], now: datetime) -> Verdict | None:
    """Re-checked just before the pulse: a relay busy for long must not open for the past.

    `seen_at` is the event's timestamp, as the box gave it.
    """
    age = (now - seen_at).total_seconds()
    if age > door["max_age_s"]:
        return _deny(
            "stale",
            f"event was {age:.1f} s old when the relay was free (max_age_s {door['max_age_s']:g})",
        )
    return None
