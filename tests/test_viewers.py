"""Who can see faces: the viewer guard on the status page, saved photos and /metrics, and
Home Assistant's ingress gateway, all against a real bridge process over HTTP.

All test traffic comes from 127.0.0.1, so "a viewer from outside" is either a viewer list
that leaves loopback out, or a trusted proxy on loopback forwarding a public address.
Ingress runs through a real reverse proxy here that does what the Supervisor's does: strip
`/api/hassio_ingress/<token>` and add `X-Ingress-Path`.
"""

from __future__ import annotations

import http.client
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from sophonfog_bridge import samples

from .conftest import wait_for

TOKEN = "viewer-test-token"
INGRESS = "/api/hassio_ingress/5bN0tAr3aLt0k3n"
PAGES = ("/", "/status.json", "/metrics", "/snapshots/nothing.jpg")
OFF = {"mqtt": {"enabled": False}, "syslog": {"enabled": False}}


def viewer_bridge(bridge_factory, tmp_path, **http):
    plugins = {**OFF, "snapshots": {"path": str(tmp_path / "photos")}}
    return bridge_factory({"http": http, "plugins": plugins})


def status_codes(bridge, headers: dict | None = None) -> dict[str, int]:
    return {
        path: requests.get(bridge.url + path, headers=headers or {}, timeout=5).status_code
        for path in PAGES
    }


def post_event(bridge, headers: dict | None = None) -> requests.Response:
    return bridge.post(payload=samples.event_payload(identity_name="Viewer Test"), headers=headers)


def test_default_serves_the_pages_to_loopback(bridge_factory, tmp_path):
    bridge = viewer_bridge(bridge_factory, tmp_path)
    assert post_event(bridge).status_code == 200
    codes = status_codes(bridge)
    assert codes == {"/": 200, "/status.json": 200, "/metrics": 200, "/snapshots/nothing.jpg": 404}


def test_default_refuses_a_public_address_behind_a_trusted_proxy(bridge_factory, tmp_path):
    # The proxy on loopback says the viewer is 203.0.113.9: not a private network.
    bridge = viewer_bridge(bridge_factory, tmp_path, trusted_proxies=["127.0.0.1/32"])
    public = {"X-Forwarded-For": "203.0.113.9"}
    assert set(status_codes(bridge, public).values()) == {403}
    home = {"X-Forwarded-For": "192.168.1.50"}
    assert status_codes(bridge, home)["/"] == 200
    # Boxes are not viewers: their posts and /healthz are not behind this guard.
    assert post_event(bridge, public).status_code == 200
    assert requests.get(bridge.url + "/healthz", headers=public, timeout=5).status_code == 200


def test_a_viewer_list_without_loopback_shuts_loopback_out(bridge_factory, tmp_path):
    bridge = viewer_bridge(bridge_factory, tmp_path, viewers=["10.9.0.0/16"])
    answer = requests.get(bridge.url + "/", timeout=5)
    assert answer.status_code == 403 and "http.viewers" in answer.json()["message"]
    assert set(status_codes(bridge).values()) == {403}
    assert post_event(bridge).status_code == 200


def test_a_token_opens_the_pages_to_any_address_that_has_it(bridge_factory, tmp_path):
    bridge = viewer_bridge(bridge_factory, tmp_path, token=TOKEN, trusted_proxies=["127.0.0.1/32"])
    public = {"X-Forwarded-For": "203.0.113.9"}
    assert status_codes(bridge, public)["/"] == 401
    with_token = {**public, "Authorization": f"Bearer {TOKEN}"}
    assert status_codes(bridge, with_token)["/"] == 200


def test_viewers_and_token_both_apply_when_both_are_set(bridge_factory, tmp_path):
    bridge = viewer_bridge(bridge_factory, tmp_path, token=TOKEN, viewers=["10.9.0.0/16"])
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert status_codes(bridge, bearer)["/"] == 403
    bridge = viewer_bridge(bridge_factory, tmp_path, token=TOKEN, viewers=["127.0.0.1/32"])
    assert status_codes(bridge)["/"] == 401
    assert status_codes(bridge, bearer)["/"] == 200


