"""The box emulator over real sockets: websocket dialects, device lists, login, config,
event query, history uploads and status pushes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager

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
