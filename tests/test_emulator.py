"""The box emulator over real sockets: websocket dialects, device lists, login, config,
event query, history uploads and status pushes."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import ClientConnection, connect

from sophonfog_bridge.emulator import EmulatedBox

from .conftest import wait_for

V6 = "/sophon/v2/face"


@pytest.fixture
def v6() -> Iterator[EmulatedBox]:
    with EmulatedBox("v6", devices=3) as box:
        yield box


@pytest.fixture
def v5() -> Iterator[EmulatedBox]:
    with EmulatedBox("v5", devices=3) as box:
        yield box


@contextmanager
def subscribe(box: EmulatedBox, message: dict | str) -> Iterator[ClientConnection]:
    """Connect and send one subscription; go on once the box has recorded it."""
    before = len(box.subscriptions)
    with connect(box.ws_url, open_timeout=5) as ws:
        ws.send(message if isinstance(message, str) else json.dumps(message))
        wait_for(lambda: len(box.subscriptions) > before, what="the box to record it")
        yield ws


def receive(ws: ClientConnection) -> dict:
    return json.loads(ws.recv(timeout=5))


def jpeg_from_uri(uri: str) -> bytes:
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri[len(prefix) :])


# -- websocket ---------------------------------------------------------------------------


def test_v6_subscribe_and_receive_the_table_record(v6: EmulatedBox) -> None:
    device = v6.devices[1]
    with subscribe(
        v6, {"with_face_image": True, "with_register_image": True, "media_device_ids": [device.id]}
    ) as ws:
        assert v6.connections == 1
        sent = v6.emit("employee", device=device.id, identity_id="42", name="小王", score=88.5)
        record = receive(ws)
    assert sent["pushed_to"] == 1
    assert record["event_id"] == sent["event_id"]
    assert record["timestamp"] == sent["timestamp_ms"] and record["timestamp"] > 10**12
    assert (record["identity_id"], record["identity_name"]) == ("42", "小王")
    assert (record["user_type"], record["score"]) == ("employee", 88.5)
    assert (record["media_device_id"], record["media_device_ip"]) == (device.id, device.ip)
    assert record["media_device_type"] == device.type
    assert jpeg_from_uri(record["recognize_face_image"]) == sent["images"]["face"]
    assert jpeg_from_uri(record["register_image"]) == sent["images"]["register"]
    assert record["recognize_face_attr"]["box"] == sent["face_box"]
    assert not {"spot_image", "spot_pic", "reg_pic"} & set(record)  # never the scene


def test_v6_images_only_when_asked_and_the_example_variant() -> None:
    message = {"with_face_image": False, "with_register_image": True, "media_device_ids": ["a"]}
    with (
        EmulatedBox("v6", devices=["a"], live_variant="example") as box,
        subscribe(box, message) as ws,
    ):
        sent = box.emit(score=91.0)
        record = receive(ws)
    assert "recognize_face_image" not in record
    assert jpeg_from_uri(record["reg_pic"]) == sent["images"]["register"]
    assert "event_id" not in record and "user_type" not in record
    assert record["score"] == pytest.approx(0.91)


def test_v5_subscribe_and_receive(v5: EmulatedBox) -> None:
    device = v5.devices[0]
    with subscribe(v5, {"need_face": True, "need_register": True, "event_list": [device.id]}) as ws:
        sent = v5.emit("vip", identity_id="7", name="Tom", score=78.0)
        record = receive(ws)
    assert record["device_id"] == device.id
    assert record["score"] == pytest.approx(0.78)
    assert record["timestamp"] == sent["timestamp_ms"]
    ext = record["ext_data"]
    assert (ext["person_type"], ext["device_ip"]) == (5, device.ip)
    assert ext["device_type"] in {"0", "1", "3", "4"}
    assert base64.b64decode(ext["recognize_face"]) == sent["images"]["face"]
    assert base64.b64decode(ext["spot_pic"]) == sent["images"]["scene"]
    assert base64.b64decode(record["reg_pic"]) == sent["images"]["register"]
    assert record["identity_info"]["image_id"] == sent["image_ids"]["register"]


def test_v5_stranger_without_images(v5: EmulatedBox) -> None:
    with subscribe(
        v5, {"need_face": False, "need_register": False, "event_list": [v5.devices[0].id]}
    ) as ws:
        v5.emit("stranger")
        record = receive(ws)
    assert record["ext_data"]["person_type"] == 4
    assert "recognize_face" not in record["ext_data"] and "spot_pic" not in record["ext_data"]
    assert record["reg_pic"] == "" and record["identity_info"] == {}


def test_only_subscribed_devices_are_pushed(v6: EmulatedBox) -> None:
    first, second, third = (d.id for d in v6.devices)
    with subscribe(v6, {"media_device_ids": [first, third]}) as ws:
        v6.emit(device=second)
        wanted = v6.emit(device=third)
        assert receive(ws)["event_id"] == wanted["event_id"]


@pytest.mark.parametrize(
    "message",
    [
        {"with_face_image": True, "media_device_ids": []},  # empty: the emulator reads none
        {"need_face": True, "need_register": True, "event_list": ["ALL"]},  # V5 keys on V6
        "{'with_face_image': True}",  # Python-literal form, not JSON
    ],
)
def test_a_subscription_it_cannot_use_gets_nothing(v6: EmulatedBox, message) -> None:
    with subscribe(v6, message) as ws:
        assert v6.emit(device=0)["pushed_to"] == 0
        # Frames on one socket keep their order: if the event had been sent, it would come first.
        v6.send_raw("marker")
        assert ws.recv(timeout=5) == "marker"
    assert v6.subscriptions[-1] == message  # recorded, parsed when it was JSON


def test_garbage_frames_reach_every_socket_and_the_socket_stays_usable(v6: EmulatedBox) -> None:
    with subscribe(v6, {"media_device_ids": [v6.devices[0].id]}) as ws:
        assert v6.send_raw(b"\x00\xff\xfe") == 1
        assert v6.send_raw('{"truncated": ') == 1
        assert ws.recv(timeout=5) == b"\x00\xff\xfe"
        assert ws.recv(timeout=5) == '{"truncated": '
        sent = v6.emit()
        assert receive(ws)["event_id"] == sent["event_id"]


def test_drop_connections_abruptly_then_reconnect(v6: EmulatedBox) -> None:
    with subscribe(v6, {"media_device_ids": [v6.devices[0].id]}) as ws:
        assert v6.drop_connections() == 1
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is None  # no close frame: the TCP connection just ended
    wait_for(lambda: v6.connections == 0, what="the box to forget the socket")
    with subscribe(v6, {"media_device_ids": [v6.devices[0].id]}) as again:
        sent = v6.emit()
        assert receive(again)["event_id"] == sent["event_id"]


def test_drop_connections_with_a_close_code(v5: EmulatedBox) -> None:
    with subscribe(v5, {"event_list": [v5.devices[0].id]}) as ws:
        v5.drop_connections(code=1011)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1011


def test_restart_keeps_ports_and_events(v6: EmulatedBox) -> None:
    ports = (v6.api_port, v6.ws_port, v6.system_port)
    with subscribe(v6, {"media_device_ids": [v6.devices[0].id]}) as ws:
        stored = v6.emit()
        receive(ws)
        v6.restart()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert (v6.api_port, v6.ws_port, v6.system_port) == ports
    assert [e["event_id"] for e in v6.events] == [stored["event_id"]]
    with subscribe(v6, {"media_device_ids": [v6.devices[0].id]}) as again:
        sent = v6.emit()
        assert receive(again)["event_id"] == sent["event_id"]
    assert requests.post(f"{v6.api_url}{V6}/getmediadevices", json={}, timeout=5).ok


def test_binary_frames_option() -> None:
    box = EmulatedBox("v6", devices=["a"], binary_frames=True)
    with box, subscribe(box, {"media_device_ids": ["a"]}) as ws:
        box.emit()
        frame = ws.recv(timeout=5)
    assert isinstance(frame, bytes) and json.loads(frame.decode())["user_type"] == "employee"


# -- device lists and login --------------------------------------------------------------


def test_v6_device_list(v6: EmulatedBox) -> None:
    answer = requests.post(f"{v6.api_url}{V6}/getmediadevices", json={}, timeout=5)
    devices = answer.json()["devices"]
    assert [d["media_device_id"] for d in devices] == [d.id for d in v6.devices]
    assert set(devices[0]) >= {
        "media_device_ip",
        "media_device_url",
        "media_device_name",
        "media_device_type",
        "net_relay",
        "permission_id",
    }
    one = requests.post(
        f"{v6.api_url}{V6}/getmediadevices", json={"media_device_id": v6.devices[2].id}, timeout=5
    ).json()
    assert [d["media_device_id"] for d in one["devices"]] == [v6.devices[2].id]


def test_v6_requires_json_content_type(v6: EmulatedBox) -> None:
    answer = requests.post(
        f"{v6.api_url}{V6}/getmediadevices",
        data="{}",
        headers={"Content-Type": "text/plain"},
        timeout=5,
    )
    assert answer.json()["error"]["code"] == "UNSUPPORT_CONTENT_TYPE"
    assert v6.requests[-1]["content_type"] == "text/plain"


def test_set_devices_changes_the_list(v6: EmulatedBox) -> None:
    v6.set_devices(["cam-a", {"id": "cam-b", "ip": "10.0.0.9", "type": "photo"}])
    devices = requests.post(f"{v6.api_url}{V6}/getmediadevices", json={}, timeout=5).json()
    assert [(d["media_device_id"], d["media_device_type"]) for d in devices["devices"]] == [
        ("cam-a", "rtsp"),
        ("cam-b", "photo"),
    ]
    with pytest.raises(ValueError, match="no device"):
        v6.emit(device="gone")


def test_v5_device_list(v5: EmulatedBox) -> None:
    data = requests.get(f"{v5.api_url}/SophonDevice/api/Devices", timeout=5).json()["data"]
    assert [d["device_id"] for d in data["devices_list"]] == [d.id for d in v5.devices]
    assert "preview_list" not in data
    assert set(data["devices_list"][0]) >= {
        "device_name",
        "device_ip",
        "device_key",
        "device_type",
        "device_attr",
        "netRelay",
    }
    one = requests.get(
        f"{v5.api_url}/SophonDevice/api/Devices",
        params={"device_id": v5.devices[1].id, "need_preview_list": "true"},
        timeout=5,
    ).json()["data"]
    assert [d["device_id"] for d in one["devices_list"]] == [v5.devices[1].id]
    assert one["preview_list"]["preview_list"] == [d.id for d in v5.devices]


def test_v6_login() -> None:
    with EmulatedBox("v6", username="admin", password="s3cret") as box:
        for base, path in (
            (box.api_url, f"{V6}/login"),
            (box.system_url, "/sophon/v2/system/login"),
        ):
            ok = requests.post(
                base + path, json={"username": "admin", "password": "s3cret"}, timeout=5
            )
            bad = requests.post(
                base + path, json={"username": "admin", "password": "admin"}, timeout=5
            )
            assert ok.json() == {"result": True}
            assert bad.json()["error"]["code"] == "PASSWORD_ERROR"


def test_v5_login_on_both_documented_paths(v5: EmulatedBox) -> None:
    for path in ("/SophonSystem/api/login", "/SophonConfig/api/login"):
        ok = requests.post(
            v5.system_url + path, json={"username": "admin", "password": "admin"}, timeout=5
        )
        bad = requests.post(
            v5.system_url + path, json={"username": "admin", "password": "x"}, timeout=5
        )
        assert ok.json() == {"data": {"success": True}}
        error = bad.json()["error"]
        assert isinstance(error["code"], int) and error["message"] and error["status"]


# -- config ------------------------------------------------------------------------------


def test_v6_config_get_and_set(v6: EmulatedBox) -> None:
    url = f"{v6.api_url}{V6}"
    default = requests.post(
        f"{url}/getconfigs", json={"config_name": "HISTORY_REPORT_PEROID"}, timeout=5
    ).json()
    assert default == {"HISTORY_REPORT_PEROID": 5}
    answer = requests.post(
        f"{url}/setconfigs",
        json={
            "config_dict": {"HISTORY_EVENT_UPLOAD_URL": "http://192.0.2.1/h", "MATCH_THRESHOLD": 85}
        },
        timeout=5,
    )
    assert answer.json() == {
        "HISTORY_EVENT_UPLOAD_URL": "http://192.0.2.1/h",
        "MATCH_THRESHOLD": 85,
    }
    # One bad key makes the call an error, yet the good ones still take effect (per the docs).
    partly = requests.post(
        f"{url}/setconfigs",
        json={"config_dict": {"GATE_PASS_MODE": "allpass", "NO_SUCH_KEY": 1}},
        timeout=5,
    ).json()
    assert "NO_SUCH_KEY" in partly["error"]["message"]
    every = requests.post(f"{url}/getconfigs", json={}, timeout=5).json()
    assert every["GATE_PASS_MODE"] == "allpass" == v6.config["GATE_PASS_MODE"]
    assert v6.config["HISTORY_EVENT_UPLOAD_URL"] == "http://192.0.2.1/h"


def test_v5_config_get_put_and_history_url(v5: EmulatedBox) -> None:
    url = f"{v5.api_url}/SophonConfig/api/Configs"
    assert requests.get(f"{url}/REPORTED_PEROID", timeout=5).json() == {
        "data": {"REPORTED_PEROID": 5}
    }
    put = requests.put(
        url, json={"config_dict": {"PASSMODE": "allpass", "BOGUS": 1}}, timeout=5
    ).json()
    assert put == {"data": {"failed_configs": ["BOGUS"], "success_configs": ["PASSMODE"]}}
    body = {
        "history_upload_event_url": ["http://192.0.2.1/a", "http://192.0.2.2/b"],
        "history_need_spot_pic": False,
        "content-type": "json",
        "reported_peroid": 7,
    }
    answer = requests.post(
        f"{v5.api_url}/SophonFogSys/api/HistoryEventUrl", json=body, timeout=5
    ).json()["data"]
    assert answer["history_upload_event_url"] == body["history_upload_event_url"]
    everything = requests.get(url, timeout=5).json()["data"]
    assert everything["HISTORY_UPLOAD_EVENT_URL"] == "http://192.0.2.1/a,http://192.0.2.2/b,"
    assert everything["REPORTED_PEROID"] == 7 and everything["PASSMODE"] == "allpass"
    assert everything["HISTORY_EVENT_NEED_SPOT_PIC"] is False
    bad = requests.post(
        f"{v5.api_url}/SophonFogSys/api/HistoryEventUrl",
        json={"history_upload_event_url": "http://x"},
        timeout=5,
    )
    assert "list" in bad.json()["error"]["message"]


def test_system_monitor_config_is_kept(v5: EmulatedBox, v6: EmulatedBox) -> None:
    body5 = {
        "monitor_address_list": ["http://192.0.2.1/m"],
        "report_period": 30,
        "dev_sno": "AFVK1",
    }
    requests.post(f"{v5.system_url}/SophonSystem/api/monitor", json=body5, timeout=5)
    assert requests.get(f"{v5.system_url}/SophonSystem/api/monitor", timeout=5).json() == {
        "data": body5
    }
    body6 = {
        "device_monitor_url": "http://192.0.2.1/a, http://192.0.2.2/b",
        "device_monitor_report_period": 20,
        "reporter_id": "R1",
    }
    requests.post(f"{v6.system_url}/sophon/v2/system/setsystemmonitorconfig", json=body6, timeout=5)
    got = requests.post(
        f"{v6.system_url}/sophon/v2/system/getsystemmonitorconfig", json={}, timeout=5
    ).json()
    assert got == body6
    assert v6.monitor_config["urls"] == ["http://192.0.2.1/a", "http://192.0.2.2/b"]


# -- event query -------------------------------------------------------------------------

T0 = 1_700_000_000_000  # ms


def test_v6_query_pages_and_time_filters(v6: EmulatedBox) -> None:
    stored = [v6.emit(timestamp_ms=T0 + i * 60_000, device=i % 3) for i in range(7)]

    def getevents(body: dict) -> dict:
        return requests.post(f"{v6.api_url}{V6}/getevents", json=body, timeout=5).json()

    first = getevents({"page_limit": 3, "page_index": 0})
    assert first["pagination"] == {"page_index": 0, "page_limit": 3, "total_count": 7}
    pages = [getevents({"page_limit": 3, "page_index": i})["events"] for i in range(3)]
    ids = [e["event_id"] for page in pages for e in page]
    assert ids == [e["event_id"] for e in reversed(stored)]  # newest first, every event once
    assert pages[0][0]["timestamp"] == pytest.approx((T0 + 6 * 60_000) / 1000)  # float s
    window = {"datetime_gte": T0 // 1000 + 60, "datetime_lte": T0 // 1000 + 180}
    in_seconds = getevents({"filters": window, "page_limit": 10})
    in_ms = getevents({"filters": {k: v * 1000 for k, v in window.items()}})
    expected = {e["event_id"] for e in stored[1:4]}
    assert {e["event_id"] for e in in_seconds["events"]} == expected
    assert {e["event_id"] for e in in_ms["events"]} == expected
    one_device = getevents({"filters": {"media_device_ids": [v6.devices[1].id]}})
    assert {e["event_id"] for e in one_device["events"]} == {
        e["event_id"] for e in stored if e["device_id"] == v6.devices[1].id
    }
    assert getevents({"page_index": -1})["error"]["code"] == "PARAMETER_ERROR"


def test_v6_getevent_and_images(v6: EmulatedBox) -> None:
    stored = v6.emit(timestamp_ms=T0)
    event = requests.post(
        f"{v6.api_url}{V6}/getevent", json={"event_id": stored["event_id"]}, timeout=5
    ).json()
    assert event["media_device_info"]["media_device_id"] == stored["device_id"]
    for key, kind in (("spot_image_id", "scene"), ("recognize_face_image_id", "face")):
        image = requests.get(
            f"{v6.api_url}{V6}/getspotimage/{event[key]}",
            params={"timestamp": event["timestamp"]},
            timeout=5,
        )
        assert image.headers["Content-Type"] == "image/jpeg"
        assert image.content == stored["images"][kind]
    wrong_day = requests.get(
        f"{v6.api_url}{V6}/getspotimage/{event['spot_image_id']}",
        params={"timestamp": event["timestamp"] - 86400},
        timeout=5,
    )
    assert wrong_day.json()["error"]["code"] == "PARAMETER_ERROR"
    reg = requests.get(f"{v6.api_url}{V6}/getregisterimage/{event['register_image_id']}", timeout=5)
    assert reg.content == stored["images"]["register"]
    blank = requests.get(f"{v6.api_url}{V6}/getregisterimage/nope", timeout=5)
    assert blank.headers["Content-Type"] == "image/jpeg" and blank.content[:2] == b"\xff\xd8"
    missing = requests.post(f"{v6.api_url}{V6}/getevent", json={"event_id": "1"}, timeout=5)
    assert missing.json()["error"]["code"] == "ID_NOT_FOUND"


def test_v5_query_pages_filters_and_images(v5: EmulatedBox) -> None:
    stored = [
        v5.emit("visitor" if i == 2 else "employee", device=i % 2, timestamp_ms=T0 + i * 1000)
        for i in range(5)
    ]
    url = f"{v5.api_url}/SophonFace/api/events"
    first = requests.get(url, params={"per_page": 2, "page": 0}, timeout=5).json()
    assert first["pagination"] == {"num_pages": 3, "page": 0, "per_page": 2, "total_count": 5}
    last = requests.get(url, params={"per_page": 2, "page": 2}, timeout=5).json()["data"]
    assert [e["_id"] for e in last] == [stored[0]["v5_id"]]
    window = requests.get(
        url, params={"datetime_gte": T0 // 1000 + 1, "datetime_lte": T0 // 1000 + 3}, timeout=5
    ).json()
    assert {e["_id"] for e in window["data"]} == {e["v5_id"] for e in stored[1:4]}
    assert sorted(e["timestamp"] for e in window["data"]) == pytest.approx(
        [T0 / 1000 + 1, T0 / 1000 + 2, T0 / 1000 + 3]
    )
    visitors = requests.get(url, params={"userType": 2}, timeout=5).json()["data"]
    assert [e["_id"] for e in visitors] == [stored[2]["v5_id"]]
    streams = requests.get(url, params={"streams": v5.devices[1].id}, timeout=5).json()["data"]
    assert len(streams) == 2
    event = first["data"][0]
    image = requests.get(
        f"{v5.api_url}/SophonFace/api/event_images/{event['common']['spot_pic_id']}",
        params={"datetime": event["timestamp"]},
        timeout=5,
    )
    assert image.content == stored[4]["images"]["scene"]
    gallery = requests.get(
        f"{v5.api_url}/SophonFace/api/images/{event['common']['identity_info']['image_id']}",
        timeout=5,
    )
    assert gallery.content == stored[4]["images"]["register"]


# -- what the box POSTs on its own -------------------------------------------------------


class Receiver:
    """A real HTTP receiver that answers `fail_first` requests with 503, then 200."""

    def __init__(self, fail_first: int = 0, port: int = 0) -> None:
        self.fail_first = fail_first
        self.bodies: list[dict] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 503 if len(receiver.answers) < receiver.fail_first else 200
                receiver.answers.append(status)
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/report"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(fail_first=1)
    yield made
    made.close()


def test_v6_history_upload_retries_from_the_cursor(receiver: Receiver) -> None:
    with EmulatedBox("v6", push_period=0.05) as box:
        stored = [box.emit(), box.emit("stranger")]
        requests.post(
            f"{box.api_url}{V6}/setconfigs",
            json={"config_dict": {"HISTORY_EVENT_UPLOAD_URL": receiver.url}},
            timeout=5,
        )
        wait_for(lambda: len(receiver.bodies) == 2, what="both events uploaded")
        box.emit("visitor")
        wait_for(lambda: len(receiver.bodies) == 3, what="the new event uploaded")
        query = requests.post(f"{box.api_url}{V6}/getevents", json={}, timeout=5).json()
    assert receiver.answers[:2] == [503, 200]  # the first event was refused, then sent again
    first, second = receiver.bodies[:2]
    assert (first["timestamp"], second["timestamp"]) == (
        stored[0]["timestamp_ms"],
        stored[1]["timestamp_ms"],
    )
    assert base64.b64decode(first["spot_image"]) == stored[0]["images"]["scene"]
    assert base64.b64decode(first["recognize_face_image"]) == stored[0]["images"]["face"]
    assert base64.b64decode(first["reg_image"]) == stored[0]["images"]["register"]
    assert first["mq_license_key"] and first["media_device_info"]["media_device_id"]
    assert second["user_type"] == "stranger" and second["reg_image"] == ""
    assert box.history_cursor == 3
    assert {e["is_send"] for e in query["events"]} == {1}
    refused = [u for u in box.uploads if u["kind"] == "history" and not u["ok"]]
    assert [u["status"] for u in refused] == [503]


def test_v5_history_upload_survives_a_receiver_that_is_not_there_yet() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EmulatedBox("v5", push_period=0.05) as box:
        stored = box.emit("vip")
        body = {
            "history_upload_event_url": [f"http://127.0.0.1:{port}/report"],
            "history_need_reg_pic": False,
            "content-type": "json",
            "reported_peroid": 5,
        }
        requests.post(f"{box.api_url}/SophonFogSys/api/HistoryEventUrl", json=body, timeout=5)
        wait_for(lambda: any(u["status"] is None for u in box.uploads), what="a refused POST")
        late = Receiver(port=port)
        try:
            wait_for(lambda: late.bodies, what="the upload once the receiver is up")
        finally:
            late.close()
    uploaded = late.bodies[0]
    assert uploaded["api_version"] == "1.0" and uploaded["person_type"] == 5
    assert uploaded["timestamp"] == stored["timestamp_ms"]
    assert base64.b64decode(uploaded["spot_pic"]) == stored["images"]["scene"]
    assert uploaded["reg_pic"] == ""  # history_need_reg_pic: false
    assert uploaded["ep_info"]["device_id"] == stored["device_id"]


def test_v6_status_pushes(receiver: Receiver) -> None:
    receiver.fail_first = 0
    with EmulatedBox("v6", devices=[{"id": "cam-1", "status": "offline"}], push_period=0.05) as box:
        box.set_config({"MEDIA_DEVICE_MONITOR_URL": receiver.url})
        requests.post(
            f"{box.system_url}/sophon/v2/system/setsystemmonitorconfig",
            json={"device_monitor_url": receiver.url, "reporter_id": "R7"},
            timeout=5,
        )
        wait_for(
            lambda: {"sub_devices", "cpu_info"} <= {k for b in receiver.bodies for k in b},
            what="both status pushes",
        )
    devices = next(b for b in receiver.bodies if "sub_devices" in b)
    assert devices["mq_license_key"] == box.state.identity.license_key
    assert devices["sub_devices"][0]["media_device_id"] == "cam-1"
    assert devices["sub_devices"][0]["media_device_status"] == "offline"
    system = next(b for b in receiver.bodies if "cpu_info" in b)
    assert system["reporter_id"] == "R7" and system["gateway_mac"]
    assert system["memory_info"]["total_memory"].endswith("G") and "emmc" in system


def test_v5_system_status_push(receiver: Receiver) -> None:
    receiver.fail_first = 0
    with EmulatedBox("v5", push_period=0.05) as box:
        requests.post(
            f"{box.system_url}/SophonSystem/api/monitor",
            json={"monitor_address_list": [receiver.url], "report_period": 20},
            timeout=5,
        )
        wait_for(lambda: receiver.bodies, what="a system status push")
    system = receiver.bodies[0]
    assert system["gateway_ext_data"]["sw_version"] and system["fan_speed"].endswith("r/min")
    assert system["memory_info"]["total_memory"] == "3.71G"
    assert system["dev_sno"] == box.state.identity.license_key


# -- the command -------------------------------------------------------------------------


def test_emulate_box_command_serves_until_sigterm(tmp_path) -> None:
    command = [
        sys.executable,
        "-m",
        "sophonfog_bridge",
        "emulate-box",
        "--firmware",
        "v6",
        "--api-port",
        "0",
        "--ws-port",
        "0",
        "--system-port",
        "0",
        "--rate",
        "1200",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(4)]
        ws_url = lines[3].split()[-1]
        device = process.stdout.readline().split()[1]
        assert ws_url.startswith("ws://127.0.0.1:")
        with connect(ws_url, open_timeout=5) as ws:
            ws.send(json.dumps({"media_device_ids": [device]}))
            assert receive(ws)["media_device_id"] == device
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read().rstrip().endswith("stopped")
    finally:
        process.kill()
        process.wait()
