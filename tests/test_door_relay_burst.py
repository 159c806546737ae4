"""door_relay in a burst: decisions queued behind a busy relay go out together, in order.

A real bridge process, a real relay HTTP server held by the test, the recorder plugin.
"""

from __future__ import annotations

import threading
import time

from .conftest import wait_for
from .door_relay_helpers import RelayServer
from .test_door_relay import GATE, RECORDER, config, decisions, door, ip, payload, post
from .test_door_relay_faults import journal_lines

MAX_AGE_S = 1.0


def test_decisions_queued_behind_a_held_relay_keep_their_order_and_truth(bridge_factory, tmp_path):
    held = RelayServer(gate=threading.Event())  # answers only when the test releases it
    front = door("front_gate", [ip(GATE)], held, cooldown_s=0, max_age_s=MAX_AGE_S)
    front["backend"]["timeout_s"] = 20
    bridge = bridge_factory(config(tmp_path, [front]), RECORDER)
    try:
        first = post(bridge, payload())
        wait_for(held.seen, 10, what="the first pulse, held at the relay")
        # Behind it: denials, and an employee whose pulse waits for its turn.
        queued = [
            post(bridge, payload(person_type="stranger")),
            post(bridge, payload()),
            post(bridge, payload(person_type="visitor")),
        ]

        def waiting() -> int:
            return bridge.health()["plugins"]["door_relay"]["doors"]["front_gate"]["queued"]

        wait_for(lambda: waiting() == len(queued), 10, what="the decisions queued")
        time.sleep(MAX_AGE_S + 0.2)  # the queued employee is now too old to open, by design
        held.gate.set()
        last = post(bridge, payload())
        found = wait_for(lambda: len(d := decisions(tmp_path)) == 5 and d, 15, what="decisions")
    finally:
        held.gate.set()
        held.close()
    assert [d["event_id"] for d in found] == [first, *queued, last]
    outcome = [(d["decision"], d["rule"]) for d in found]
    assert outcome[0] == ("open", "allowed") and outcome[4] == ("open", "allowed")
    assert outcome[1][0] == outcome[3][0] == "deny"
    assert outcome[2] == ("deny", "stale") and "when the relay was free" in found[2]["reason"]
    assert len({d["decision_id"] for d in found}) == 5
    assert len(held.seen()) == 2
    # Each pulse is journaled from intent to announcement; the stale one never got that far.
    lines = journal_lines(bridge)
    for event_id in (first, last):
        phases = [x["phase"] for x in lines if x["event_id"] == event_id]
        assert phases == ["intent", "outcome", "announced"], (event_id, phases)
    assert not [x for x in lines if x["event_id"] == queued[1]]
    assert bridge.health()["plugins"]["door_relay"]["journal_unfinished"] == 0


def test_announce_many_spools_in_order_and_each_decision_once(bridge_factory, tmp_path):
    settings = config(tmp_path, [])
    settings["plugins"]["door_relay"] = {"enabled": False}
    settings["plugins"]["batch"] = {}
    bridge = bridge_factory(settings, {**RECORDER, "batch": "tests.batch_announcer:BatchAnnouncer"})
    event_id = post(bridge, payload())
    found = wait_for(lambda: len(d := decisions(tmp_path)) == 3 and d, 10, what="decisions")
    assert [d["reason"] for d in found] == ["one", "two", "three"]
    assert {d["event_id"] for d in found} == {event_id}
    seqs = wait_for(lambda: bridge.health()["plugins"]["batch"].get("seqs"), 10, what="seqs")
    # The repeated decision is refused by its id (None); the others have their seqs, in order.
    assert seqs[2] is None and seqs[0] < seqs[1] < seqs[3], seqs
    assert [d["delivery"]["seq"] for d in found] == [seqs[0], seqs[1], seqs[3]]
