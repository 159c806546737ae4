"""door_relay's `announce_every_s`: decisions that keep coming are announced together, at
most that often; a lone decision goes out at once, and no pulse waits for the batch.

A real bridge process, a real relay HTTP server, the recorder plugin (which writes every
record in spool order).
"""

from __future__ import annotations

import time

import pytest

from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.host import build_host

from .conftest import wait_for
from .door_relay_helpers import RelayServer, UserBackends
from .recorder import read_lines
from .test_door_relay import GATE, RECORDER, _record, config, door, ip, payload, post
from .test_door_relay_backends import _config, _remote_doors

WINDOW_S = 3.0


@pytest.fixture
def relay():
    server = RelayServer()
    yield server
    server.close()


def spooled(tmp_path) -> list[tuple[str, str]]:
    """(record kind, event id) of everything the recorder got, in spool order."""
    return [(_record(line), line["event_id"]) for line in read_lines(tmp_path / "recorded.jsonl")]


def doors_config(tmp_path, relay, every_s: float) -> dict:
    cfg = config(tmp_path, [door("front_gate", [ip(GATE)], relay, cooldown_s=0)])
    cfg["plugins"]["door_relay"]["announce_every_s"] = every_s
    return cfg


def test_decisions_that_keep_coming_go_out_together_and_no_pulse_waits(
    bridge_factory, tmp_path, relay
):
    bridge = bridge_factory(doors_config(tmp_path, relay, WINDOW_S), RECORDER)
    first = post(bridge, payload())
    # Alone: announced at once, well before the window could have passed.
    wait_for(
        lambda: ("door_decision", first) in spooled(tmp_path),
        WINDOW_S - 1.0,
        what="the lone decision, at once",
    )
    following = [post(bridge, payload()) for _ in range(3)]
    # Each pulse at its event, not when the batch is due; logged and counted as decided.
    wait_for(lambda: len(relay.seen()) == 4, WINDOW_S - 1.0, what="every pulse, at once")
    wait_for(
        lambda: all(f"[event {e}," in bridge.logs() for e in following),
        WINDOW_S - 1.5,
        what="each decision in the log when made",
    )
    assert not [e for kind, e in spooled(tmp_path) if kind == "door_decision" and e != first]
    assert bridge.health()["plugins"]["door_relay"]["doors"]["front_gate"]["opened"] == 4
    wait_for(lambda: len(spooled(tmp_path)) == 8, 15, what="every record")
    assert spooled(tmp_path) == [
        ("event", first),
        ("door_decision", first),
        *[("event", e) for e in following],
        *[("door_decision", e) for e in following],
    ]
    decided = [line for line in read_lines(tmp_path / "recorded.jsonl") if "decision" in line]
    assert [d["decision"] for d in decided] == ["open"] * 4


def test_announce_every_s_zero_announces_each_decision_on_its_own(bridge_factory, tmp_path, relay):
    bridge = bridge_factory(doors_config(tmp_path, relay, 0), RECORDER)
    ids = []
    for _ in range(3):
        ids.append(post(bridge, payload()))
        wait_for(lambda: ("door_decision", ids[-1]) in spooled(tmp_path), 5, what="its decision")
    assert spooled(tmp_path) == [(kind, e) for e in ids for kind in ("event", "door_decision")]


def test_a_remote_press_has_its_decision_before_the_batch_goes_out(tmp_path):
    """The hook's caller waits for the decision, not for its announcement."""
    pulses = tmp_path / "pulses.txt"
    cfg = _config(tmp_path, _remote_doors(pulses))
    cfg["spool"] = {"path": str(tmp_path / "data")}
    cfg["plugins"]["door_relay"]["announce_every_s"] = WINDOW_S
    del cfg["plugins"]["recorder"]
    bridge = Bridge(cfg, build_host(explicit={"user_backends": UserBackends()}))
    bridge.start()
    try:
        [opened] = [r.value for r in bridge.call("open_door", door="front_gate", source="script")]
        assert (opened.decision.value, opened.rule) == ("open", "remote")
        # Announced at once (the door was quiet); the next decision falls in the window.
        began = time.monotonic()
        [again] = [r.value for r in bridge.call("open_door", door="front_gate", source="script")]
        assert again is not None, "the caller gave up waiting for the batch"
        assert (again.decision.value, again.rule) == ("deny", "cooldown")
        assert time.monotonic() - began < WINDOW_S
    finally:
        bridge.stop()
    assert pulses.read_text() == "front_gate 2.0 remote\n"
