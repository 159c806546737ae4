"""door_relay under faults, on a real bridge process with a real relay HTTP server.

What a lost relay answer means, what a failed attempt does to the cooldown, what /healthz
may show, that a replayed event opens nothing, and that every decision keeps one id from
the journal to the audit trail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from sophonfog_bridge import DecisionResult, DoorDecision
from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.host import build_host

from .conftest import ROOT, wait_for
from .door_relay_helpers import RelayServer
from .test_door_relay import (
    GATE,
    RECORDER,
    config,
    decision_for,
    decisions,
    door,
    ip,
    payload,
    post,
)

TOKEN = "status-page-token-1"


@pytest.fixture
def relay():
    server = RelayServer()
    yield server
    server.close()


def journal_lines(bridge) -> list[dict]:
    path = bridge.workdir / "data" / "state" / "door_relay" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_healthz_shows_no_person_data(bridge_factory, tmp_path, relay):
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)])
    cfg["http"] = {"token": TOKEN}
    cfg["plugins"]["snapshots"] = {"enabled": True, "path": str(tmp_path / "snaps")}
    bridge = bridge_factory(cfg, RECORDER)
    name, identity = "Quixotezyx 龍飛", "ID-5e1f7c9a"

    def send(body: dict) -> str:
        answer = bridge.post("/RealTimeEvent", body, headers={"X-Sophonfog-Token": TOKEN})
        assert answer.status_code == 200, answer.text
        return answer.json()["event_id"]

    opened = send(payload(identity_id=identity, identity_name=name))
    assert decision_for(tmp_path, opened)["decision"] == "open"
    # A deny whose reason names the person is the door's last decision.
    denied = send(payload(identity_id=identity, identity_name=name, person_type="visitor"))
    assert name in decision_for(tmp_path, denied)["reason"]
    wait_for(bridge.drained, what="bridge drained")
    health = requests.get(bridge.url + "/healthz", timeout=5)  # no token: open to anyone
    assert health.status_code == 200
    snapshots = health.json()["plugins"]["snapshots"]
    assert snapshots["events"] == 2 and snapshots["last_saved"]
    assert health.json()["plugins"]["door_relay"]["doors"]["front_gate"]["last_decision"]
    for text in (health.text, json.dumps(health.json(), ensure_ascii=False)):
        assert "Quixotezyx" not in text and "龍飛" not in text
        assert identity not in text
    # The detail is on the status page, behind the token.
    status = requests.get(bridge.url + "/status.json", auth=("u", TOKEN), timeout=5)
    assert status.status_code == 200 and name in status.text


def test_a_lost_relay_answer_is_reported_as_unconfirmed(bridge_factory, tmp_path):
    slow = RelayServer(gate=threading.Event())  # takes the command, answers only at the end
    try:
        doors = [
            door("front_gate", [ip(GATE)], None),  # nothing listens: refused, never sent
            door("back_gate", ["192.168.1.102"], slow),  # sent, answer lost (timeout_s 0.5)
        ]
        bridge = bridge_factory(config(tmp_path, doors), RECORDER)
        refused_id = post(bridge, payload(ep_id=GATE))
        lost_id = post(bridge, payload(ep_id="AKOPKKKKK__192.168.1.102"))
        refused = decision_for(tmp_path, refused_id, "front_gate")
        assert (refused["decision"], refused["rule"]) == ("error", "backend")
        assert "stays shut" in refused["reason"]
        lost = decision_for(tmp_path, lost_id, "back_gate")
        assert (lost["decision"], lost["rule"]) == ("error", "unconfirmed")
        assert "relay did not confirm" in lost["reason"]
        assert "may have opened" in lost["reason"]
        assert "stays shut" not in lost["reason"]
        assert len(slow.seen()) == 1  # it was sent
        outcome = [x for x in journal_lines(bridge) if x["phase"] == "outcome"]
        assert {x["door"]: x["result"] for x in outcome} == {
            "front_gate": "error",
            "back_gate": "unconfirmed",
        }
    finally:
        slow.gate.set()
        slow.close()


def test_a_failed_attempt_frees_the_cooldown(bridge_factory, tmp_path):
    relay = RelayServer(status=500)  # answers: the device refused, the door did not open
    try:
        bridge = bridge_factory(
            config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=30)]), RECORDER
        )
        failed = decision_for(tmp_path, post(bridge, payload()))
        assert (failed["decision"], failed["rule"]) == ("error", "backend")
        assert "HTTP 500" in failed["reason"] and "stays shut" in failed["reason"]
        relay.status = None  # the relay works again
        second = decision_for(tmp_path, post(bridge, payload()))
        assert (second["decision"], second["rule"]) == ("open", "allowed"), second
        # And now the cooldown holds, because the door really opened.
        third = decision_for(tmp_path, post(bridge, payload()))
        assert (third["decision"], third["rule"]) == ("deny", "cooldown")
        assert "opened" in third["reason"]
        assert len(relay.seen()) == 2
    finally:
        relay.close()


def test_after_an_unconfirmed_attempt_the_cooldown_says_what_happened(bridge_factory, tmp_path):
    # The relay takes the command, holds it until released, then hangs up without answering.
    relay = RelayServer(gate=threading.Event(), hang_up=True)
    try:
        front = door("front_gate", [ip(GATE)], relay, cooldown_s=30)
        front["backend"]["timeout_s"] = 20
        bridge = bridge_factory(config(tmp_path, [front]), RECORDER)
        first = post(bridge, payload())
        wait_for(relay.seen, 10, what="the relay holding the command")
        # While the attempt is under way, the next person is told so, not "opened" (the
        # door announces its decisions in order: this one after the first's).
        second = post(bridge, payload())
        wait_for(
            lambda: bridge.health()["plugins"]["door_relay"]["doors"]["front_gate"]["queued"] == 1,
            10,
            what="the second decision made, queued behind the first",
        )
        relay.gate.set()
        during = decision_for(tmp_path, second)
        assert (during["decision"], during["rule"]) == ("deny", "cooldown")
        assert "opened" not in during["reason"] and "in progress" in during["reason"]
        lost = decision_for(tmp_path, first)
        assert lost["rule"] == "unconfirmed" and "connection lost" in lost["reason"]
        after = decision_for(tmp_path, post(bridge, payload()))
        assert (after["decision"], after["rule"]) == ("deny", "cooldown")
        assert "not confirmed" in after["reason"]
        assert "opened" not in after["reason"].replace("may have opened", "")
        assert len(relay.seen()) == 1
    finally:
        relay.gate.set()
        relay.close()


def replay_cli(bridge, saved: Path, *flags: str) -> None:
    args = [sys.executable, "-m", "sophonfog_bridge", "replay", "-q", "--url"]
    args += [bridge.url + "/RealTimeEvent", *flags, str(saved)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "1 sent, 0 failed" in done.stdout


def test_a_replayed_event_opens_no_door_unless_live(bridge_factory, tmp_path, relay):
    bridge = bridge_factory(
        config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)]), RECORDER
    )
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(payload(identity_id="replay-1", timestamp_ms=1_700_000_000_000)))
    replay_cli(bridge, saved, "--now")
    [replayed] = wait_for(lambda: decisions(tmp_path), 10, what="the replayed event's decision")
    assert (replayed["decision"], replayed["rule"]) == ("deny", "replayed")
    assert "--live" in replayed["reason"]
    wait_for(bridge.drained, what="bridge drained")
    assert relay.seen() == []
    # Only an explicit --live lets the door act on it.
    replay_cli(bridge, saved, "--now", "--live")
    wait_for(lambda: len(decisions(tmp_path)) == 2, 10, what="the live replay's decision")
    assert decisions(tmp_path)[1]["decision"] == "open"
    assert len(relay.seen()) == 1


def test_each_decision_keeps_its_id_from_journal_to_audit(bridge_factory, tmp_path, relay):
    bridge = bridge_factory(
        config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)]), RECORDER
    )
    opened = decision_for(tmp_path, post(bridge, payload()))
    denied = decision_for(tmp_path, post(bridge, payload(score=0.1)))
    assert opened["decision_id"] and denied["decision_id"]
    assert opened["decision_id"] != denied["decision_id"]
    [intent] = [x for x in journal_lines(bridge) if x["phase"] == "intent"]
    assert intent["decision_id"] == opened["decision_id"]
    assert "seq" not in intent  # the journal no longer holds spool positions


def test_an_interrupted_pulse_is_announced_with_its_own_id(bridge_factory, tmp_path, relay):
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay)])
    bridge = bridge_factory(cfg, RECORDER)
    opened = decision_for(tmp_path, post(bridge, payload()))
    wait_for(bridge.drained, what="bridge drained")
    bridge.kill()
    journal = bridge.workdir / "data" / "state" / "door_relay" / "journal.jsonl"
    # The real opening lost its "announced" mark; a second pulse was cut off mid-way.
    kept = [x for x in journal.read_text().splitlines() if '"announced"' not in x]
    cut = {"t": time.time(), "phase": "intent", "event_id": "midway", "door": "front_gate"}
    cut["decision_id"] = "d-midway-1"
    journal.write_text("".join(line + "\n" for line in kept) + json.dumps(cut) + "\n")
    restarted = bridge_factory(cfg, RECORDER, workdir=bridge.workdir)
    midway = decision_for(tmp_path, "midway")
    assert (midway["decision_id"], midway["rule"]) == ("d-midway-1", "interrupted")
    wait_for(restarted.drained, what="restart drained")
    # The opening's decision was in the spool already: its id refused the second copy.
    same = [d for d in decisions(tmp_path) if d["decision_id"] == opened["decision_id"]]
    assert [d["rule"] for d in same] == ["allowed"]
    assert restarted.health()["plugins"]["door_relay"]["journal_unfinished"] == 0


def test_the_core_refuses_a_decision_id_it_already_holds(tmp_path):
    def spooled() -> list[str]:
        fresh = Bridge({"spool": {"path": str(tmp_path)}}, build_host(entry_points=False))
        try:
            return [r.meta["decision_id"] for r in fresh.spool.scan() if r.kind == "door_decision"]
        finally:
            fresh.spool.close()

    first = DoorDecision(door="front_gate", decision=DecisionResult.OPEN, reason="test")
    bridge = Bridge({"spool": {"path": str(tmp_path)}}, build_host(entry_points=False))
    bridge.announce(first)
    bridge.announce(first)
    bridge.spool.close()
    assert spooled() == [first.decision_id]
    # After a restart the id is still known: the spool is the memory.
    again = Bridge({"spool": {"path": str(tmp_path)}}, build_host(entry_points=False))
    again.announce(first)
    again.announce(DoorDecision(door="front_gate", decision=DecisionResult.DENY, reason="x"))
    again.spool.close()
    assert len(spooled()) == 2 and spooled()[0] == first.decision_id
