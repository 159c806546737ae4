"""What is said about an event or a door decision, and how it is written: RFC 5424 or 3164."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from sophonfog_bridge import DoorDecision, Event

BOM = b"\xef\xbb\xbf"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Line breaks and other control characters would split a message under newline framing.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_NOT_PRINTUSASCII = re.compile(r"[^!-~]")


@dataclass(frozen=True)
class Message:
    severity: int
    msgid: str
    moment: datetime
    params: tuple[tuple[str, str], ...]
    text: str


def one_line(value: object) -> str:
    text = str(value)
    # Every character _CONTROL matches is unprintable: most values skip the regex.
    if not text.isprintable():
        text = _CONTROL.sub(" ", text)
    return text.strip()


def _params(pairs: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple((k, one_line(v)) for k, v in pairs.items() if v not in (None, ""))


def event_message(event: Event, severities: Mapping[str, int]) -> Message:
    name = event.identity_name or event.identity_id
    history = " (history)" if not event.is_live else ""
    text = (
        f"{name} ({event.person_type.value}, id {event.identity_id}) recognised at "
        f"{event.device}, score {event.score:.2f}{history}"
    )
    params = {
        "event_id": event.event_id,
        "kind": event.kind.value,
        "identity_id": event.identity_id,
        "name": event.identity_name,
        "group": event.group_name,
        "person_type": event.person_type.value,
        "score": f"{event.score:.3f}",
        "device": event.device,
        "device_type": event.device_type.value,
        "box": event.box,
        "time": event.timestamp.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
    }
    return Message(
        severities[event.person_type.value], "EVENT", event.timestamp, _params(params), text
    )


def door_message(decision: DoorDecision, severities: Mapping[str, int]) -> Message:
    who = decision.identity_name or decision.identity_id or decision.source
    kind = f" ({decision.person_type})" if decision.person_type else ""
    text = f"door {decision.door}: {decision.decision.value} for {who}{kind}: {decision.reason}"
    params = {
        "door": decision.door,
        "decision": decision.decision.value,
        "reason": decision.reason,
        "rule": decision.rule,
        "source": decision.source,
        "event_id": decision.event_id,
        "decision_id": decision.decision_id,
        "identity_id": decision.identity_id,
        "name": decision.identity_name,
        "person_type": decision.person_type,
        "device": decision.device,
        "score": None if decision.score is None else f"{decision.score:.3f}",
    }
    return Message(
        severities[decision.decision.value], "DOOR", decision.decided_at, _params(params), text
    )


def sd_escape(value: str) -> str:
    """RFC 5424 6.3.3: `"`, `\\` and `]` in a PARAM-VALUE are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def header_field(value: str, max_len: int) -> str:
    """A header field: PRINTUSASCII, bounded, `-` when empty (RFC 5424 NILVALUE)."""
    text = _NOT_PRINTUSASCII.sub("-", value)[:max_len]
    return text or "-"


@dataclass(frozen=True)
class Formatter:
    format: str
    facility: int
    app_name: str
    sd_id: str
    hostname: str
    procid: int
    # Local daemons (journald, rsyslog's socket) add the hostname themselves.
    local: bool = False

    def render(self, message: Message) -> bytes:
        pri = self.facility * 8 + message.severity
        if self.format == "rfc3164":
            return self._rfc3164(pri, message)
        return self._rfc5424(pri, message)

    def _rfc5424(self, pri: int, message: Message) -> bytes:
        stamp = message.moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
        header = " ".join(
            (
                f"<{pri}>1",
                stamp.replace("+00:00", "Z"),
                header_field(self.hostname, 255),
                header_field(self.app_name, 48),
                str(self.procid),
                header_field(message.msgid, 32),
            )
        )
        params = "".join(f' {k}="{sd_escape(v)}"' for k, v in message.params)
        sd = f"[{self.sd_id}{params}]" if params else "-"
        return f"{header} {sd} ".encode() + BOM + one_line(message.text).encode("utf-8")

    def _rfc3164(self, pri: int, message: Message) -> bytes:
        local = message.moment.astimezone()
        stamp = f"{MONTHS[local.month - 1]} {local.day:2d} {local:%H:%M:%S}"
        host = "" if self.local else header_field(self.hostname.split(".")[0], 255) + " "
        pairs = " ".join(f'{k}="{sd_escape(v)}"' for k, v in message.params)
        text = f"{message.msgid} {one_line(message.text)} [{pairs}]"
        return f"<{pri}>{stamp} {host}{self.app_name}[{self.procid}]: {text}".encode()
