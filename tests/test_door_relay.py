"""door_relay end to end: a real bridge process, a real relay HTTP server, the recorder plugin."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from sophonfog_bridge import samples
from sophonfog_bridge.spool import Cursor

from .conftest import wait_for
from .door_relay_helpers import RelayServer
from .recorder import read_lines

# V2R2 events name their device by IP only (ep_id is a V2R1/history field, or learned by the
# core from earlier events and heartbeats), so doors here list IPs; see test_ep_id_and_ip_both_map.
GATE = "AKOPKKKKK__192.168.1.101"
OTHER_GATE = "AKOPKKKKK__192.168.1.102"
THIRD_GATE = "AKOPKKKKK__192.168.1.103"


def ip(ep_id: str) -> str:
    return ep_id.partition("__")[2]


RECORDER = {"recorder": "tests.recorder:Recorder"}
IMAGE = samples.jpeg(16, 16)


def door(name: str, devices: list[str], relay: RelayServer | None, **extra) -> dict:
    host = relay.host if relay else "127.0.0.1:9"
    return {
        "name": name,
        "devices": devices,
        "backend": {"type": "http", "preset": "shelly_gen1", "host": host, "timeout_s": 0.5},
        **extra,
    }


def config(tmp: Path, doors: list[dict], **spool) -> dict:
    return {
        "spool": spool,
        "plugins": {
            "door_relay": {"enabled": True, "doors": doors},
            "recorder": {"path": str(tmp / "recorded.jsonl")},
            "mqtt": {"enabled": False},
            "snapshots": {"enabled": False},
            "syslog": {"enabled": False},
        },
    }


def payload(shape="v2r2", **kwargs) -> dict:
    kwargs.setdefault("identity_id", uuid.uuid4().hex[:8])
    return samples.event_payload(shape, scene=IMAGE, registered=IMAGE, face=IMAGE, **kwargs)


def post(bridge, body: dict, path: str = "/RealTimeEvent") -> str:
    answer = bridge.post(path, body)
    assert answer.status_code == 200, answer.text
    return answer.json()["event_id"]


def decisions(tmp: Path) -> list[dict]:
    return [line for line in read_lines(tmp / "recorded.jsonl") if _record(line) == "door_decision"]


def _record(line: dict) -> str:
    return line.get("record") or ("door_decision" if "decision" in line else "event")


def decision_for(tmp: Path, event_id: str, door_name: str = "front_gate") -> dict:
    def find():
        found = [d for d in decisions(tmp) if d["event_id"] == event_id and d["door"] == door_name]
        return found[0] if found else None

    return wait_for(find, 10, what=f"a decision for {event_id}")


def events_seen(tmp: Path) -> set[str]:
    lines = read_lines(tmp / "recorded.jsonl")
    return {line["event_id"] for line in lines if _record(line) == "event"}


@pytest.fixture
def relay():
    server = RelayServer()
    yield server
    server.close()


def test_employee_opens_once_and_nobody_else_does(bridge_factory, tmp_path, relay):
    bridge = bridge_factory(
        config(tmp_path, [door("front_gate", [ip(GATE), ip(OTHER_GATE)], relay)], dedup_window_s=0),
        RECORDER,
    )
    now_ms = int(time.time() * 1000)
    denied = {
        "stranger": payload(person_type="stranger"),
        "visitor": payload(person_type="visitor"),
        "blacklist": payload(person_type="blacklist", score=0.99),
        "low score": payload(score=0.5),
        "snapshot camera": payload(device_type="snapshot_camera"),
        "stale": payload(timestamp_ms=now_ms - 60_000),
        "box clock ahead": payload(timestamp_ms=now_ms + 60_000),
        "unknown device type": payload("ws"),
    }
    ids = {what: post(bridge, body) for what, body in denied.items()}
    unmapped = post(bridge, payload(ep_id="ZZZZ__10.9.9.9"))
    history = post(bridge, payload("history"), "/EventServer/api/SophonFogHistoryEvent")

    expected = {
        "stranger": "person_type",
        "visitor": "person_type",
        "blacklist": "blacklist",
        "low score": "score",
        "snapshot camera": "device_type",
        "stale": "stale",
        "box clock ahead": "clock_skew",
        "unknown device type": "device_type",
    }
    for what, event_id in ids.items():
        found = decision_for(tmp_path, event_id)
        assert (found["decision"], found["rule"]) == ("deny", expected[what]), (what, found)
        assert found["reason"]
    # Unmapped devices and history events are not decisions: no announcement noise.
    wait_for(lambda: {unmapped, history} <= events_seen(tmp_path), what="both events delivered")
    wait_for(bridge.drained, what="bridge drained")
    assert not [d for d in decisions(tmp_path) if d["event_id"] in (unmapped, history)]
    assert relay.seen() == []

    # The employee: one request, exactly what a Shelly Gen1 expects, and fast.
    employee = payload(score=0.95, identity_name="小明", ep_id=OTHER_GATE)
    started = time.perf_counter()
    event_id = post(bridge, employee)
    wait_for(lambda: relay.seen(), 5, what="the relay request")
    latency_ms = (relay.seen()[0].at - started) * 1000
    opened = decision_for(tmp_path, event_id)
    assert (opened["decision"], opened["rule"], opened["source"]) == ("open", "allowed", "event")
    assert opened["identity_name"] == "小明" and opened["person_type"] == "employee"
    [request] = relay.seen()
    assert (request.method, request.route, request.query) == (
        "GET",
        "/relay/0",
        {"turn": ["on"], "timer": ["2"]},
    )
    assert latency_ms < 500, f"POST to relay took {latency_ms:.0f} ms"

    # The same POST again (core dedup is off here): the journal refuses a second pulse.
    assert post(bridge, employee) == event_id
    wait_for(
        lambda: len([d for d in decisions(tmp_path) if d["event_id"] == event_id]) == 2,
        what="the duplicate's decision",
    )
    again = [d for d in decisions(tmp_path) if d["event_id"] == event_id][1]
    assert (again["decision"], again["rule"]) == ("deny", "duplicate")

    # A burst of other employees within the cooldown: still the one pulse.
    burst = [post(bridge, payload(score=0.97)) for _ in range(5)]
    for event_id in burst:
        assert decision_for(tmp_path, event_id)["rule"] == "cooldown"
    assert len(relay.seen()) == 1

    health = bridge.health()["plugins"]["door_relay"]
    gate = health["doors"]["front_gate"]
    assert gate["opened"] == 1 and gate["backend"]["state"] == "ok"
    assert gate["last_decision"]["rule"] == "cooldown"
    print(f"POST -> relay request: {latency_ms:.1f} ms")


def test_restart_replay_never_opens(bridge_factory, tmp_path, relay):
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)])
    bridge = bridge_factory(cfg, RECORDER)
    first = post(bridge, payload())
    wait_for(lambda: len(relay.seen()) == 1, what="the first opening")
    assert decision_for(tmp_path, first)["decision"] == "open"
    wait_for(bridge.drained, what="bridge drained")
    bridge.kill()

    # As if the bridge died before door_relay's cursor moved: both records come again.
    cursor_path = Path(cfg["spool"].get("path", bridge.workdir / "data")) / "cursors"
    cursor_file = next(cursor_path.glob("door_relay*"))
    cursor = Cursor(cursor_file, 0)
    for _ in range(2):  # both slots, so the older position wins
        cursor.commit(0)
    cursor.close()

    restarted = bridge_factory(cfg, RECORDER, workdir=bridge.workdir)
    wait_for(
        lambda: len([d for d in decisions(tmp_path) if d["event_id"] == first]) == 2,
        what="the replay's decision",
    )
    replay = [d for d in decisions(tmp_path) if d["event_id"] == first][1]
    assert (replay["decision"], replay["rule"]) == ("deny", "not_live")
    assert len(relay.seen()) == 1

    # The restarted bridge still opens for a new live event.
    second = post(restarted, payload())
    assert decision_for(tmp_path, second)["decision"] == "open"
    assert len(relay.seen()) == 2


def test_relay_down_stays_shut_slow_is_unconfirmed_and_other_doors_keep_working(
    bridge_factory, tmp_path
):
    slow = RelayServer(delay_s=2.0)
    fast = RelayServer()
    try:
        doors = [
            door("front_gate", [ip(GATE)], None),  # nothing listens on port 9: refused
            door("back_gate", [ip(OTHER_GATE)], slow),
            door("side_gate", [ip(THIRD_GATE)], fast),
        ]
        bridge = bridge_factory(config(tmp_path, doors), RECORDER)
        down = post(bridge, payload(ep_id=GATE))
        late = post(bridge, payload(ep_id=OTHER_GATE))
        started = time.perf_counter()
        quick = post(bridge, payload(ep_id=THIRD_GATE))
        wait_for(lambda: fast.seen(), 5, what="the fast door's relay")
        # The side gate did not wait for the back gate's hanging relay.
        assert fast.seen()[0].at - started < 0.4

        refused = decision_for(tmp_path, down, "front_gate")
        assert (refused["decision"], refused["rule"]) == ("error", "backend")
        assert "unreachable" in refused["reason"] and "stays shut" in refused["reason"]
        timed_out = decision_for(tmp_path, late, "back_gate")
        # Sent, but the answer never came: the relay may have acted on it.
        assert (timed_out["decision"], timed_out["rule"]) == ("error", "unconfirmed")
        assert "timed out" in timed_out["reason"] and "may have opened" in timed_out["reason"]
        assert decision_for(tmp_path, quick, "side_gate")["decision"] == "open"

        # The bridge keeps answering, and a failed opening is never re-pulsed later.
        assert bridge.post("/RealTimeEvent", payload(ep_id="ZZ__10.1.1.1")).status_code == 200
        health = bridge.health()["plugins"]["door_relay"]["doors"]
        assert health["front_gate"]["backend"]["state"] == "error"
        assert "unreachable" in health["front_gate"]["backend"]["last_error"]
        assert health["front_gate"]["last_decision"]["decision"] == "error"
        wait_for(bridge.drained, what="bridge drained")
        back = bridge.health()["plugins"]["door_relay"]["doors"]["back_gate"]
        assert (back["queued"], back["errors"], back["opened"]) == (0, 1, 0)
        assert len(slow.seen()) == 1
    finally:
        slow.close()
        fast.close()


def test_insecure_config_is_refused(bridge_factory, tmp_path, relay):
    bad = door("front_gate", [GATE], relay, person_types=["employee", "blacklist"])
    bridge = bridge_factory(config(tmp_path, [bad]), RECORDER, wait=False)
    assert bridge.proc.wait(15) != 0
    assert "blacklisted people never open a door" in bridge.logs()
    assert "plugins.door_relay.doors.0.person_types" in bridge.logs()


def test_ep_id_and_ip_both_map(bridge_factory, tmp_path, relay):
    unseen = "AKOPKKKKK__192.168.1.150"
    doors = [door("front_gate", [GATE, unseen], relay, cooldown_s=0)]
    bridge = bridge_factory(config(tmp_path, doors), RECORDER)
    # V2R2 names its camera by IP only: a door listing only the ep_id cannot serve a camera
    # whose ep_id the bridge has not learned yet...
    by_ip = post(bridge, payload("v2r2", ep_id=unseen))
    wait_for(lambda: by_ip in events_seen(tmp_path), what="the IP-only event delivered")
    wait_for(bridge.drained, what="bridge drained")
    assert not [d for d in decisions(tmp_path) if d["event_id"] == by_ip]
    assert relay.seen() == []
    # ...V2R1 names it by ep_id, and from then on the core gives later IP-only events that ep_id.
    by_ep_id = post(bridge, payload("v2r1", ep_id=GATE))
    assert decision_for(tmp_path, by_ep_id)["decision"] == "open"
    learned = post(bridge, payload("v2r2", ep_id=GATE))
    opened = decision_for(tmp_path, learned)
    assert (opened["decision"], opened["device"]) == ("open", GATE)
    assert len(relay.seen()) == 2


def test_a_pulse_cut_off_before_its_report_is_announced_at_the_next_start(
    bridge_factory, tmp_path, relay
):
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay)])
    bridge = bridge_factory(cfg, RECORDER)
    opened = post(bridge, payload())
    assert decision_for(tmp_path, opened)["decision"] == "open"
    wait_for(bridge.drained, what="bridge drained")
    bridge.kill()
    # A kill -9 after the announcement but before its journal mark: the decision is in the
    # spool, so the next start must not announce it again.
    journal = bridge.workdir / "data" / "state" / "door_relay" / "journal.jsonl"
    kept = [x for x in journal.read_text().splitlines() if '"announced"' not in x]
    assert len(kept) == 2  # intent and outcome of the real opening
    now = time.time()
    # And what a kill -9 between the relay's answer and the announcement leaves behind.
    journal.write_text(
        "\n".join(kept)
        + "\n"
        + "".join(
            json.dumps(line) + "\n"
            for line in (
                {"t": now, "phase": "intent", "event_id": "pulsed", "door": "front_gate"},
                {
                    "t": now,
                    "phase": "outcome",
                    "event_id": "pulsed",
                    "door": "front_gate",
                    "result": "open",
                },
                {"t": now, "phase": "intent", "event_id": "midway", "door": "front_gate"},
                {"t": now, "phase": "intent", "event_id": "done", "door": "front_gate"},
                {
                    "t": now,
                    "phase": "outcome",
                    "event_id": "done",
                    "door": "front_gate",
                    "result": "open",
                },
                {"t": now, "phase": "announced", "event_id": "done", "door": "front_gate"},
            )
        )
    )
    restarted = bridge_factory(cfg, RECORDER, workdir=bridge.workdir)
    pulsed, midway = decision_for(tmp_path, "pulsed"), decision_for(tmp_path, "midway")
    assert (pulsed["decision"], pulsed["rule"]) == ("open", "interrupted")
    assert (midway["decision"], midway["rule"]) == ("error", "interrupted")
    assert "may have opened" in midway["reason"]
    assert not [d for d in decisions(tmp_path) if d["event_id"] == "done"]
    wait_for(restarted.drained, what="drained")
    assert len([d for d in decisions(tmp_path) if d["event_id"] == opened]) == 1
    assert len(relay.seen()) == 1
    # Announced once: a second restart has nothing left to report.
    restarted.stop()
    third = bridge_factory(cfg, RECORDER, workdir=bridge.workdir)
    wait_for(third.drained, what="third start drained")
    assert len([d for d in decisions(tmp_path) if d["rule"] == "interrupted"]) == 2


def test_a_failed_startup_releases_the_journal(bridge_factory, tmp_path, relay):
    doors = [
        door("front_gate", [GATE], relay),
        {**door("vault", [OTHER_GATE], relay), "backend": {"type": "no_such_relay"}},
    ]
    bridge = bridge_factory(config(tmp_path, doors), RECORDER)
    wait_for(lambda: "unknown backend type 'no_such_relay'" in bridge.logs(), what="the refusal")
    fd_dir = Path(f"/proc/{bridge.proc.pid}/fd")
    targets = []
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            targets.append(os.readlink(fd))
    assert not [t for t in targets if t.endswith("journal.jsonl")], targets
    post(bridge, payload())
    wait_for(bridge.drained, what="bridge drained")
    assert relay.seen() == []
    assert bridge.stop() == 0
