"""A plugin for tests: on the first live event, announces a few decisions in one call.

Loaded with `--plugin batch=tests.batch_announcer:BatchAnnouncer`; what `announce_many`
answered (the seqs, None for a decision already spooled) is in its health.
"""

from __future__ import annotations

from sophonfog_bridge import DecisionResult, DoorDecision, hookimpl


class BatchAnnouncer:
    def __init__(self) -> None:
        self.seqs: list[int | None] | None = None

    @hookimpl
    def handle_event(self, event, delivery, bridge):
        if self.seqs is not None or not delivery.accepted_this_run:
            return
        one, two, three = (
            DoorDecision.for_event(event, "front", DecisionResult.DENY, reason, "test")
            for reason in ("one", "two", "three")
        )
        self.seqs = bridge.announce_many([one, two, one, three])

    @hookimpl
    def plugin_health(self):
        return {"seqs": self.seqs}
