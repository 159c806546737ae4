"""The box's event database: what was recognised, with its photos, kept across restarts."""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from typing import Any

from .devices import Device
from .images import event_images

PERSON_TYPES = ("employee", "visitor", "blacklist", "stranger", "vip")
PERSON_CODES = {name: code for code, name in enumerate(PERSON_TYPES, start=1)}


def new_event(
    seq: int,
    *,
    firmware: str,
    device: Device,
    person_type: str,
    identity_id: str | None,
    name: str | None,
    score: float | None,
    timestamp_ms: int | None,
) -> dict[str, Any]:
    """One recognition as the box stores it. `score` is on the 0..100 scale."""
    if person_type not in PERSON_CODES:
        raise ValueError(f"person_type {person_type!r}: use one of {', '.join(PERSON_TYPES)}")
    ts_ms = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    stranger = person_type == "stranger"
    if identity_id is None:
        # A stranger gets an id from the clock, as in the V5 docs' example ("1602612036.3828533").
        identity_id = f"{ts_ms / 1000:.7f}" if stranger else f"{10000 + seq % 7}"
    if name is None:
        name = ("stranger" if firmware == "v5" else "") if stranger else "小明"
    if score is None:
        score = 41.5 if stranger else 92.37
    if not 0 <= score <= 100:
        raise ValueError(f"score {score}: use the 0..100 scale (V5 records divide by 100)")
    images = event_images(seq, zlib.crc32(identity_id.encode()), registered=not stranger)
    # Microseconds since the epoch, made unique by the sequence number: the V6 docs' ids
    # ("1628066406652506") look like this.
    event_us = ts_ms * 1000 + seq % 1000
    return {
        "seq": seq,
        "event_id": str(event_us),
        "v5_id": f"{event_us / 1e6:.6f}",
        "timestamp_ms": ts_ms,
        "device_id": device.id,
        "device": device,
        "person_type": person_type,
        "identity_id": identity_id,
        "identity_name": name,
        "score": float(score),
        "images": {"scene": images.scene, "face": images.face, "register": images.register},
        "image_ids": {
            "scene": uuid.uuid4().hex,
            "face": uuid.uuid4().hex,
            "register": None if stranger else str(uuid.uuid5(uuid.NAMESPACE_OID, identity_id)),
        },
        "face_box": list(images.face_box),
    }


class EventStore:
    """Every event in the order it happened, found by id or by one of its image ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._sent: set[int] = set()

    def add(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    def next_seq(self) -> int:
        with self._lock:
            return len(self._events)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return self._events[seq : seq + limit]

    def by_id(self, event_id: str) -> dict[str, Any] | None:
        return next((e for e in self.all() if event_id in (e["event_id"], e["v5_id"])), None)

    def image(self, image_id: str) -> tuple[dict[str, Any], str] | None:
        """The event holding the image with this id, and which of its photos it is."""
        for event in self.all():
            for kind, iid in event["image_ids"].items():
                if iid == image_id:
                    return event, kind
        return None

    def mark_sent(self, seq: int) -> None:
        with self._lock:
            self._sent.add(seq)

    def is_sent(self, seq: int) -> bool:
        with self._lock:
            return seq in self._sent
