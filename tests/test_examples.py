"""The example plugins in examples/, installed as their own packages (entry points in the
`sophonfog_bridge` group), end to end in a real bridge with a real HTTP receiver.

They must be installed first: pip install -e examples/attendance-csv -e examples/webhook
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from sophonfog_bridge import samples

from .conftest import ROOT, free_port, wait_for
from .examples_receiver import Receiver

INSTALL = "pip install -e examples/attendance-csv -e examples/webhook"
BUNDLED_OFF = {name: {"enabled": False} for name in ("mqtt", "snapshots", "syslog", "status")}
EP_GATE = "AKOPKKKKK__192.168.1.101"
EP_DOOR = "AKOPKKKKK__192.168.1.102"
EP_EXIT = "AKOPKKKKK__192.168.1.103"


@pytest.fixture(scope="module", autouse=True)
def examples_installed() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="sophonfog_bridge")}
    missing = [n for n in ("attendance_csv", "webhook") if n not in names]
    if missing:
        pytest.fail(f"example plugins not installed ({', '.join(missing)}); run: {INSTALL}")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def post(bridge, identity: str, name: str, at: str, ep_id: str, **kw):
    shape = kw.pop("shape", "v2r1")  # v2r1 carries ep_id at the top, so device = ep_id
    path = "/EventServer/api/SophonFogHistoryEvent" if shape == "history" else "/RealTimeEvent"
    payload = samples.event_payload(
        shape, identity_id=identity, identity_name=name, timestamp_ms=ms(at), ep_id=ep_id, **kw
    )
    answer = bridge.post(path, payload)
    assert answer.status_code == 200, answer.text
    return answer.json()


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return {row["identity_id"]: row for row in csv.DictReader(handle)}
    except FileNotFoundError:
        return {}


def test_plugins_command_lists_the_examples(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "plugins", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert rows["attendance_csv"]["loaded"] and rows["webhook"]["loaded"]
    assert rows["attendance_csv"]["source"].startswith("sophonfog-attendance-csv")
    assert rows["webhook"]["source"].startswith("sophonfog-webhook")
    assert "handle_event" in rows["attendance_csv"]["hooks"]
    assert {"handle_event", "plugin_health"} <= set(rows["webhook"]["hooks"])


def test_attendance_csv_first_and_last_seen_per_day(bridge_factory, tmp_path):
    folder = tmp_path / "attendance"
    config = {
        # No dedupe in the core: copies of events reach the plugin, which must cope.
        "spool": {"dedup_window_s": 0},
        "plugins": {
            **BUNDLED_OFF,
            "webhook": {"enabled": False},
            "attendance_csv": {"path": str(folder), "timezone": "UTC"},
        },
    }
    bridge = bridge_factory(config)
    day = folder / "attendance-2024-03-04.csv"

    post(bridge, "1", "Ada", "2024-03-04T08:00:00", EP_GATE)
    post(bridge, "1", "Ada", "2024-03-04T17:30:00", EP_EXIT)
    post(bridge, "1", "Ada", "2024-03-04T12:00:00", EP_DOOR)  # in between: no change
    post(bridge, "1", "Ada", "2024-03-04T08:00:00", EP_GATE)  # sent twice by the box
    post(bridge, "2", "Grace", "2024-03-04T09:15:00", EP_DOOR)
    post(bridge, "3", "Visitor", "2024-03-04T10:00:00", EP_GATE, person_type="visitor")
    post(bridge, "1", "Ada", "2024-03-05T07:59:00", EP_GATE)  # the next day, its own file
    wait_for(lambda: bridge.drained(), what="the plugin to catch up")

    rows = read_csv(day)
    assert set(rows) == {"1", "2"}, "visitors are not in the employee attendance"
    assert rows["1"] == {
        "date": "2024-03-04",
        "identity_id": "1",
        "identity_name": "Ada",
        "group_name": "staff",
        "first_seen": "2024-03-04T08:00:00+00:00",
        "first_device": EP_GATE,
        "last_seen": "2024-03-04T17:30:00+00:00",
        "last_device": EP_EXIT,
    }
    assert rows["2"]["first_seen"] == rows["2"]["last_seen"] == "2024-03-04T09:15:00+00:00"
    assert list(read_csv(folder / "attendance-2024-03-05.csv")) == ["1"]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [], "temp files left"

    # A history copy of a sighting already counted changes nothing; a history event the
    # bridge never saw in real time (it was down) fills the gap.
    before = day.read_bytes()
    post(bridge, "1", "Ada", "2024-03-04T17:30:00", EP_EXIT, shape="history")
    post(bridge, "2", "Grace", "2024-03-04T09:15:00", EP_DOOR, shape="history")
    wait_for(lambda: bridge.drained(), what="history to be processed")
    assert day.read_bytes() == before
    post(bridge, "2", "Grace", "2024-03-04T07:05:00", EP_GATE, shape="history")
    wait_for(
        lambda: read_csv(day)["2"]["first_seen"] == "2024-03-04T07:05:00+00:00",
        what="history to fill the gap",
    )
    assert read_csv(day)["2"]["first_device"] == EP_GATE

    # The rows survive a restart: the plugin reads the day file back and merges into it.
    assert bridge.stop() == 0
    bridge.start()
    post(bridge, "1", "Ada", "2024-03-04T18:45:00", EP_GATE)
    wait_for(
        lambda: read_csv(day)["1"]["last_seen"] == "2024-03-04T18:45:00+00:00",
        what="a sighting after the restart",
    )
    rows = read_csv(day)
    assert rows["1"]["first_seen"] == "2024-03-04T08:00:00+00:00"
    assert set(rows) == {"1", "2"}


def test_webhook_posts_filters_signs_and_retries(bridge_factory):
    port = free_port()  # nothing listens yet: the endpoint is down
    secret = "s3cret-key"
    config = {
        "plugins": {
            **BUNDLED_OFF,
            "attendance_csv": {"enabled": False},
            "webhook": {
                "url": f"http://127.0.0.1:{port}/hook?src=bridge",
                "person_types": ["employee", "vip"],
                "secret": secret,
                "headers": {"X-Site": "lobby"},
                "retry_s": 0.1,
                "timeout_s": 2,
            },
        }
    }
    bridge = bridge_factory(config)
    first = post(bridge, "1", "Ada", "2024-03-04T08:00:00", EP_GATE)["event_id"]
    wait_for(
        lambda: bridge.health()["plugins"]["webhook"]["retries"] >= 2,
        what="the webhook to retry while the endpoint is down",
    )
    assert bridge.health()["plugins"]["webhook"]["state"] == "retrying"

    receiver = Receiver(port=port, status=503).start()
    try:
        wait_for(lambda: len(receiver.received(503)) >= 2, what="retries on 503")
        post(bridge, "2", "Visitor", "2024-03-04T08:01:00", EP_GATE, person_type="visitor")
        post(bridge, "3", "Old", "2024-03-04T08:02:00", EP_GATE, shape="history")
        second = post(bridge, "4", "Bo", "2024-03-04T08:03:00", EP_GATE, person_type="vip")
        receiver.status = 200
        wait_for(lambda: len(receiver.received(200)) == 2, what="both events after recovery")
        wait_for(lambda: bridge.drained(), what="the webhook to catch up")

        ok = receiver.received(200)
        assert [r.json()["event_id"] for r in ok] == [first, second["event_id"]], "in order"
        hit = ok[0]
        assert hit.method == "POST" and hit.path == "/hook?src=bridge"
        assert hit.json() == {
            "event_id": first,
            "bridge_id": "sophonfog",
            "kind": "realtime",
            "timestamp": "2024-03-04T08:00:00+00:00",
            "identity_id": "1",
            "identity_name": "Ada",
            "group_name": "staff",
            "person_type": "employee",
            "score": 0.92,
            "device": EP_GATE,
            "device_type": "gate",
            "box": "AKOPKKKKK",
        }
        headers = {k.lower(): v for k, v in hit.headers.items()}
        expected = "sha256=" + hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
        assert headers["x-sophonfog-signature"] == expected
        assert headers["x-sophonfog-event-id"] == first
        assert headers["x-site"] == "lobby"
        assert headers["content-type"] == "application/json"
        assert all(r.json()["event_id"] == first for r in receiver.received(503))

        # 4xx is permanent: that event is skipped and the next one goes through.
        receiver.status = 422
        refused = post(bridge, "5", "Cy", "2024-03-04T08:04:00", EP_GATE)["event_id"]
        wait_for(lambda: receiver.received(422), what="the refused post")
        receiver.status = 200
        after = post(bridge, "6", "Di", "2024-03-04T08:05:00", EP_GATE)["event_id"]
        wait_for(lambda: len(receiver.received(200)) == 3, what="the event after the refusal")
        assert [r.json()["event_id"] for r in receiver.received(422)] == [refused]
        assert receiver.received(200)[-1].json()["event_id"] == after
        wait_for(bridge.drained, what="the webhook to finish")
        health = bridge.health()["plugins"]["webhook"]
        assert health["refused"] == 1 and health["sent"] == 3 and health["configured"]
    finally:
        receiver.stop()