def test_an_ingress_header_from_elsewhere_is_not_let_in(bridge_factory, tmp_path):
    # The gateway is the Supervisor's proxy; 127.0.0.1 is not it here.
    bridge = viewer_bridge(
        bridge_factory, tmp_path, token=TOKEN, ingress_gateways=["172.30.32.2/32"]
    )
    spoofed = {"X-Ingress-Path": INGRESS, "X-Forwarded-For": "172.30.32.2"}
    assert set(status_codes(bridge, spoofed).values()) == {401}
    bridge = viewer_bridge(
        bridge_factory,
        tmp_path,
        viewers=["10.9.0.0/16"],
        ingress_gateways=["172.30.32.2/32"],
        trusted_proxies=["127.0.0.1/32"],
    )
    assert set(status_codes(bridge, spoofed).values()) == {403}


class IngressProxy(ThreadingHTTPServer):
    """GET `/api/hassio_ingress/<token>/<path>` -> the bridge's `/<path>` + X-Ingress-Path."""

    daemon_threads = True

    def __init__(self, bridge_port: int):
        self.bridge_port = bridge_port
        self.forwarded: list[str] = []
        super().__init__(("127.0.0.1", 0), _IngressHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _IngressHandler(BaseHTTPRequestHandler):
    server: IngressProxy

    def do_GET(self) -> None:
        if not self.path.startswith(INGRESS + "/"):
            self.send_error(404, "not an ingress path")
            return
        upstream = self.path[len(INGRESS) :]
        self.server.forwarded.append(upstream)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.bridge_port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["X-Ingress-Path"] = INGRESS
        conn.request("GET", upstream, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        conn.close()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def ingress(bridge_factory, tmp_path) -> Iterator[tuple]:
    # The gateway address pointed at loopback, where the test's proxy connects from.
    bridge = bridge_factory(
        {
            "http": {"token": TOKEN, "ingress_gateways": ["127.0.0.1/32"]},
            "plugins": {**OFF, "snapshots": {"enabled": False}, "status": {"refresh_s": 0.5}},
        }
    )
    proxy = IngressProxy(bridge.port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield bridge, proxy
    proxy.shutdown()
    proxy.server_close()


def test_the_gateway_opens_the_page_without_a_token(ingress):
    bridge, proxy = ingress
    assert requests.get(bridge.url + "/status.json", timeout=5).status_code == 200  # loopback
    answer = requests.get(proxy.url + INGRESS + "/", timeout=5)
    assert answer.status_code == 200 and "WWW-Authenticate" not in answer.headers
    assert proxy.forwarded == ["/"]


def test_the_page_works_under_the_ingress_path_in_a_browser(ingress):
    from playwright.sync_api import sync_playwright

    bridge, proxy = ingress
    event_id = post_event(bridge, {"X-Sophonfog-Token": TOKEN}).json()["event_id"]
    executable = shutil.which("chromium")
    assert executable, "chromium is not installed (apt-get install -y chromium)"
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.goto(proxy.url + INGRESS + "/")
            row = page.locator(f'tr[data-event-id="{event_id}"]')
            row.wait_for(timeout=10_000)
            assert "Viewer Test" in row.inner_text()
            wait_for(
                lambda: row.locator("img").first.evaluate("i => i.complete && i.naturalWidth > 0"),
                what="a thumbnail through ingress",
            )
        finally:
            browser.close()
    # Every request the page made stayed under the ingress path (no token, no 401).
    paths = {urlsplit(url).path for url in requested}
    assert paths and all(p.startswith(INGRESS + "/") for p in paths), paths
    assert any(p.startswith("/status/image/") for p in proxy.forwarded), proxy.forwarded
