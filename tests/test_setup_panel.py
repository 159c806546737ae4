"""Setting up a box from the status page: a real bridge process, the V5/V6 emulator and
a V2 fake box on real sockets, and the form in headless Chromium."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
import requests

from sophonfog_bridge.emulator import EmulatedBox
from sophonfog_bridge.panelboxes import PanelBoxes, merged
from sophonfog_bridge.setupform import bridge_url, host_and_port, route_address

from .box_helpers import RECORDER, bridge_config, connected, recorded
from .conftest import wait_for
from .test_cli_box import OTHERS, FakeBox
from .test_status_page import browser, page  # noqa: F401 - the fixtures

SECRET = "panel-Pass-9"
HISTORY = "/EventServer/api/SophonFogHistoryEvent"


def panel_bridge(bridge_factory, tmp_path, **http):
    cfg = bridge_config(tmp_path, [], status={"refresh_s": 0.5})
    if http:
        cfg["http"] = http
    return bridge_factory(cfg, plugins=RECORDER)


def setup_state(bridge, **headers) -> dict:
    answer = requests.get(bridge.url + "/setup/boxes", headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def post(bridge, path: str, body: dict, csrf: str | None = None, **headers) -> requests.Response:
    if csrf is not None:
        headers["X-Sophonfog-Csrf"] = csrf
    headers.setdefault("Origin", bridge.url)
    return requests.post(bridge.url + path, json=body, headers=headers, timeout=30)


def box_form(box: EmulatedBox, name: str = "lobby", **extra) -> dict:
    return {
        "address": f"{box.host}:{box.api_port}",
        "name": name,
        "ws_port": str(box.ws_port),
        "system_port": str(box.system_port),
        "username": "admin",
        "password": SECRET,
        **extra,
    }


def test_add_a_v6_box_from_the_form(bridge_factory, page, tmp_path):  # noqa: F811
    bridge = panel_bridge(bridge_factory, tmp_path)
    with EmulatedBox(firmware="v6", password=SECRET) as box:
        page.goto(bridge.url + "/")
        form = page.locator("#add-box")
        answer = page.locator("#setup-answer")
        form.locator('[name="address"]').fill("box one!")
        form.locator("button").click()
        answer.locator(".problem").first.wait_for(timeout=10_000)
        assert "box address: 'box one!' is not a host name or IP address" in answer.inner_text()

        form.locator('[name="address"]').fill(f"127.0.0.1:{box.api_port}")
        form.locator('[name="name"]').fill("lobby")
        form.locator('[name="username"]').fill("admin")
        form.locator('[name="password"]').fill(SECRET)
        form.locator("summary").click()
        form.locator('[name="ws_port"]').fill(str(box.ws_port))
        form.locator('[name="system_port"]').fill(str(box.system_port))
        form.locator("button").click()
        page.get_by_text("box lobby added").wait_for(timeout=20_000)
        said = answer.inner_text()
        assert "firmware v6 (probed)" in said and "logged in as admin" in said, said
        assert said.count("box answered HTTP 200") == 2, said
        assert SECRET not in said and SECRET not in page.content()

        ours = f"http://127.0.0.1:{bridge.port}"
        assert box.config["HISTORY_EVENT_UPLOAD_URL"] == ours + HISTORY
        assert box.config["MEDIA_DEVICE_MONITOR_URL"] == ours + "/DeviceStatus"
        wait_for(lambda: connected(bridge), 15, what="the panel's box connected")
        row = page.locator('#panel-boxes [data-box="lobby"]')
        row.wait_for(timeout=10_000)
        assert "added from the panel" in row.inner_text()

        box.emit(name="Panel Person")
        wait_for(
            lambda: any(e["identity_name"] == "Panel Person" for e in recorded(tmp_path)),
            15,
            what="the live event at the recorder",
        )
    saved = bridge.workdir / "data" / "state" / "boxes.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600  # it holds the password
    assert [b["name"] for b in json.loads(saved.read_text())["boxes"]] == ["lobby"]


def test_a_panel_box_survives_a_restart_and_removing_it_stops_its_client(bridge_factory, tmp_path):
    bridge = panel_bridge(bridge_factory, tmp_path)
    with EmulatedBox(firmware="v5", password=SECRET) as box:
        answer = post(bridge, "/setup/boxes", box_form(box), setup_state(bridge)["csrf"])
        assert answer.status_code == 200 and answer.json()["added"], answer.text
        wait_for(lambda: connected(bridge), 15, what="the box connected")
        assert bridge.stop() == 0

        bridge.start()
        wait_for(lambda: connected(bridge), 15, what="the box connected after the restart")
        state = setup_state(bridge)
        assert [b["name"] for b in state["panel"]] == ["lobby"]
        assert "password" not in json.dumps(state) and SECRET not in json.dumps(state)

        answer = post(bridge, "/setup/boxes/remove", {"name": "lobby"}, state["csrf"])
        assert answer.status_code == 200, answer.text
        assert "lobby" not in bridge.health()["boxes"]
        wait_for(lambda: box.connections == 0, 10, what="the box's websocket closed")
        assert setup_state(bridge)["panel"] == []
        answer = post(bridge, "/setup/boxes/remove", {"name": "lobby"}, state["csrf"])
        assert answer.status_code == 404 and "no box named 'lobby'" in answer.text


def test_a_v2_box_gets_its_receiver_list_and_no_client(bridge_factory, tmp_path):
    bridge = panel_bridge(bridge_factory, tmp_path)
    fake = FakeBox(OTHERS).start()
    try:
        body = {"address": f"127.0.0.1:{fake.port}", "bridge": "10.0.0.9:9528"}
        answer = post(bridge, "/setup/boxes", body, setup_state(bridge)["csrf"])
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["firmware"] == "v2" and result["added"] is False and result["ok"]
        assert fake.posts() == [
            {
                "event_server_url": [*OTHERS, "http://10.0.0.9:9528/RealTimeEvent"],
                "real_need_reg_pic": True,
                "content-type": "json",
            }
        ]
        said = " ".join(line["text"] for line in result["lines"])
        assert 'box answered HTTP 200: {"status": 0, "message": "SUCCESS"}' in said
        assert bridge.health()["boxes"] == {} and setup_state(bridge)["panel"] == []
    finally:
        fake.stop()


def test_bad_input_names_every_problem(bridge_factory, tmp_path):
    bridge = panel_bridge(bridge_factory, tmp_path)
    csrf = setup_state(bridge)["csrf"]
    body = {"address": "10.0.0.1:99999", "ws_port": "x", "firmware": "v9", "password": "p"}
    answer = post(bridge, "/setup/boxes", body, csrf)
    assert answer.status_code == 400
    assert answer.json()["problems"] == [
        "box address: '10.0.0.1:99999': the port must be a number from 1 to 65535",
        "websocket port: 'x' is not a port (1-65535)",
        "firmware: 'v9': use one of auto, v2, v5, v6",
        "username: a password was given without one",
    ]
    for address, problem in [
        ("", "box address: empty"),
        ("http://10.0.0.1/x", "give only a host or IP address and a port"),
        ("a_b.local", "is not a host name or IP address"),
    ]:
        answer = post(bridge, "/setup/boxes", {"address": address}, csrf)
        assert answer.status_code == 400 and problem in answer.text, answer.text
    answer = post(bridge, "/setup/boxes", {"address": "10.0.0.1", "bridge": "x/y"}, csrf)
    assert "bridge address: 'x/y': give only a host" in answer.text, answer.text
    assert bridge.health()["status"] == "ok" and bridge.health()["boxes"] == {}


def test_cross_site_posts_are_refused(bridge_factory, tmp_path):
    bridge = panel_bridge(bridge_factory, tmp_path)
    with EmulatedBox(firmware="v6") as box:
        before = box.config
        csrf = setup_state(bridge)["csrf"]
        form = box_form(box)
        # Another site's page can send a form or a JSON post, but cannot read the token.
        answer = requests.post(
            bridge.url + "/setup/boxes",
            data=form,
            headers={"Origin": "http://evil.example"},
            timeout=5,
        )
        assert answer.status_code == 403 and "no CSRF token" in answer.text
        for origin in ("http://evil.example", "null"):
            answer = post(bridge, "/setup/boxes", form, csrf, Origin=origin)
            assert answer.status_code == 403, answer.text
            assert "the request comes from another site" in answer.text
        answer = post(bridge, "/setup/boxes", form, "a-guessed-token")
        assert answer.status_code == 403 and "reload it" in answer.text
        answer = post(bridge, "/setup/boxes/remove", {"name": "lobby"}, Origin="http://x.example")
        assert answer.status_code == 403
        assert box.config == before and bridge.health()["boxes"] == {}


def test_the_token_stays_in_the_path_and_is_never_shown(bridge_factory, tmp_path):
    token = "panel-token-77"
    bridge = panel_bridge(bridge_factory, tmp_path, token=token)
    assert requests.get(bridge.url + "/setup/boxes", timeout=5).status_code == 401
    auth = {"X-Sophonfog-Token": token}
    with EmulatedBox(firmware="v6", password=SECRET) as box:
        csrf = setup_state(bridge, **auth)["csrf"]
        form = box_form(box, bridge="10.0.0.9")
        answer = post(bridge, "/setup/boxes", form, csrf, **auth)
        assert answer.status_code == 200, answer.text
        assert (
            box.config["HISTORY_EVENT_UPLOAD_URL"]
            == f"http://10.0.0.9:{bridge.port}/{token}" + HISTORY
        )
        assert token not in answer.text and SECRET not in answer.text
        assert answer.json()["bridge_url"] == f"http://10.0.0.9:{bridge.port}/***"
        wait_for(lambda: connected(bridge), 15, what="the box connected")
        assert SECRET not in bridge.logs()


def test_a_config_box_wins_over_the_panels(tmp_path, caplog):
    path = tmp_path / "state" / "boxes.json"
    path.parent.mkdir()
    entries = [{"host": "10.0.0.5", "name": "lobby"}, {"host": "10.0.0.6"}, {"port": "x"}]
    path.write_text(json.dumps({"boxes": entries}))
    with caplog.at_level(logging.WARNING):
        panel = PanelBoxes(path)
        assert [b["name"] for b in panel.all()] == ["lobby", "10.0.0.6"]
        configured = [{"host": "10.0.0.7", "name": "lobby", "api_port": 5555}]
        assert [b["host"] for b in merged(configured, panel.all())] == ["10.0.0.7", "10.0.0.6"]
    assert "box 3 ignored: extra keys not allowed" in caplog.text
    assert (
        "box lobby added from the panel is not used" in caplog.text
        and "the config wins" in caplog.text
    )


def test_addresses_and_the_bridge_url():
    assert host_and_port("192.168.1.20", 5555) == ("192.168.1.20", 5555)
    assert host_and_port("http://box.local:6000/", 5555) == ("box.local", 6000)
    assert host_and_port("fe80::1", 5555) == ("fe80::1", 5555)
    assert host_and_port("[fe80::1]:7000", 5555) == ("fe80::1", 7000)
    for bad in ("", "a b", "https://x", "x:0", "user@x", "x?y"):
        with pytest.raises(ValueError):
            host_and_port(bad, 5555)
    # The route to a box on this machine starts on loopback; nothing is sent to find it.
    assert route_address("127.0.0.1", 5555) == "127.0.0.1"
    http = {"port": 9528, "token": None}
    assert bridge_url("", "127.0.0.1", http, "bridge.lan:9528") == "http://bridge.lan:9528"
    assert bridge_url("", "127.0.0.1", http, "localhost:9528") == "http://127.0.0.1:9528"
    assert (
        bridge_url("10.1.1.1", "x", {"port": 1, "token": "t0k3n"}, None)
        == "http://10.1.1.1:1/t0k3n"
    )
