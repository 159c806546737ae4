"""The status page in a real headless Chromium (Debian's `chromium`, driven by Playwright)
against a real bridge with a real broker: events with thumbnails, door decisions, boxes,
MQTT state, live updates, and hostile names rendered as text."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from sophonfog_bridge import samples

from .conftest import wait_for

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EP_A = "AKOPKKKKK__192.168.1.101"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "chromium is not installed (apt-get install -y chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    # The page must load nothing from outside the bridge.
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith("http://127.0.0.1") else outside.append(r.url),
    )
    yield page
    context.close()
    assert not outside, f"the page requested outside URLs: {outside}"


def status_bridge(bridge_factory, mqtt_port: int | None = None, **status):
    plugins_cfg = {
        "snapshots": {"enabled": False},
        "syslog": {"enabled": False},
        "status": {"refresh_s": 0.5, "thumbnail_px": 96, **status},
        "mqtt": {"enabled": False},
    }
    if mqtt_port is not None:
        plugins_cfg["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port, "discovery": False}
    return bridge_factory(
        {"plugins": plugins_cfg}, plugins={"fakedoor": "tests.metrics_door:FakeDoor"}
    )


def post_event(bridge, name: str, identity: str, person_type: str = "employee", **kw) -> str:
    payload = samples.event_payload(
        identity_name=name, identity_id=identity, person_type=person_type, ep_id=EP_A, **kw
    )
    answer = bridge.post(payload=payload)
    assert answer.status_code == 200, answer.text
    return answer.json()["event_id"]


def status_json(bridge) -> dict:
    return requests.get(bridge.url + "/status.json", timeout=5).json()


def test_page_shows_events_thumbnails_doors_boxes_and_updates_live(
    bridge_factory, mosquitto, page, tmp_path
):
    bridge = status_bridge(bridge_factory, mqtt_port=mosquitto.port)
    assert bridge.post("/DeviceStatus", samples.status_payload(devices=2)).status_code == 200
    first = post_event(bridge, "Ada Lovelace", "10001")
    wait_for(
        lambda: (ev := status_json(bridge)["events"]) and ev[0]["door"],
        what="the event and its door decision on status.json",
    )

    page.goto(bridge.url + "/")
    row = page.locator(f'tr[data-event-id="{first}"]')
    row.wait_for(timeout=10_000)
    assert "Ada Lovelace" in row.inner_text()
    assert "employee" in row.inner_text()
    assert "open" in row.inner_text()  # the door decision announced for this event
    assert "92.0 %" in row.inner_text()

    # Thumbnails really decode in the browser, and are downscaled.
    images = row.locator("img")
    assert images.count() == 2
    wait_for(
        lambda: all(
            images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(2)
        ),
        what="thumbnails to load",
    )
    widths = [images.nth(i).evaluate("img => img.naturalWidth") for i in range(2)]
    assert all(0 < w <= 96 for w in widths), widths

    # Header: MQTT state from the mqtt plugin's health entry, spool depth.
    wait_for(lambda: page.locator("#mqtt").inner_text() == "connected", what="MQTT connected")
    assert page.locator("#spool-depth").inner_text().isdigit()

    # Boxes with their devices and online state (from the heartbeat).
    boxes = page.locator("#boxes")
    assert "Lobby box (AKOPKKKKK)" in boxes.inner_text()
    for device in ("AKOPKKKKK__192.168.1.101", "AKOPKKKKK__192.168.1.102"):
        device_row = boxes.locator(f'tr[data-device="{device}"]')
        assert "online" in device_row.inner_text()

    # Plugins table lists what runs.
    plugins = page.locator("#plugins").inner_text()
    assert "fakedoor" in plugins and "status" in plugins

    # A new event appears without a reload, on top.
    page.evaluate("window.__sameDocument = true")
    second = post_event(bridge, "Grace Hopper", "10002", person_type="blacklist")
    new_row = page.locator(f'tr[data-event-id="{second}"]')
    new_row.wait_for(timeout=10_000)
    wait_for(lambda: "deny" in new_row.inner_text(), what="the deny decision to show")
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#events tr").first.get_attribute("data-event-id") == second

    shot = tmp_path / "status.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_hostile_names_render_as_text(bridge_factory, page):
    bridge = status_bridge(bridge_factory)
    hostile = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    event_id = post_event(bridge, hostile, "<b>666</b>")
    page.goto(bridge.url + "/")
    row = page.locator(f'tr[data-event-id="{event_id}"]')
    row.wait_for(timeout=10_000)
    assert row.locator(".name").inner_text() == hostile
    assert "<b>666</b>" in row.inner_text()
    assert row.locator("b").count() == 0
    assert row.locator("img").count() == 2  # only the two thumbnails
    assert page.evaluate("window.__pwned") is None


def test_status_json_and_images_over_http(bridge_factory):
    bridge = status_bridge(bridge_factory, max_events=2)
    big = samples.jpeg(1280, 960, seed=9)
    ids = [
        post_event(bridge, f"P{i}", str(20000 + i), timestamp_ms=1_700_000_000_000 + i, scene=big)
        for i in range(3)
    ]
    wait_for(
        lambda: [e["event_id"] for e in status_json(bridge)["events"]] == ids[:0:-1],
        what="only the last two events, newest first",
    )
    data = status_json(bridge)
    assert data["mqtt"]["state"] == "disabled"
    assert data["bridge"]["spool_last_seq"] >= 3
    assert data["events"][0]["images"] == ["face", "scene", "registered"]

    answer = requests.get(f"{bridge.url}/status/image/{ids[2]}/scene", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(answer.content)) as thumb:
        assert max(thumb.size) == 96 and thumb.size == (96, 72)
    assert len(answer.content) < len(big) / 10

    # A box's own event id may hold `/`, `?` or `#`; the bridge's id never does, so the
    # page's image links need no escaping beyond the route's.
    payload = samples.event_payload("ws", identity_name="Slash", ep_id=EP_A)
    payload["event_id"] = "cam/7/ev?x#1"
    event_id = bridge.post(payload=payload).json()["event_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", event_id)
    wait_for(lambda: status_json(bridge)["events"][0]["event_id"] == event_id)
    answer = requests.get(f"{bridge.url}/status/image/{event_id}/face", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/jpeg"

    # Evicted events, unknown ids and unknown kinds are 404s.
    for path in (f"{ids[0]}/scene", f"{ids[1]}/scene", "nope/face", f"{ids[2]}/other"):
        assert requests.get(f"{bridge.url}/status/image/{path}", timeout=5).status_code == 404

    page = requests.get(bridge.url + "/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'unsafe-inline'" in page.headers["Content-Security-Policy"]
    assert "<link" not in page.text and 'src="' not in page.text  # no external assets


def test_page_with_a_token_needs_it(bridge_factory, browser):
    token = "status-page-token"
    bridge = bridge_factory(
        {
            "http": {"token": token},
            "plugins": {n: {"enabled": False} for n in ("mqtt", "snapshots", "syslog")},
        }
    )
    payload = samples.event_payload(identity_name="Token Holder", ep_id=EP_A)
    event_id = bridge.post(payload=payload, headers={"X-Sophonfog-Token": token}).json()["event_id"]
    assert requests.get(bridge.url + "/status.json", timeout=5).status_code == 401
    context = browser.new_context(http_credentials={"username": "admin", "password": token})
    try:
        page = context.new_page()
        page.goto(bridge.url + "/")
        row = page.locator(f'tr[data-event-id="{event_id}"]')
        row.wait_for(timeout=10_000)
        assert "Token Holder" in row.inner_text()
        wait_for(
            lambda: row.locator("img").first.evaluate("i => i.complete && i.naturalWidth > 0"),
            what="a thumbnail behind the token",
        )
        # The page keeps polling with the browser's credentials: a new event shows up.
        payload = samples.event_payload(identity_name="Second Holder", ep_id=EP_A)
        answer = bridge.post(payload=payload, headers={"X-Sophonfog-Token": token})
        page.locator(f'tr[data-event-id="{answer.json()["event_id"]}"]').wait_for(timeout=10_000)
    finally:
        context.close()


def test_page_recovers_from_a_request_that_never_answers(bridge_factory, page):
    bridge = status_bridge(bridge_factory)
    event_id = post_event(bridge, "After the stall", "30001")
    held = []

    def hold_the_first(route) -> None:
        if not held:
            held.append(route)  # never answered: the page has to give up on it
        else:
            route.continue_()

    page.route("**/status.json", hold_the_first)
    page.goto(bridge.url + "/")
    page.locator(f'tr[data-event-id="{event_id}"]').wait_for(timeout=10_000)
    assert len(held) == 1


def test_thumbnail_of_a_decompression_bomb_is_refused_not_built():
    import io

    from PIL import Image
    from sophonfog_bridge.plugins.status.thumbs import thumbnail

    # A tiny PNG that declares a 20000 x 20000 canvas: decoding it would take 1.2 GB.
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 200_000
    assert thumbnail(bomb.getvalue(), 160) is None
    ok = io.BytesIO()
    Image.new("RGB", (640, 480), "red").save(ok, "JPEG")
    small = Image.open(io.BytesIO(thumbnail(ok.getvalue(), 160)))
    assert max(small.size) <= 160


NAMES = ["Ada Lovelace", "Maximilian Alexander von Humboldt-Wittgenstein", "小明"]


@pytest.mark.parametrize("width", [400, 1280], ids=["phone", "desktop"])
def test_page_fits_the_screen_with_readable_names(bridge_factory, browser, tmp_path, width):
    bridge = status_bridge(bridge_factory)
    assert bridge.post("/DeviceStatus", samples.status_payload(devices=2)).status_code == 200
    ids = [post_event(bridge, name, str(40000 + i)) for i, name in enumerate(NAMES)]
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(bridge.url + "/")
        for event_id in ids:
            page.locator(f'[data-event-id="{event_id}"]').wait_for(timeout=10_000)
        page.locator("#plugins .badge").first.wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / f"status-{width}.png"), full_page=True)

        overflow = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], f"page scrolls sideways at {width} px: {overflow}"
        # A name wraps at most once: its box is one or two lines high, never a column of
        # single characters.
        for box in page.locator("#events .name").all():
            lines = box.evaluate(
                "e => e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)"
            )
            assert lines <= 2.1, f"{box.inner_text()!r} takes {lines:.1f} lines at {width} px"
        # Every plugin's state badge is entirely on screen and not cut off. One evaluate for
        # all of them: the page rebuilds the plugin table at every refresh.
        badges = page.evaluate(
            """[...document.querySelectorAll("#plugins .badge")].map(e => {
                 const r = e.getBoundingClientRect();
                 return [e.textContent, r.width > 0 && r.left >= 0 && r.right <= innerWidth
                                        && e.scrollWidth <= e.clientWidth + 1]; })"""
        )
        assert len(badges) >= 4
        cut = [text for text, fits in badges if not fits]
        assert not cut, f"plugin states cut off at {width} px: {cut}"
    finally:
        context.close()
