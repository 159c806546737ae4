"""Hostile and broken input against one real bridge process (recorder, snapshots, mqtt on).

Every request, whatever it holds, must get a JSON answer below 500, leave no spool record
when refused, keep the process up, write no file outside the snapshot folder and publish
no topic outside the bridge's base topic (or the discovery prefix).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sophonfog_bridge.samples import as_form, b64, event_payload, jpeg

from .conftest import BridgeProcess, Mosquitto, wait_for
from .hostile_support import Checked, config, files_under, json_body
from .mqtt_tap import Tap
from .recorder import read_lines
from .snapshots_images import bomb_png

BASE = "sfbhostile"
SMALL = jpeg(64, 48, seed=11)
FACE = jpeg(32, 32, seed=12)
HYPOTHESIS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Hostile:
    def __init__(self, root: Path, bridge: BridgeProcess, tap: Tap):
        self.root = root
        self.bridge = bridge
        self.tap = tap
        self.checked = Checked(bridge)
        self.snaps = root / "work" / "deep" / "snaps"

    def post(self, payload, **kwargs) -> requests.Response:
        return self.checked.post(json_body(payload), **kwargs)

    def outside_files(self) -> set[Path]:
        """Files that are neither the bridge's own (config, log, spool) nor a photo."""
        own = {self.bridge.config_path, self.bridge.log_path, self.root / "rec.jsonl"}
        spool = Path(self.bridge.config["spool"]["path"])
        return {
            p
            for p in files_under(self.root)
            if p not in own and not p.is_relative_to(spool) and not p.is_relative_to(self.snaps)
        }

    def stray_topics(self) -> set[str]:
        allowed = (f"{BASE}/", "homeassistant/")
        return {m.topic for m in self.tap.matching(lambda m: not m.topic.startswith(allowed))}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    broker = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    tap = Tap("127.0.0.1", broker.port)
    work = root / "work"
    work.mkdir()
    cfg = config(
        root,
        http={"max_body_mb": 2, "max_image_kb": 512, "client_timeout_s": 3},
        snapshots={"path": str(work / "deep" / "snaps"), "save_face": True},
        mqtt={"host": "127.0.0.1", "port": broker.port, "base_topic": BASE},
    )
    bridge = BridgeProcess(work, cfg, {"recorder": "tests.recorder:Recorder"}).start()
    wait_for(lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 10, what="mqtt up")
    yield Hostile(root, bridge, tap)
    assert bridge.stop() == 0
    tap.close()
    broker.stop()


@pytest.fixture(autouse=True)
def nothing_escaped(hostile):
    """After every test here, on what that test posted: no test relies on another's run."""
    yield
    assert_nothing_escaped(hostile)


def assert_nothing_escaped(hostile: Hostile) -> None:
    wait_for(hostile.bridge.drained, 30, what="every plugin drained")
    assert hostile.bridge.proc.poll() is None
    assert hostile.outside_files() == set()
    assert hostile.stray_topics() == set()
    assert not hostile.tap.matching(lambda m: "+" in m.topic or "#" in m.topic)
    for name in [p.relative_to(hostile.snaps) for p in files_under(hostile.snaps)]:
        assert ".." not in name.parts and "\x00" not in str(name)
        assert all(len(part.encode()) <= 255 for part in name.parts)
    now = datetime.now(timezone.utc)
    for row in read_lines(hostile.root / "rec.jsonl"):
        if row["record"] != "event":
            continue
        assert 0 <= row["score"] <= 1
        stamp = datetime.fromisoformat(row["timestamp"])
        assert datetime(2000, 1, 1, tzinfo=timezone.utc) <= stamp <= now + timedelta(days=367)
        for key in ("identity_id", "identity_name", "group_name", "device"):
            assert len(row[key]) <= 256 and "\x00" not in row[key]
        assert row["identity_id"]
    health = hostile.bridge.health()
    failed = {name: p for name, p in health["plugins"].items() if p.get("failed", 0)}
    assert not failed, failed


