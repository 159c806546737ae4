"""A stand-in door for the syslog tests: announces one DoorDecision per event.

Loaded with `--plugin announcer=tests.syslog_announcer:Announcer`; the decision travels
through the real bridge and spool to every plugin's `handle_door_decision`.
"""

from __future__ import annotations

from sophonfog_bridge import DecisionResult, DoorDecision, PersonType, hookimpl

RESULTS = {
    PersonType.EMPLOYEE: DecisionResult.OPEN,
    PersonType.STRANGER: DecisionResult.DENY,
    PersonType.BLACKLIST: DecisionResult.ERROR,
}


class Announcer:
    @hookimpl
    def handle_event(self, event, delivery, bridge):
        if not (delivery.accepted_this_run and delivery.attempt == 1):
            return
        result = RESULTS.get(event.person_type, DecisionResult.DENY)
        reason = f'rule "a]b\\c" said {result.value}'
        bridge.announce(DoorDecision.for_event(event, "front", result, reason, "staff"))
