"""A tiny door plugin for tests: announces one DoorDecision per live face event.

Employees and VIPs get OPEN, blacklisted people DENY, everyone else nothing. Loaded with
`--plugin fakedoor=tests.metrics_door:FakeDoor`.
"""

from __future__ import annotations

from sophonfog_bridge import DecisionResult, DoorDecision, PersonType, hookimpl

RESULTS = {
    PersonType.EMPLOYEE: (DecisionResult.OPEN, "employee"),
    PersonType.VIP: (DecisionResult.OPEN, "vip"),
    PersonType.BLACKLIST: (DecisionResult.DENY, "blacklisted"),
}


class FakeDoor:
    @hookimpl
    def config_schema(self):
        return {}

    @hookimpl
    def handle_event(self, event, delivery, bridge):
        first_try = delivery.accepted_this_run and delivery.attempt == 1
        if not (event.is_live and first_try) or event.person_type not in RESULTS:
            return
        result, reason = RESULTS[event.person_type]
        bridge.announce(DoorDecision.for_event(event, "front", result, reason, "test"))
