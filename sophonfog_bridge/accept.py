"""The one accept path every source feeds: parse, threshold, identity and dedup, spool.

The HTTP receiver and the box websocket clients are sources of this one function, so an
event is treated alike whatever route it took; only its `transport` field says which, for
the audit. The answer depends on the spool write alone: nothing a plugin does runs here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .dedup import Admission, Verdict
from .event import IMAGE_FIELDS, EventKind
from .wire import BOX_IDS, parse_event, parse_status

if TYPE_CHECKING:
    from .bridge import Bridge
    from .event import BoxStatus, Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one payload; `recorded` is false for duplicates and dropped events."""

    event_id: str | None = None
    recorded: bool = True
    duplicate: bool = False
    dropped: str | None = None
    completes: bool = False
    # The box's time of the event, for a source that keeps track of what it has seen.
    timestamp: datetime | None = field(default=None, compare=False)

    def answer(self) -> dict[str, Any]:
        """The body the box's documented receiver gives, plus what we did with it."""
        body: dict[str, Any] = {"status": 0, "message": "SUCCESS"}
        if self.event_id is not None:
            body["event_id"] = self.event_id
        if self.duplicate:
            body["duplicate"] = True
        if self.completes:
            body["completes"] = True
        if self.dropped:
            body["dropped"] = self.dropped
        return body


class AcceptPath:
    """Turns a payload from any source into a spooled record, once."""

    def __init__(self, bridge: Bridge):
        self.bridge = bridge
        self.threshold: float = bridge.config["threshold"]
        self.max_image = bridge.config["http"]["max_image_kb"] * 1024
        self.metrics = bridge.metrics

    def event(
        self,
        payload: Mapping[str, Any],
        *,
        history: bool = False,
        transport: str = "http",
        context: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Accept one event payload. Raises WireError naming a bad field, SpoolFull.

        `context` holds what the source knows beside the payload (a box client's device
        list: the camera's IP, name and type): it fills gaps, never the identity.
        """
        event = self._parse(payload, history, transport, context)
        if event.score < self.threshold:
            self.metrics.dropped.labels("below_threshold").inc()
            log.debug("event %s below threshold (%.3f)", event.short_id, event.score)
            return Outcome(
                event.event_id, recorded=False, dropped="below_threshold", timestamp=event.timestamp
            )
        recent = self.bridge.recent_ids
        admission = recent.admit(event.event_id, photos_of(event), event.device)
        if admission.verdict is Verdict.DUPLICATE:
            self.metrics.dropped.labels("duplicate").inc()
            log.info("event %s is a duplicate; not dispatched again", event.short_id)
            return Outcome(
                event.event_id, recorded=False, duplicate=True, timestamp=event.timestamp
            )
        if admission.verdict is Verdict.COMPLETES:
            event = completion(event, admission)
            log.info(
                "event %s: a later copy completes it with %s",
                event.short_id,
                ", ".join(sorted(admission.new_photos)),
            )
        try:
            self.bridge.record(event)
        except BaseException:
            recent.undo(admission)
            raise
        for warning in event.warnings:
            log.warning("event %s: %s", event.short_id, warning)
        self.bridge.devices.observe_event(event)
        return Outcome(event.event_id, completes=event.completes, timestamp=event.timestamp)

    def _parse(
        self,
        payload: Mapping[str, Any],
        history: bool,
        transport: str,
        context: Mapping[str, Any] | None,
    ) -> Event:
        # Photos are decoded from base64 here (pybase64: ~0.02 ms for a 300 KB scene), so
        # the spool writes, checksums and reads a quarter fewer bytes, and the workers
        # decode nothing. An image that is not base64 is dropped with a warning, here.
        event = parse_event(
            payload,
            history=history,
            max_image_bytes=self.max_image,
            ep_id_for_ip=self.bridge.devices.ep_id_for_ip,
            decode_images=True,
        )
        return self._named_box(_with_source(event, transport, context))

    def status(self, payload: Mapping[str, Any], *, transport: str = "http") -> Outcome:
        """Accept one box heartbeat. Raises WireError naming a bad field, SpoolFull."""
        status = self._named_box_status(parse_status(payload))
        self.bridge.record(status)
        self.bridge.devices.observe_status(status)
        return Outcome()

    def _named_box(self, event: Event) -> Event:
        """The configured name of the event's box, if the box is one under `boxes:`."""
        name = self.bridge.box_names.name_for([event.box], [event.device])
        return dataclasses.replace(event, box=name) if name and name != event.box else event

    def _named_box_status(self, status: BoxStatus) -> BoxStatus:
        """A push names its box by serial, licence or reporter id: any of them, or a capture
        device the box listed, gives the configured name; the push's other ids are learned."""
        names = self.bridge.box_names
        ids = [status.box, *(v for k in BOX_IDS if isinstance(v := status.raw.get(k), str))]
        name = names.name_for(ids, [sub.ep_id for sub in status.sub_devices])
        if not name:
            return status
        names.learn(name, ids)
        return dataclasses.replace(status, box=name) if name != status.box else status


def photos_of(event: Event) -> frozenset[str]:
    """The photos a copy carries, by model field name."""
    return frozenset(name for name in IMAGE_FIELDS if getattr(event, name) is not None)


def completion(event: Event, admission: Admission) -> Event:
    """The record of a copy that adds photos to an event already recorded.

    History (it acts on nothing), the first copy's device (so its photos land beside the
    first's), and only the photos the first copy lacked: the rest is already known.
    """
    dropped = {name: None for name in IMAGE_FIELDS if name not in admission.new_photos}
    first = admission.first
    return dataclasses.replace(
        event,
        kind=EventKind.HISTORY,
        completes=True,
        device=first.device if first is not None and first.device else event.device,
        encoded_images=tuple(n for n in event.encoded_images if n in admission.new_photos),
        **dropped,
    )


def _with_source(event: Event, transport: str, context: Mapping[str, Any] | None) -> Event:
    changes: dict[str, Any] = {}
    if transport != event.transport:
        changes["transport"] = transport
    for name in ("device_ip", "box"):
        if context and context.get(name) and not getattr(event, name):
            changes[name] = context[name]
    device_type = (context or {}).get("device_type")
    if device_type is not None and event.device_type.value == "unknown":
        changes["device_type"] = device_type
    return dataclasses.replace(event, **changes) if changes else event
