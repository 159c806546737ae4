"""Security of the receiver on a real process: the secret stays out of logs, sources are
checked on the socket peer, slow and idle clients are cut off, read-only pages stay so."""

from __future__ import annotations

import socket
import threading

import requests

from sophonfog_bridge.samples import event_payload, jpeg

from .conftest import wait_for
from .hostile_support import RECORDER, closed_by_server, config, raw_connection
from .recorder import read_lines

SECRET = "Zq8-very-secret-token-71"
SCENE = jpeg(64, 48, seed=31)


def payload(identity: str) -> dict:
    return event_payload("v2r2", identity_id=identity, scene=SCENE)


def test_the_secret_never_reaches_a_log_line_on_any_path(bridge_factory, tmp_path):
    bridge = bridge_factory(
        config(tmp_path, http={"token": SECRET, "max_body_mb": 1}, status={}), plugins=RECORDER
    )
    url = bridge.url
    session = requests.Session()
    json_headers = {"Content-Type": "application/json"}
    answers = [
        # accepted, every way of presenting it
        session.post(f"{url}/RealTimeEvent?token={SECRET}", json=payload("q")),
        session.post(f"{url}/{SECRET}/RealTimeEvent", json=payload("p")),
        session.post(
            f"{url}/RealTimeEvent", json=payload("h"), headers={"X-Sophonfog-Token": SECRET}
        ),
        session.post(
            f"{url}/RealTimeEvent",
            json=payload("b"),
            headers={"Authorization": f"Bearer {SECRET}"},
        ),
        # refused after the token was accepted: the error paths log the request
        session.post(f"{url}/{SECRET}/RealTimeEvent", data=b"{bad", headers=json_headers),
        session.post(f"{url}/RealTimeEvent?token={SECRET}", data=b"{bad", headers=json_headers),
        session.post(f"{url}/{SECRET}/DeviceStatus", json={"sub_devices": "x"}),
        session.post(
            f"{url}/{SECRET}/RealTimeEvent",
            data=b"{" + b" " * (1536 << 10) + b"}",
            headers=json_headers,
        ),
        # waitress refuses it before the app sees it
        session.post(
            f"{url}/{SECRET}/RealTimeEvent?token={SECRET}",
            data=b"{" + b" " * (4 << 20) + b"}",
            headers=json_headers,
        ),
        # unknown routes and methods with the secret in the URL
        session.get(f"{url}/{SECRET}/RealTimeEvent"),
        session.get(f"{url}/{SECRET}/nothing?token={SECRET}"),
        session.put(f"{url}/RealTimeEvent?token={SECRET}", data=b"{}"),
        session.get(f"{url}/snapshots/{SECRET}.jpg?token={SECRET}"),
        # a near miss must not be echoed either (it may be last month's token)
        session.post(f"{url}/RealTimeEvent?token={SECRET[:-1]}", json=payload("n")),
        session.post(f"{url}/{SECRET[:-1]}/RealTimeEvent", data=b"{bad", headers=json_headers),
    ]
    codes = [a.status_code for a in answers]
    assert codes[:4] == [200, 200, 200, 200]
    assert codes[4:9] == [400, 400, 400, 413, 413]
    assert codes[13] == 401
    # A malformed request line with the secret in it.
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=5) as raw:
        raw.sendall(f"POST /{SECRET}/RealTimeEvent HTTP/9.9\r\nX: \x01\r\n\r\n".encode())
        raw.recv(4096)
    recorded = wait_for(
        lambda: len(read_lines(tmp_path / "rec.jsonl")) >= 4 and read_lines(tmp_path / "rec.jsonl"),
        10,
        what="the accepted events",
    )
    assert {r["identity_id"] for r in recorded} == {"q", "p", "h", "b"}
    assert bridge.health()["spool_last_seq"] == 4
    logs = bridge.logs()
    assert "rejected POST" in logs, "the refusals were logged"
    assert SECRET not in logs
    assert SECRET[:-1] not in logs


def test_forwarded_for_counts_only_behind_a_trusted_proxy(bridge_factory, tmp_path):
    proxied = bridge_factory(
        config(
            tmp_path,
            http={"allowed_sources": ["10.9.9.0/24"], "trusted_proxies": ["127.0.0.1/32"]},
        ),
        plugins=RECORDER,
    )
    via_proxy = proxied.post(payload=payload("x1"), headers={"X-Forwarded-For": "10.9.9.9"})
    assert via_proxy.status_code == 200
    # The client wrote the first entry itself; the proxy appended the real peer.
    spoofed = proxied.post(
        payload=payload("x2"), headers={"X-Forwarded-For": "10.9.9.9, 192.0.2.7"}
    )
    assert spoofed.status_code == 403
    no_header = proxied.post(payload=payload("x3"))
    assert no_header.status_code == 403, "the proxy itself is not an allowed source"
    garbage = proxied.post(payload=payload("x4"), headers={"X-Forwarded-For": "not-an-ip"})
    assert garbage.status_code == 403
    assert proxied.health()["spool_last_seq"] == 1