def base_event(**overrides) -> dict:
    payload = event_payload("v2r2", scene=SMALL, registered=FACE, face=FACE)
    payload.update(overrides)
    return payload


# ---- property tests ------------------------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
TOP_FIELDS = [
    "identity_id",
    "identity_name",
    "group_name",
    "timestamp",
    "score",
    "reg_pic",
    "ext_data",
    "person_type",
    "device_type",
    "ep_id",
    "event_id",
    "device_id",
    "want_action",
    "identity_info",
]
EXT_FIELDS = [
    "device_ip",
    "spot_pic",
    "recognize_face",
    "person_type",
    "device_type",
    "grab_fiqa_info",
    "box_fiqa_info",
    "ep_id",
]


@HYPOTHESIS
@given(field=st.sampled_from(TOP_FIELDS), value=JSON_VALUES, n=st.integers(0, 10**9))
def test_any_value_in_any_top_level_field(hostile, field, value, n):
    payload = base_event(identity_id=f"p{n}")
    payload[field] = value
    hostile.post(payload)


@HYPOTHESIS
@given(field=st.sampled_from(EXT_FIELDS), value=JSON_VALUES, n=st.integers(0, 10**9))
def test_any_value_in_any_ext_data_field(hostile, field, value, n):
    payload = base_event(identity_id=f"x{n}")
    payload["ext_data"][field] = value
    hostile.post(payload)


@HYPOTHESIS
@given(
    body=st.binary(max_size=3000),
    content_type=st.sampled_from(
        [
            "application/json",
            "multipart/form-data; boundary=b",
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
        ]
    ),
)
def test_arbitrary_bytes_are_refused_cleanly(hostile, body, content_type):
    hostile.checked.post(body, content_type)


HOSTILE_TEXT = st.sampled_from(
    [
        "../../../etc/passwd",
        "..",
        "/",
        "a/b/../../..",
        "C:\\Windows\\system32",
        "nul\x00byte",
        "sensor/+/#",
        "#",
        "+",
        "\u202eevil\u202c.jpg",
        "\u200f\u200e",
        "CON",
        " ",
        "小明/../小红",
        "\ud7ff\ue000\U0010ffff",
        "x" * 256,
    ]
) | st.text(max_size=300)


@HYPOTHESIS
@given(
    name=HOSTILE_TEXT,
    identity=HOSTILE_TEXT,
    ep_id=HOSTILE_TEXT,
    group=HOSTILE_TEXT,
)
def test_hostile_names_stay_inside_the_folder_and_the_base_topic(
    hostile, name, identity, ep_id, group
):
    payload = base_event(identity_name=name, identity_id=identity, group_name=group)
    payload["ext_data"]["ep_id"] = ep_id
    answer = hostile.post(payload)
    if answer.status_code == 200:
        assert json.loads(answer.text)["event_id"]


@HYPOTHESIS
@given(
    stamp=st.one_of(
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
    )
)
def test_timestamps_are_in_range_or_refused(hostile, stamp):
    answer = hostile.post(base_event(timestamp=stamp, identity_id="ts"))
    if answer.status_code == 200:
        assert answer.json()["event_id"]


# ---- a fixed corpus ------------------------------------------------------------------------


