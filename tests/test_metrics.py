"""`GET /metrics` on a real bridge: every counter the issue names moves as it should."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from sophonfog_bridge import samples

from .conftest import wait_for

TOKEN = "metrics-token-123"
AUTH = {"X-Sophonfog-Token": TOKEN}
OFF = {name: {"enabled": False} for name in ("mqtt", "snapshots", "syslog", "status")}


def scrape(bridge) -> dict[tuple[str, tuple], float]:
    answer = requests.get(bridge.url + "/metrics", headers=AUTH, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples_ = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            samples_[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples_


def value(metrics, name: str, **labels) -> float:
    """A series' value; a series that does not exist fails the test (it is not a zero)."""
    key = (name, tuple(sorted(labels.items())))
    if key not in metrics:
        names = sorted({n for n, _ in metrics if n.startswith(name.rsplit("_", 1)[0])})
        raise AssertionError(f"no series {name}{dict(labels)} on /metrics; have {names}")
    return metrics[key]


def event(identity: str, person_type: str = "employee", score: float = 0.9, ts: int = 0):
    return samples.event_payload(
        "v2r1",
        identity_id=identity,
        person_type=person_type,
        score=score,
        timestamp_ms=1_700_000_000_000 + ts,
    )


def test_metrics_count_requests_plugins_spool_latency_and_doors(bridge_factory, tmp_path):
    flag = tmp_path / "hold"
    bridge = bridge_factory(
        {
            "threshold": 0.5,
            "http": {"token": TOKEN},
            "plugins": {
                **OFF,
                "recorder": {
                    "path": str(tmp_path / "seen.jsonl"),
                    "raise_on": "boom",
                    "retry_while_exists": str(flag),
                },
            },
        },
        plugins={
            "recorder": "tests.recorder:Recorder",
            "fakedoor": "tests.metrics_door:FakeDoor",
        },
    )
    post = lambda body, **kw: bridge.post(payload=body, headers=AUTH, **kw)  # noqa: E731

    for i in range(3):
        assert post(event(str(i), ts=i)).status_code == 200
    assert post(event("9", "blacklist", ts=9)).status_code == 200
    assert post(event("0", ts=0)).json()["duplicate"] is True
    assert post(event("low", score=0.3, ts=20)).json()["dropped"] == "below_threshold"
    assert post(event("boom", "visitor", ts=30)).status_code == 200
    bad = bridge.post(data=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bridge.post(payload=event("x", ts=40)).status_code == 401  # no token
    assert bridge.post("/DeviceStatus", samples.status_payload(), headers=AUTH).ok

    wait_for(bridge.drained, what="plugins to catch up")
    assert requests.get(bridge.url + "/metrics", timeout=5).status_code == 401  # token set
    m = scrape(bridge)
    assert value(m, "sophonfog_requests_total", route="realtime") == 9
    assert value(m, "sophonfog_requests_total", route="status") == 1
    assert value(m, "sophonfog_records_accepted_total", kind="event") == 5
    assert value(m, "sophonfog_records_accepted_total", kind="box_status") == 1
    assert value(m, "sophonfog_records_accepted_total", kind="door_decision") == 4
    assert value(m, "sophonfog_requests_rejected_total", reason="bad_json") == 1
    assert value(m, "sophonfog_requests_rejected_total", reason="token") == 1
    assert value(m, "sophonfog_events_dropped_total", reason="duplicate") == 1
    assert value(m, "sophonfog_events_dropped_total", reason="below_threshold") == 1
    assert value(m, "sophonfog_door_decisions_total", door="front", decision="open") == 3
    assert value(m, "sophonfog_door_decisions_total", door="front", decision="deny") == 1

    # recorder: 5 events + 1 heartbeat + 4 decisions done, "boom" failed after 3 attempts.
    assert value(m, "sophonfog_plugin_deliveries_total", plugin="recorder") == 9
    assert value(m, "sophonfog_plugin_failures_total", plugin="recorder") == 1
    assert value(m, "sophonfog_plugin_retries_total", plugin="recorder") == 2
    assert value(m, "sophonfog_plugin_deliveries_total", plugin="fakedoor") == 5
    assert value(m, "sophonfog_plugin_failures_total", plugin="fakedoor") == 0

    # Every POST is timed, rejected ones too; the box gives up after 0.5 s.
    assert value(m, "sophonfog_ack_seconds_count") == 10
    assert value(m, "sophonfog_ack_seconds_bucket", le="0.5") == 10
    assert value(m, "sophonfog_spool_depth") == 0
    assert value(m, "sophonfog_plugin_backlog", plugin="recorder") == 0

    # A plugin that cannot deliver holds the spool: depth and backlog show it, retries count.
    flag.touch()
    for i in range(3):
        assert post(event(f"held{i}", "visitor", ts=100 + i)).status_code == 200
    wait_for(
        lambda: value(scrape(bridge), "sophonfog_plugin_retries_total", plugin="recorder") >= 5,
        what="retries while the plugin is held",
    )
    m = scrape(bridge)
    assert value(m, "sophonfog_spool_depth") == 3
    assert value(m, "sophonfog_plugin_backlog", plugin="recorder") == 3
    assert value(m, "sophonfog_plugin_backlog", plugin="fakedoor") == 0
    flag.unlink()
    wait_for(lambda: value(scrape(bridge), "sophonfog_spool_depth") == 0, what="the spool drains")
    m = scrape(bridge)
    assert value(m, "sophonfog_plugin_deliveries_total", plugin="recorder") == 12