def test_field_lengths_are_bounded(bridge_factory, tmp_path):
    bridge = bridge_factory(config(tmp_path), plugins=RECORDER)
    ok = payload("len-ok")
    ok["identity_name"] = "名" * 256
    assert bridge.post(payload=ok).status_code == 200
    for field, length in (("identity_name", 257), ("identity_id", 10_000), ("group_name", 300)):
        bad = payload("len-bad")
        bad[field] = "x" * length
        answer = bridge.post(payload=bad)
        assert answer.status_code == 400 and f"{field}: longer than" in answer.json()["message"]
    assert bridge.health()["spool_last_seq"] == 1


def test_silent_and_dribbling_clients_are_cut_off_and_block_nobody(bridge_factory, tmp_path):
    bridge = bridge_factory(
        config(tmp_path, http={"client_timeout_s": 2, "threads": 2}), plugins=RECORDER
    )
    head = b"POST /RealTimeEvent HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    silent = [
        raw_connection(bridge.port, head + b"Content-Length: 5000\r\n\r\n{") for _ in range(6)
    ]
    headers_only = [raw_connection(bridge.port, head) for _ in range(2)]
    stop = threading.Event()
    dribbler = raw_connection(bridge.port, head + b"Content-Length: 100000\r\n\r\n")

    def dribble() -> None:
        while not stop.wait(0.5):
            try:
                dribbler.sendall(b" ")
            except OSError:
                return

    threading.Thread(target=dribble, daemon=True).start()
    # More stalled clients than worker threads: the box's events are still answered,
    # because waitress hands a request to a thread only once its body is complete.
    session = requests.Session()
    for n in range(10):
        answer = session.post(bridge.url + "/RealTimeEvent", json=payload(f"live{n}"), timeout=3)
        assert answer.status_code == 200
    for sock in silent + headers_only:
        wait_for(lambda s=sock: closed_by_server(s), 6, what="a silent client cut off")
        sock.close()
    # A dribbler keeps its connection (waitress's timeout is for idleness) but no thread.
    assert session.post(bridge.url + "/RealTimeEvent", json=payload("late"), timeout=3).ok
    stop.set()
    dribbler.close()
    assert bridge.health()["spool_last_seq"] == 11


def test_connection_limit_holds_new_clients_until_stalled_ones_time_out(bridge_factory, tmp_path):
    bridge = bridge_factory(
        config(tmp_path, http={"client_timeout_s": 2, "max_in_flight": 4}), plugins=RECORDER
    )
    stalled = [
        raw_connection(bridge.port, b"POST /RealTimeEvent HTTP/1.1\r\nHost: x\r\n")
        for _ in range(4)
    ]
    # The fifth connection waits in the listen backlog, then is served once the
    # stalled ones are closed for idleness: the limit bounds memory, not availability.
    answer = requests.post(bridge.url + "/RealTimeEvent", json=payload("fifth"), timeout=15)
    assert answer.status_code == 200
    assert all(closed_by_server(s) for s in stalled)
    for sock in stalled:
        sock.close()


def test_snapshot_and_status_pages_are_read_only_and_stay_in_their_folder(bridge_factory, tmp_path):
    snaps = tmp_path / "snaps"
    bridge = bridge_factory(
        config(tmp_path, snapshots={"path": str(snaps)}, status={}), plugins=RECORDER
    )
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8\xff outside")
    assert bridge.post(payload=payload("photo")).status_code == 200
    saved = wait_for(
        lambda: sorted(p for p in snaps.rglob("*.jpg") if not p.name.startswith(".")),
        10,
        what="a saved photo",
    )
    relative = saved[0].relative_to(snaps).as_posix()
    assert requests.get(f"{bridge.url}/snapshots/{relative}", timeout=5).status_code == 200
    attempts = [
        "../secret.jpg",
        "..%2fsecret.jpg",
        "%2e%2e/secret.jpg",
        "%2e%2e%2fsecret.jpg",
        "....//secret.jpg",
        f"{relative}/../../../secret.jpg",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "..\\secret.jpg",
        "x%00.jpg",
        "../bridge0/config.yaml",
        "../bridge0/data/devices.json",
    ]
    for attempt in attempts:
        answer = requests.get(f"{bridge.url}/snapshots/{attempt}", timeout=5)
        assert answer.status_code in (400, 404), (attempt, answer.status_code)
        assert b"outside" not in answer.content and b"root:" not in answer.content
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in (f"/snapshots/{relative}", "/", "/status.json", "/healthz", "/metrics"):
            answer = requests.request(method, bridge.url + path, data=b"x", timeout=5)
            assert answer.status_code == 405, (method, path, answer.status_code)
    assert saved[0].exists() and bridge.health()["spool_last_seq"] == 1
