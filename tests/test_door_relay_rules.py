"""door_relay's decision function, its journal on real files, and its config validation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import voluptuous as vol
from sophonfog_bridge.plugins.door_relay.http_backend import tasmota_pulse_time
from sophonfog_bridge.plugins.door_relay.journal import Journal
from sophonfog_bridge.plugins.door_relay.rules import DoorState, decide
from sophonfog_bridge.plugins.door_relay.schema import CONFIG_SCHEMA, DOOR

from sophonfog_bridge import DecisionResult, DeviceType, Event, EventKind, PersonType

NOW = datetime(2026, 1, 5, 8, 30, tzinfo=timezone.utc)


def door(**overrides) -> dict:
    cfg = DOOR(
        {
            "name": "front_gate",
            "devices": ["192.168.1.101"],
            "backend": {"type": "http", "url": "http://127.0.0.1:9/relay/0"},
        }
    )
    cfg.update(overrides)
    return cfg


def event(**overrides) -> Event:
    fields = {
        "event_id": "e1",
        "kind": EventKind.REALTIME,
        "identity_id": "10001",
        "identity_name": "小明",
        "group_name": "staff",
        "score": 0.92,
        "timestamp": NOW - timedelta(seconds=1),
        "person_type": PersonType.EMPLOYEE,
        "device_type": DeviceType.GATE,
        "device": "192.168.1.101",
        **overrides,
    }
    return Event(**fields)


def verdict(ev: Event, cfg: dict | None = None, state: DoorState | None = None, live=True):
    return decide(ev, cfg or door(), state or DoorState(), live=live, now=NOW, mono=100.0)


def test_an_employee_opens():
    result = verdict(event())
    assert (result.decision, result.rule) == (DecisionResult.OPEN, "allowed")
    assert "小明" in result.reason


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"kind": EventKind.HISTORY}, "history"),
        ({"device_type": DeviceType.SNAPSHOT_CAMERA}, "device_type"),
        ({"device_type": DeviceType.IPC_STATIC}, "device_type"),
        ({"device_type": DeviceType.UNKNOWN}, "device_type"),
        ({"person_type": PersonType.STRANGER}, "person_type"),
        ({"person_type": PersonType.VISITOR}, "person_type"),
        ({"person_type": PersonType.VIP}, "person_type"),
        ({"person_type": PersonType.BLACKLIST, "score": 1.0}, "blacklist"),
        ({"score": 0.79}, "score"),
        ({"score": float("nan")}, "score"),
        ({"timestamp": NOW - timedelta(seconds=11)}, "stale"),
        ({"timestamp": NOW + timedelta(seconds=3)}, "clock_skew"),
    ],
)
def test_denials(overrides, rule):
    result = verdict(event(**overrides))
    assert (result.decision, result.rule) == (DecisionResult.DENY, rule)


def test_blacklist_never_opens_whatever_the_config_says():
    # The schema refuses this config; the rule holds even if it got through somehow.
    lax = door(person_types=["employee", "blacklist"], min_score=0.0, device_types=["gate"])
    result = verdict(event(person_type=PersonType.BLACKLIST, score=1.0), lax)
    assert result.rule == "blacklist"


def test_replays_never_open():
    assert verdict(event(), live=False).rule == "not_live"


def test_unknown_device_type_only_when_listed():
    allowed = door(device_types=["gate", "unknown"])
    assert verdict(event(device_type=DeviceType.UNKNOWN), allowed).opens


def test_clock_skew_margin_and_max_age_edges():
    assert verdict(event(timestamp=NOW + timedelta(seconds=1.9))).opens
    assert verdict(event(timestamp=NOW - timedelta(seconds=9.9))).opens
    assert verdict(event(timestamp=NOW + timedelta(seconds=1)), door(clock_skew_s=0)).rule == (
        "clock_skew"
    )


def test_identity_and_group_lists():
    assert verdict(event(), door(deny_identities=["10001"])).rule == "identity_denied"
    assert verdict(event(), door(identities=["20002"])).rule == "identity_not_allowed"
    assert verdict(event(), door(identities=["10001"])).opens
    assert verdict(event(), door(groups=["management"])).rule == "group"
    assert verdict(event(), door(groups=["staff"])).opens


def test_cooldown_and_duplicate():
    assert verdict(event(), state=DoorState(last_attempt_mono=98.0)).rule == "cooldown"
    assert verdict(event(), state=DoorState(last_attempt_mono=96.9)).opens
    assert verdict(event(), state=DoorState(already_claimed=True)).rule == "duplicate"


def test_journal_remembers_pulses_across_restarts(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, keep_s=86400)
    assert journal.claim("e1", "front_gate")
    assert not journal.claim("e1", "front_gate")
    assert journal.claim("e1", "back_gate")
    journal.intent("e1", "front_gate", source="event")
    journal.outcome("e1", "front_gate", result="open")
    journal.announced("e1", "front_gate")
    journal.intent("e2", "front_gate", source="event")  # died mid-pulse
    journal.intent("e3", "front_gate", source="event")
    journal.outcome("e3", "front_gate", result="open")  # died before the announcement
    journal.close()

    reopened = Journal(path, keep_s=86400)
    assert reopened.seen("e1", "front_gate") and reopened.seen("e2", "front_gate")
    assert not reopened.claim("e1", "front_gate")
    unfinished = {u["event_id"]: u.get("outcome", {}).get("result") for u in reopened.unfinished}
    assert unfinished == {"e2": None, "e3": "open"}
    # "back_gate" was claimed but never pulsed: nothing durable, so not remembered.
    assert not reopened.seen("e1", "back_gate")
    reopened.announced("e2", "front_gate")
    assert [u["event_id"] for u in reopened.unfinished] == ["e3"]
    reopened.close()


def test_journal_drops_old_entries_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    old = {"t": 1000.0, "phase": "intent", "event_id": "old", "door": "front_gate"}
    path.write_text(json.dumps(old) + "\n" + '{"t": 17, "phase": "int')
    journal = Journal(path, keep_s=3600)
    assert not journal.seen("old", "front_gate")
    journal.intent("new", "front_gate")
    journal.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event_id"] for line in lines] == ["new"]


def test_tasmota_pulse_time_encoding():
    assert [tasmota_pulse_time(s) for s in (0.05, 0.5, 2, 11.1, 12, 60)] == [
        1,
        5,
        20,
        111,
        112,
        160,
    ]


BACKEND = {"type": "http", "url": "http://127.0.0.1:9/relay/0"}


def plugin(**door_overrides) -> dict:
    cfg = {"name": "front_gate", "devices": ["192.168.1.101"], "backend": BACKEND}
    cfg.update(door_overrides)
    return {"enabled": True, "doors": [cfg]}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"enabled": True}, "enabled but has no doors"),
        (plugin(min_score=1.5), "0..1 scale"),
        (plugin(min_score=-0.1), "0..1 scale"),
        (plugin(person_types=["employee", "blacklist"]), "blacklisted people never open"),
        (plugin(person_types=["stranger"]), "opens the door for anyone"),
        (plugin(person_types=["boss"]), "value must be one of"),
        (plugin(device_types=["doorbell"]), "value must be one of"),
        (plugin(devices=[]), "length of value must be at least 1"),
        (plugin(name="Front Gate"), "use 1-40"),
        (plugin(identities=["1"], deny_identities=["1"]), "both allowed and denied"),
        (plugin(pulse_s=0), "value must be"),
        (plugin(max_age_s=3600), "value must be"),
        (plugin(colour="red"), "extra keys not allowed"),
        (plugin(backend={"type": "http"}), "either `url` or `preset`"),
        (plugin(backend={"type": "http", "url": "ftp://x/"}), "not an http(s) URL"),
        (plugin(backend={"type": "http", "preset": "shelly_gen1"}), "needs `host`"),
        (
            plugin(backend={"type": "http", "preset": "shelly_gen1", "host": "http://x/"}),
            "bare host",
        ),
        (
            plugin(backend={"type": "http", "preset": "home_assistant", "host": "ha"}),
            "needs `entity_id` and `token`",
        ),
        (plugin(backend={"type": "mqtt", "topic": "relay/#"}), "wildcards"),
        (plugin(backend={"type": "sophon", "host": "box", "action_ip": "gate"}), "IP address"),
        (plugin(backend={"type": "command", "argv": []}), "at least 1"),
        (plugin(backend={"type": "gpio"}), "required key not provided"),
        (plugin(backend={}), "`type` is required"),
    ],
)
def test_insecure_or_meaningless_configs_are_rejected(config, message):
    with pytest.raises(vol.Invalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        CONFIG_SCHEMA(config)


def test_defaults_are_the_safe_ones():
    cfg = CONFIG_SCHEMA(plugin())
    assert CONFIG_SCHEMA({}) == {
        "enabled": False,
        "doors": [],
        "journal_keep_days": 30.0,
        "announce_every_s": 0.1,
    }
    door_cfg = cfg["doors"][0]
    assert door_cfg["person_types"] == ["employee"]
    assert door_cfg["device_types"] == ["gate", "access_control"]
    assert (door_cfg["min_score"], door_cfg["max_age_s"], door_cfg["allow_remote_open"]) == (
        0.8,
        10.0,
        False,
    )
