"""A real bridge process over real HTTP: every shape in, the same event out, bad input refused."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
import requests

from sophonfog_bridge.samples import SHAPES, as_form, event_payload, jpeg, status_payload

from .conftest import wait_for
from .recorder import read_lines

BUNDLED_OFF = {name: {"enabled": False} for name in ("mqtt", "snapshots", "syslog", "status")}
SCENE = jpeg(200, 150, seed=5)


def core_config(tmp_path, **extra):
    plugins = {**BUNDLED_OFF, "recorder": {"path": str(tmp_path / "rec.jsonl")}}
    plugins.update(extra.pop("plugins", {}))
    return {"plugins": plugins, **extra}


@pytest.fixture
def bridge(bridge_factory, tmp_path):
    return bridge_factory(core_config(tmp_path), plugins={"recorder": "tests.recorder:Recorder"})


def recorded(tmp_path, count, what="events"):
    return wait_for(
        lambda: (
            len(read_lines(tmp_path / "rec.jsonl")) >= count and read_lines(tmp_path / "rec.jsonl")
        ),
        10,
        what=f"{count} recorded {what}",
    )


def multipart_body(fields):
    boundary = "sfbtestboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), boundary


def post_as(bridge, payload, encoding, path="/RealTimeEvent"):
    if encoding == "json":
        return bridge.post(path, payload)
    if encoding == "json-no-content-type":
        return requests.post(
            bridge.url + path,
            data=json.dumps(payload).encode(),
            timeout=5,
            headers={"Content-Type": ""},
        )
    if encoding == "json-as-text-plain":
        return requests.post(
            bridge.url + path,
            data=json.dumps(payload),
            timeout=5,
            headers={"Content-Type": "text/plain"},
        )
    if encoding == "multipart":
        body, boundary = multipart_body(as_form(payload))
        return requests.post(
            bridge.url + path,
            data=body,
            timeout=5,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    if encoding == "urlencoded":
        return requests.post(
            bridge.url + path,
            data=urlencode(as_form(payload)),
            timeout=5,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    raise ValueError(encoding)


ENCODINGS = ["json", "multipart", "urlencoded", "json-no-content-type", "json-as-text-plain"]


def test_every_shape_in_every_encoding_reaches_plugins_normalised(bridge, tmp_path):
    sent = []
    for n, (shape, encoding) in enumerate((s, e) for s in SHAPES for e in ENCODINGS):
        payload = event_payload(
            shape,
            identity_id=f"id{n}",
            person_type="vip",
            device_type="access_control",
            scene=SCENE,
        )
        path = (
            "/EventServer/api/SophonFogHistoryEvent"
            if shape.endswith("history")
            else "/EventServer/api/SophonFogRelEvent"
            if n % 2
            else "/RealTimeEvent"
        )
        answer = post_as(bridge, payload, encoding, path)
        assert answer.status_code == 200, (shape, encoding, answer.text)
        assert answer.json()["status"] == 0 and answer.json()["message"] == "SUCCESS"
        sent.append((shape, encoding, answer.json()["event_id"]))
    lines = recorded(tmp_path, len(sent))
    by_id = {line["event_id"]: line for line in lines}
    for shape, encoding, event_id in sent:
        event = by_id[event_id]
        assert event["record"] == "event"
        assert event["person_type"] == "vip", (shape, encoding)
        assert event["identity_name"] == "小明"
        assert 0 < event["score"] <= 1
        assert event["kind"] == ("history" if shape.endswith("history") else "realtime")
        assert event["delivery"]["accepted_this_run"] is True and event["delivery"]["attempt"] == 1
        if shape == "ws":
            assert event["device_type"] == "unknown" and event["spot_pic"] is None
            assert event["reg_pic"]["head"] == "ffd8ffe0"
        elif shape in ("v5history", "v6history"):
            # Their camera type is the media type (rtsp, photo), not the gate/panel code.
            assert event["device_type"] == "unknown" and event["ext_data"]["capture_type"]
            assert event["spot_pic"]["len"] == len(SCENE), (shape, encoding)
        else:
            assert event["device_type"] == "access_control"
            assert event["spot_pic"]["len"] == len(SCENE), (shape, encoding)


def test_box_heartbeat_goes_to_its_own_hook(bridge, tmp_path):
    answer = bridge.post("/DeviceStatus", status_payload(devices=2))
    assert answer.json() == {"status": 0, "message": "SUCCESS"}
    (line,) = recorded(tmp_path, 1, "heartbeat")
    assert line["record"] == "box_status" and line["box"] == "AKOPKKKKK"
    assert [d["ep_id"] for d in line["sub_devices"]] == [
        "AKOPKKKKK__192.168.1.101",
        "AKOPKKKKK__192.168.1.102",
    ]


def test_duplicates_are_answered_but_dispatched_once(bridge, tmp_path):
    payload = event_payload("v2r2", scene=SCENE)
    answers = [bridge.post(payload=payload).json() for _ in range(3)]
    assert [a.get("duplicate", False) for a in answers] == [False, True, True]
    assert all(a["status"] == 0 for a in answers)
    recorded(tmp_path, 1)
    bridge.post(payload=event_payload("v2r2", identity_id="other", scene=SCENE))
    lines = recorded(tmp_path, 2)
    assert [line["identity_id"] for line in lines] == ["10001", "other"]


def test_threshold_drops_low_scores_with_200(bridge_factory, tmp_path):
    bridge = bridge_factory(
        core_config(tmp_path, threshold=0.8), plugins={"recorder": "tests.recorder:Recorder"}
    )
    low = bridge.post(payload=event_payload("v2r2", score=0.5, scene=SCENE))
    assert low.status_code == 200 and low.json()["dropped"] == "below_threshold"
    bridge.post(payload=event_payload("v2r2", score=0.9, identity_id="high", scene=SCENE))
    lines = recorded(tmp_path, 1)
    assert [line["identity_id"] for line in lines] == ["high"]
    assert (
        'sophonfog_events_dropped_total{reason="below_threshold"} 1.0'
        in requests.get(bridge.url + "/metrics", timeout=5).text
    )


BAD_REQUESTS = [
    ("malformed JSON", b'{"identity_id": "1", ', "application/json", 400, "not valid JSON"),
    ("JSON array", b"[1, 2]", "application/json", 400, "expected a JSON object"),
    ("empty body", b"", "application/json", 400, "body: empty"),
    (
        "no identity",
        json.dumps({"timestamp": 1700000000}).encode(),
        "application/json",
        400,
        "identity_id: required",
    ),
    (
        "bad score",
        json.dumps({"identity_id": "1", "timestamp": 1700000000, "score": "x"}).encode(),
        "application/json",
        400,
        "score: expected a number",
    ),
    (
        "truncated multipart",
        b'--b\r\nContent-Disposition: form-data; name="identity_id"\r\n\r\n1',
        "multipart/form-data; boundary=b",
        400,
        "multipart",
    ),
    ("multipart no boundary", b"x", "multipart/form-data", 400, "without a boundary"),
    (
        "binary garbage",
        b"\xff\xfe\x00garbage",
        "application/octet-stream",
        400,
        "neither JSON nor a form",
    ),
    (
        "NaN score",
        b'{"identity_id": "1", "timestamp": 1700000000, "score": NaN}',
        "application/json",
        400,
        "score: must be a finite number",
    ),
]


@pytest.mark.parametrize(
    "name, body, content_type, code, message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_get_a_json_error_and_leave_nothing_in_the_spool(
    bridge, name, body, content_type, code, message
):
    before = bridge.health()["spool_last_seq"]
    answer = requests.post(
        bridge.url + "/RealTimeEvent", data=body, timeout=5, headers={"Content-Type": content_type}
    )
    assert answer.status_code == code
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["status"] == code and message in answer.json()["message"]
    assert bridge.health()["spool_last_seq"] == before
    assert bridge.logs().count(answer.json()["message"]) == 1, "logged exactly once"


def test_large_event_is_accepted_and_oversized_body_is_413(bridge_factory, tmp_path):
    bridge = bridge_factory(
        core_config(tmp_path, http={"max_body_mb": 2}),
        plugins={"recorder": "tests.recorder:Recorder"},
    )
    big_scene = jpeg(1600, 1200, seed=9, quality=95)
    assert len(big_scene) > 200_000  # well past bottle's 100 KiB default
    answer = bridge.post(payload=event_payload("v2r2", scene=big_scene))
    assert answer.status_code == 200, answer.text
    (line,) = recorded(tmp_path, 1)
    assert line["spot_pic"]["len"] == len(big_scene)
    too_big = requests.post(
        bridge.url + "/RealTimeEvent",
        data=b"{" + b" " * (3 << 20) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert too_big.status_code == 413
    assert "over the limit" in too_big.json()["message"]


def test_unknown_route_and_wrong_method_answer_json(bridge):
    missing = requests.get(bridge.url + "/nothing-here", timeout=5)
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong = requests.get(bridge.url + "/RealTimeEvent", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


def test_token_in_query_header_or_path_and_never_logged(bridge_factory, tmp_path):
    secret = "s3cret-token-value"
    bridge = bridge_factory(
        core_config(tmp_path, http={"token": secret}),
        plugins={"recorder": "tests.recorder:Recorder"},
    )
    payload = event_payload("v2r2", scene=SCENE)
    refused = bridge.post(payload=payload)
    assert refused.status_code == 401 and refused.json()["message"] == "missing or wrong token"
    wrong = bridge.post(f"/RealTimeEvent?token={secret}x", payload)
    assert wrong.status_code == 401
    ok = [
        bridge.post(f"/RealTimeEvent?token={secret}", event_payload("v2r2", identity_id="q")),
        bridge.post(
            "/RealTimeEvent",
            event_payload("v2r2", identity_id="h"),
            headers={"X-Sophonfog-Token": secret},
        ),
        bridge.post(f"/{secret}/RealTimeEvent", event_payload("v2r2", identity_id="p")),
    ]
    assert [a.status_code for a in ok] == [200, 200, 200]
    recorded(tmp_path, 3)
    assert secret not in bridge.logs()


def test_allowed_sources_checks_the_socket_peer(bridge_factory, tmp_path):
    bridge = bridge_factory(
        core_config(tmp_path, http={"allowed_sources": ["10.9.9.0/24"]}),
        plugins={"recorder": "tests.recorder:Recorder"},
    )
    spoofed = bridge.post(payload=event_payload("v2r2"), headers={"X-Forwarded-For": "10.9.9.9"})
    assert spoofed.status_code == 403
    assert bridge.health()["spool_last_seq"] == 0


def test_healthz_reports_plugins_and_spool(bridge, tmp_path):
    bridge.post(payload=event_payload("v2r2", scene=SCENE))
    recorded(tmp_path, 1)
    health = wait_for(
        lambda: (h := bridge.health())["plugins"]["recorder"]["delivered"] == 1 and h,
        5,
        what="delivery counted",
    )
    assert health["status"] == "ok" and health["version"]
    assert health["spool_last_seq"] == 1 and health["uptime_s"] >= 0
    assert health["plugins"]["mqtt"]["enabled"] is False


def test_answer_does_not_wait_for_a_slow_plugin(bridge_factory, tmp_path):
    config = core_config(tmp_path)
    config["plugins"]["recorder"]["slow_s"] = 2.0
    bridge = bridge_factory(config, plugins={"recorder": "tests.recorder:Recorder"})
    started = time.monotonic()
    for n in range(5):
        assert (
            bridge.post(payload=event_payload("v2r2", identity_id=f"s{n}", scene=SCENE)).status_code
            == 200
        )
    # Five answers while the plugin sleeps 2 s per event: they cannot have waited for it.
    assert time.monotonic() - started < 2.0
    assert bridge.health()["plugins"]["recorder"]["backlog"] >= 4


def test_ip_only_events_join_the_device_a_heartbeat_named(bridge, tmp_path):
    before = bridge.post(payload=event_payload("v2r2", identity_id="early", scene=SCENE))
    assert before.status_code == 200
    bridge.post("/DeviceStatus", status_payload(devices=1))
    bridge.post(payload=event_payload("v2r2", identity_id="later", scene=SCENE))
    lines = [x for x in recorded(tmp_path, 3) if x["record"] == "event"]
    devices = {line["identity_id"]: (line["device"], line["box"]) for line in lines}
    assert devices["early"] == ("192.168.1.101", None)
    assert devices["later"] == ("AKOPKKKKK__192.168.1.101", "AKOPKKKKK")


def test_with_a_token_pages_and_metrics_need_it_but_healthz_does_not(bridge_factory, tmp_path):
    secret = "page-secret-value"
    config = core_config(tmp_path, http={"token": secret})
    config["plugins"]["snapshots"] = {"enabled": True, "path": str(tmp_path / "shots")}
    bridge = bridge_factory(config, plugins={"recorder": "tests.recorder:Recorder"})
    assert requests.get(bridge.url + "/healthz", timeout=5).status_code == 200
    for path in ("/metrics", "/snapshots/nothing.jpg"):
        refused = requests.get(bridge.url + path, timeout=5)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        assert requests.get(bridge.url + path, auth=("any", "wrong"), timeout=5).status_code == 401
    assert requests.get(bridge.url + "/metrics", auth=("viewer", secret), timeout=5).ok
    assert requests.get(f"{bridge.url}/metrics?token={secret}", timeout=5).ok
    # Past the guard, the snapshot route answers for itself.
    missing = requests.get(bridge.url + "/snapshots/nothing.jpg", auth=("v", secret), timeout=5)
    assert missing.status_code == 404
