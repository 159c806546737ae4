"""An event's identity comes from what the box sent, never from what the bridge learned.

Scenario from a review: a V2R2 event (camera IP only) opens a mapped gate; a heartbeat then
teaches the bridge that camera's ep_id; the same event re-sent past the door's cooldown got
another id (the id hashed the rewritten device), so dedup and the door journal both missed
it and the door pulsed twice.
"""

from __future__ import annotations

from sophonfog_bridge import samples

from .conftest import wait_for
from .test_door_relay import (
    GATE,
    RECORDER,
    config,
    decision_for,
    decisions,
    door,
    ip,
    payload,
    relay,
)

__all__ = ["relay"]  # the fixture, imported for the tests below


def _heartbeat_then_resend(bridge, tmp_path, relay_server):
    event = payload("v2r2", ep_id=GATE)
    first = bridge.post("/RealTimeEvent", event).json()
    assert decision_for(tmp_path, first["event_id"])["decision"] == "open"
    wait_for(lambda: len(relay_server.seen()) == 1, what="the first pulse")
    heartbeat = bridge.post("/DeviceStatus", samples.status_payload("AKOPKKKKK", devices=1))
    assert heartbeat.status_code == 200
    wait_for(bridge.drained, what="heartbeat delivered")
    again = bridge.post("/RealTimeEvent", event).json()
    assert again["event_id"] == first["event_id"]
    wait_for(bridge.drained, what="the re-sent copy handled")
    return first, again


def test_a_resent_event_after_a_heartbeat_is_a_duplicate(bridge_factory, tmp_path, relay):
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)])
    bridge = bridge_factory(cfg, RECORDER)
    _, again = _heartbeat_then_resend(bridge, tmp_path, relay)
    assert again.get("duplicate") is True
    assert len(relay.seen()) == 1


def test_without_dedup_the_door_journal_still_refuses_it(bridge_factory, tmp_path, relay):
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)], dedup_window_s=0)
    bridge = bridge_factory(cfg, RECORDER)
    first, _ = _heartbeat_then_resend(bridge, tmp_path, relay)
    wait_for(
        lambda: len([d for d in decisions(tmp_path) if d["event_id"] == first["event_id"]]) == 2,
        what="a decision about the re-sent copy",
    )
    second = [d for d in decisions(tmp_path) if d["event_id"] == first["event_id"]][1]
    assert (second["decision"], second["rule"]) == ("deny", "duplicate")
    assert len(relay.seen()) == 1