def deep(levels: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(levels):
        node = {"n": node}
    return node


REFUSED = [
    ("truncated JSON", b'{"identity_id": "1", "timestamp": 17', "application/json", 400),
    ("JSON string", b'"hello"', "application/json", 400),
    ("JSON null", b"null", "application/json", 400),
    ("BOM then JSON", b"\xef\xbb\xbf{}", "application/json", 400),
    ("NaN score", json_body(base_event(score=float("nan"))), "application/json", 400),
    ("Infinity score", json_body(base_event(score=float("inf"))), "application/json", 400),
    ("-Infinity score", json_body(base_event(score=float("-inf"))), "application/json", 400),
    ("huge score", json_body(base_event(score=1e308)), "application/json", 400),
    ("giant int score", json_body(base_event(score=10**400)), "application/json", 400),
    ("negative score", json_body(base_event(score=-0.5)), "application/json", 400),
    ("negative timestamp", json_body(base_event(timestamp=-1)), "application/json", 400),
    ("zero timestamp", json_body(base_event(timestamp=0)), "application/json", 400),
    ("giant timestamp", json_body(base_event(timestamp=10**400)), "application/json", 400),
    (
        "far-future timestamp",
        json_body(base_event(timestamp=int((time.time() + 5 * 365 * 86400) * 1000))),
        "application/json",
        400,
    ),
    ("year 9999 ISO", json_body(base_event(timestamp="9999-12-31T23:59:59Z")), "", 400),
    ("timestamp as list", json_body(base_event(timestamp=[1])), "application/json", 400),
    ("identity as dict", json_body(base_event(identity_id={"a": 1})), "application/json", 400),
    ("identity empty", json_body(base_event(identity_id="")), "application/json", 400),
    ("identity only NUL", json_body(base_event(identity_id="\x00\x00")), "application/json", 400),
    ("name 10,000 chars", json_body(base_event(identity_name="名" * 10000)), "", 400),
    # Not a dict: ignored like a missing ext_data, the top-level fields still make an event.
    ("ext_data a list", json_body(base_event(ext_data=[1, 2])), "application/json", 200),
    ("ext_data 20 deep", json_body(base_event(ext_data=deep(20))), "application/json", 400),
    ("unknown key 20 deep", json_body(base_event(junk=deep(20))), "application/json", 400),
    ("JSON 5,000 deep", b"[" * 5000 + b"]" * 5000, "application/json", 400),
    ("object 100,000 deep", b'{"a":' * 100000, "application/json", 400),
    (
        "form ext_data 5,000 deep",
        b"identity_id=1&timestamp=1700000000&ext_data=" + b"%5B" * 5000,
        "application/x-www-form-urlencoded",
        400,
    ),
    (
        "truncated multipart",
        b'--b\r\nContent-Disposition: form-data; name="identity_id"\r\n\r\n1\r\n'
        b"--b\r\nContent-Disp",
        "multipart/form-data; boundary=b",
        400,
    ),
    ("multipart, no parts", b"--b--\r\n", "multipart/form-data; boundary=b", 400),
    ("multipart, bad boundary", b"--zz\r\n\r\n", "multipart/form-data; boundary=", 400),
    ("form with bad ext_data", b"identity_id=1&timestamp=1700000000&ext_data={", "", 400),
    ("latin-1 garbage", "identité=é".encode("latin-1"), "application/x-www-form-urlencoded", 400),
    (
        "body 1.5x the limit",
        b"{" + b" " * (3 << 20) + b"}",
        "application/json",
        413,
    ),
]


@pytest.mark.parametrize("name, body, content_type, code", REFUSED, ids=[r[0] for r in REFUSED])
def test_fixed_corpus_answered_as_the_core_defines(hostile, name, body, content_type, code):
    answer = hostile.checked.post(body, content_type or "application/json")
    assert answer.status_code == code, answer.text[:300]


def test_status_heartbeat_with_hostile_fields(hostile):
    bad = {
        "gateway_sn": "box/../../+#",
        "gateway_ext_data": {"cpu_usage": float("nan"), "temperature": "hot"},
        "sub_devices": [{"ep_id": "cam/#", "ep_name": "\u202eevil", "ep_type": "9"}],
    }
    assert hostile.post(bad, path="/DeviceStatus").status_code == 200
    assert hostile.post({"sub_devices": "x"}, path="/DeviceStatus").status_code == 400
    too_many = {"gateway_sn": "b", "sub_devices": [{"ep_id": f"e{i}"} for i in range(300)]}
    assert hostile.post(too_many, path="/DeviceStatus").status_code == 400


def multipart(fields: dict[str, str], boundary: str = "hostileboundary") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def test_bad_images_are_dropped_and_the_event_kept(hostile):
    bomb = bomb_png(30000)
    cases = {
        "invalid base64": "!!!not*base64!!!",
        "non-JPEG bytes": b64(b"GIF89a" + b"\x00" * 64),
        "text as image": b64(b"<script>alert(1)</script>"),
        "bomb": b64(bomb),
        "truncated JPEG": b64(SMALL[: len(SMALL) // 3]),
        "too large": b64(b"\xff\xd8\xff" + b"\x00" * (600 << 10)),
    }
    for n, (what, image) in enumerate(cases.items()):
        payload = base_event(identity_id=f"img{n}")
        payload["ext_data"]["spot_pic"] = image
        fields = as_form(payload)
        body = multipart(fields) if n % 2 else json_body(payload)
        content_type = "multipart/form-data; boundary=hostileboundary" if n % 2 else ""
        answer = hostile.checked.post(body, content_type or "application/json")
        assert answer.status_code == 200, (what, answer.text)
    lines = wait_for(
        lambda: (
            (
                rows := [
                    r
                    for r in read_lines(hostile.root / "rec.jsonl")
                    if r.get("identity_id", "")[:3] == "img"
                ]
            )
            and len(rows) == len(cases)
            and rows
        ),
        10,
        what="the image events recorded",
    )
    by_id = {r["identity_id"]: r for r in lines}
    for n, what in enumerate(cases):
        row = by_id[f"img{n}"]
        if what in ("bomb", "truncated JPEG"):
            # Magic bytes are right: the core keeps it, the snapshot plugin must cope.
            assert row["spot_pic"] is not None, what
        else:
            assert row["spot_pic"] is None, what
            assert any("spot_pic" in w for w in row["warnings"]), (what, row["warnings"])
        assert row["face_pic"]["head"] == "ffd8ffe0"
    # The bomb and the broken JPEG are refused by the snapshot plugin, which carries on.
    health = wait_for(
        lambda: (h := hostile.bridge.health())["plugins"]["snapshots"]["backlog"] == 0 and h,
        15,
        what="snapshots drained",
    )
    assert health["plugins"]["snapshots"]["skipped_images"] >= 2
    assert health["plugins"]["snapshots"]["state"] == "ok"
    assert all(p.stat().st_size < 5 << 20 for p in files_under(hostile.snaps))
    assert hostile.post(base_event(identity_id="after-bomb")).status_code == 200
    wait_for(
        lambda: (
            any("after-bomb" in p.name for p in files_under(hostile.snaps))
            or hostile.bridge.health()["plugins"]["snapshots"]["last_saved"]
        ),
        10,
        what="a photo saved after the bomb",
    )


def test_body_far_over_the_limit_is_refused_by_waitress_before_buffering(hostile):
    """100 MB: beyond twice max_body_mb waitress answers 413 itself, in plain text.

    Accepted as is: the app never sees the body (nothing is buffered), the answer is a
    4xx and the connection is closed; no box sends anything near this size.
    """
    before = hostile.checked.last_seq()
    answer = requests.post(
        hostile.bridge.url + "/RealTimeEvent",
        data=b"{" + b" " * (100 << 20) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 413
    assert hostile.bridge.proc.poll() is None
    assert hostile.checked.last_seq() == before
    assert hostile.post(base_event(identity_id="after-100mb")).status_code == 200


def test_far_future_and_past_iso_timestamps_refused_within_a_year_accepted(hostile):
    soon = datetime.now(timezone.utc) + timedelta(days=300)
    assert hostile.post(base_event(timestamp=soon.isoformat(), identity_id="soon")).ok
    late = datetime.now(timezone.utc) + timedelta(days=400)
    assert hostile.post(base_event(timestamp=late.isoformat())).status_code == 400
    assert hostile.post(base_event(timestamp="1999-12-31T23:59:59+00:00")).status_code == 400


def test_an_accepted_event_is_saved_under_the_folder_with_sane_names(hostile):
    before = files_under(hostile.snaps) if hostile.snaps.exists() else set()
    assert hostile.post(base_event(identity_id="plain", identity_name="小明")).status_code == 200
    wait_for(lambda: files_under(hostile.snaps) - before, 15, what="the photos of a plain event")
