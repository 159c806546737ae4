"""Fault injection on real processes: kill -9, a broker outage, a full disk, dead
dependencies, SIGTERM. What was acknowledged must never be lost or acted on twice."""

from __future__ import annotations

import json
import resource
import signal
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from sophonfog_bridge.samples import event_payload, jpeg

from .conftest import free_port, port_open, wait_for
from .hostile_support import RECORDER, config
from .mqtt_tap import Tap
from .recorder import read_lines

BASE = "sfbfaults"
SCENE = jpeg(96, 72, seed=21)
FACE = jpeg(32, 32, seed=22)
DOOR_DEVICE = "192.168.1.101"


def event(identity: str, device_ip: str = DOOR_DEVICE) -> dict:
    payload = event_payload("v2r2", identity_id=identity, scene=SCENE, registered=FACE, face=FACE)
    payload["ext_data"]["device_ip"] = device_ip
    return payload


class Relay:
    """A door relay on loopback that counts the pulses it is asked for."""

    def __init__(self, port: int = 0):
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "14")
                self.end_headers()
                self.wfile.write(b'{"ison": true}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def door(relay_port: int) -> dict:
    return {
        "enabled": True,
        "doors": [
            {
                "name": "lobby",
                "devices": [DOOR_DEVICE],
                "cooldown_s": 0,
                "pulse_s": 0.2,
                "backend": {
                    "type": "http",
                    "url": f"http://127.0.0.1:{relay_port}/relay/0?turn=on",
                    "timeout_s": 1,
                },
            }
        ],
    }


def mqtt(broker, **extra) -> dict:
    return {
        "host": "127.0.0.1",
        "port": broker.port,
        "base_topic": BASE,
        "discovery": False,
        "retry_s": 0.2,
        **extra,
    }


def published_events(tap: Tap) -> list[dict]:
    return [
        json.loads(m.payload)
        for m in tap.matching(lambda m: m.topic.startswith(BASE) and m.topic.endswith("/event"))
    ]


def decisions(tap: Tap) -> list[dict]:
    """Door decisions published, each once: MQTT delivery is at-least-once, so the decision
    in flight at a kill may be published again, byte for byte (consumers dedupe)."""
    payloads = tap.matching(lambda m: m.topic.startswith(BASE) and m.topic.endswith("/access"))
    return [json.loads(p) for p in dict.fromkeys(m.payload for m in payloads)]


class Poster(threading.Thread):
    """Posts events back to back and remembers which ones the bridge acknowledged."""

    def __init__(self, url: str, prefix: str, devices: tuple[str, ...] = (DOOR_DEVICE,)):
        super().__init__(daemon=True)
        self.url, self.prefix, self.devices = url, prefix, devices
        self.acked: list[tuple[str, str, str]] = []  # (event_id, identity, device)
        self.failures = 0
        self.stop_event = threading.Event()
        self.n = 0

    def run(self) -> None:
        session = requests.Session()
        while not self.stop_event.is_set():
            device = self.devices[self.n % len(self.devices)]
            identity = f"{self.prefix}-{self.n}"
            self.n += 1
            try:
                answer = session.post(self.url, json=event(identity, device), timeout=5)
            except requests.RequestException:
                self.failures += 1
                session = requests.Session()
                time.sleep(0.02)
                continue
            if answer.status_code == 200:
                self.acked.append((answer.json()["event_id"], identity, device))

    def finish(self) -> None:
        self.stop_event.set()
        self.join(10)


def test_kill_9_under_load_loses_nothing_acknowledged_and_opens_no_door_twice(
    bridge_factory, mosquitto, tmp_path
):
    relay = Relay()
    tap = Tap("127.0.0.1", mosquitto.port, (f"{BASE}/#",))
    cfg = config(tmp_path, mqtt=mqtt(mosquitto), door_relay=door(relay.port))
    bridge = bridge_factory(cfg, plugins=RECORDER)
    poster = Poster(bridge.url + "/RealTimeEvent", "k")
    poster.start()
    wait_for(lambda: len(poster.acked) >= 40, 20, what="events acknowledged before the kill")
    bridge.kill()
    poster.finish()
    acked = {event_id for event_id, _, _ in poster.acked}

    again = bridge_factory(cfg, plugins=RECORDER, workdir=bridge.workdir)
    wait_for(
        lambda: acked <= {e["event_id"] for e in published_events(tap)},
        30,
        what="every acknowledged event on MQTT",
    )
    wait_for(again.drained, 30, what="the restarted bridge drained")
    # No door opened twice: one pulse per open decision, at most one open per event.
    opens = [d for d in decisions(tap) if d["decision"] == "open"]
    per_event = Counter(d["event_id"] for d in opens)
    assert per_event and max(per_event.values()) == 1, per_event.most_common(3)
    wait_for(lambda: len(relay.hits) >= len(opens), 10, what="relay pulses")
    # The one pulse in flight at the kill may have reached the relay before its decision
    # was spooled; the replay after the restart is not live and pulses nothing.
    assert len(relay.hits) - len(opens) in (0, 1)
    # At-least-once for the recorder: only the record in flight at the kill may come again,
    # and never as live.
    lines = [r for r in read_lines(tmp_path / "rec.jsonl") if r["record"] == "event"]
    seen = Counter(r["event_id"] for r in lines)
    assert acked <= set(seen)
    repeats = [r for r in lines if seen[r["event_id"]] > 1]
    assert len({r["event_id"] for r in repeats}) <= 1
    first_tries = [r for r in repeats if r["delivery"]["attempt"] == 1]
    assert sum(r["delivery"]["accepted_this_run"] for r in first_tries) <= 1
    assert again.stop() == 0
    relay.close()
    tap.close()


def test_broker_outage_under_load_loses_nothing_and_keeps_order_per_device(
    bridge_factory, mosquitto, tmp_path
):
    devices = ("10.0.0.1", "10.0.0.2")
    cfg = config(tmp_path, mqtt=mqtt(mosquitto, reconnect_min_s=1, reconnect_max_s=2))
    bridge = bridge_factory(cfg, plugins=RECORDER)
    wait_for(lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 10, what="mqtt up")
    tap = Tap("127.0.0.1", mosquitto.port, (f"{BASE}/#",))
    poster = Poster(bridge.url + "/RealTimeEvent", "b", devices)
    poster.start()
    wait_for(lambda: len(poster.acked) >= 20, 20, what="events before the outage")
    mosquitto.stop()
    tap.close()
    wait_for(lambda: len(poster.acked) >= 120, 30, what="events during the outage")
    wait_for(lambda: bridge.health()["plugins"]["mqtt"]["backlog"] > 50, 10, what="an mqtt backlog")
    mosquitto.start()  # same port
    tap = Tap("127.0.0.1", mosquitto.port, (f"{BASE}/#",))
    wait_for(lambda: len(poster.acked) >= 160, 30, what="events after the outage")
    poster.finish()
    assert poster.failures == 0, "the receiver must keep answering while the broker is down"
    wait_for(lambda: bridge.health()["plugins"]["mqtt"]["backlog"] == 0, 60, what="mqtt caught up")
    # Everything acknowledged after the tap re-subscribed is there, in order per device.
    got = [e["identity_id"] for e in published_events(tap)]
    first = poster.acked.index(next(a for a in poster.acked if a[1] in got))
    expected = [identity for _, identity, _ in poster.acked[first:]]
    assert set(expected) <= set(got), "events lost across the outage"
    for device in devices:
        sent = [i for _, i, d in poster.acked[first:] if d == device]
        received = [e["identity_id"] for e in published_events(tap) if e["device"] == device]
        received = [i for i in dict.fromkeys(received) if i in set(sent)]
        assert received == sent, f"order broken for {device}"
    tap.close()


def test_spool_write_failure_answers_503_and_recovers_by_itself(bridge_factory, tmp_path):
    """The spool's file size limit (RLIMIT_FSIZE) makes its writes fail like a full disk:
    a short write, then an error. Works unprivileged, in CI containers too."""
    bridge = bridge_factory(config(tmp_path), plugins=RECORDER)
    assert bridge.post(payload=event("before")).status_code == 200
    segments = sorted((Path(bridge.config["spool"]["path"]) / "segments").glob("*.seg"))
    size = segments[-1].stat().st_size
    soft, hard = resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE, (size + 2000, hard))
    try:
        for n in range(3):
            full = bridge.post(payload=event(f"full{n}"))
            assert full.status_code == 503, full.text
            assert full.json()["status"] == 503 and "spool" in full.json()["message"]
        assert bridge.health()["spool_last_seq"] == 1
        assert segments[-1].stat().st_size == size, "a partial record was left behind"
    finally:
        resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
    # Space is back: the box's retry is accepted, no restart needed.
    retry = bridge.post(payload=event("full0"))
    assert retry.status_code == 200 and not retry.json().get("duplicate")
    wait_for(bridge.drained, 10, what="delivery after recovery")
    ids = [r["identity_id"] for r in read_lines(tmp_path / "rec.jsonl")]
    assert ids == ["before", "full0"]
    # The log on disk is intact: a restart reads both records back.
    bridge.kill()
    again = bridge_factory(config(tmp_path), plugins=RECORDER, workdir=bridge.workdir)
    assert again.health()["spool_last_seq"] == 2


def test_dead_dependencies_cost_only_their_own_plugin(bridge_factory, mosquitto, tmp_path):
    snaps = tmp_path / "snaps"
    dead_syslog, dead_relay = free_port(), free_port()
    cfg = config(
        tmp_path,
        mqtt=mqtt(mosquitto),
        snapshots={"path": str(snaps)},
        syslog={"address": f"tcp://127.0.0.1:{dead_syslog}"},
        door_relay=door(dead_relay),
    )
    bridge = bridge_factory(cfg, plugins=RECORDER)
    wait_for(lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 10, what="mqtt up")
    tap = Tap("127.0.0.1", mosquitto.port, (f"{BASE}/#",))
    assert bridge.post(payload=event("ok-0")).status_code == 200
    wait_for(lambda: list(snaps.rglob("*.jpg")), 10, what="a photo while the folder is fine")
    # The snapshot folder becomes unwritable (a file where the folder was: root ignores
    # permissions, but not this).
    snaps.rename(tmp_path / "snaps-moved")
    snaps.write_text("not a folder")
    sent = [f"dead-{n}" for n in range(10)]
    ids = []
    for identity in sent:
        answer = bridge.post(payload=event(identity))
        assert answer.status_code == 200
        ids.append(answer.json()["event_id"])
    wait_for(
        lambda: set(sent) <= {e["identity_id"] for e in published_events(tap)},
        15,
        what="mqtt delivers every event",
    )
    wait_for(
        lambda: set(sent) <= {r.get("identity_id") for r in read_lines(tmp_path / "rec.jsonl")},
        10,
        what="the recorder gets every event",
    )
    wait_for(
        lambda: len([d for d in decisions(tap) if d["decision"] == "error"]) >= 1,
        20,
        what="the dead relay reported as an error decision",
    )
    health = bridge.health()["plugins"]
    assert health["syslog"]["backlog"] > 0 or health["syslog"]["state"] != "ok"
    # The syslog daemon comes back: its backlog drains, nothing lost.
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", dead_syslog))

    def serve() -> None:
        listener.settimeout(20)
        conn, _ = listener.accept()
        conn.settimeout(20)
        while chunk := conn.recv(65536):
            received.append(chunk)

    threading.Thread(target=serve, daemon=True).start()
    wait_for(
        lambda: all(i.encode() in b"".join(received) for i in sent),
        40,
        what="syslog catches up after its daemon returns",
    )
    # The snapshot folder comes back: the plugin saves photos again, no restart needed.
    # First the plugin must have met the broken folder (given up, or waiting to retry).
    wait_for(
        lambda: (lambda s: s["failed"] > 0 or s["state"] == "retrying")(
            bridge.health()["plugins"]["snapshots"]
        ),
        20,
        what="snapshots met the broken folder",
    )
    saved = bridge.health()["plugins"]["snapshots"]["events"]
    snaps.unlink()
    (tmp_path / "snaps-moved").rename(snaps)
    assert bridge.post(payload=event("back-0")).status_code == 200
    wait_for(
        lambda: bridge.health()["plugins"]["snapshots"]["events"] > saved,
        20,
        what="snapshots saving again once its folder is back",
    )
    wait_for(
        lambda: bridge.health()["plugins"]["snapshots"]["backlog"] == 0,
        20,
        what="snapshots caught up",
    )
    assert bridge.health()["plugins"]["snapshots"]["state"] == "ok"
    # Acknowledged events reach every plugin: the photos of the events posted while the
    # folder was gone are saved once it is back, not given up on.
    missing = [i for i in ids if not list(snaps.rglob(f"*_{i[:8]}.jpg"))]
    assert not missing, f"{len(missing)} of {len(ids)} photos never saved"
    assert bridge.proc.poll() is None
    tap.close()
    listener.close()


def test_sigterm_under_load_spools_in_flight_work_publishes_offline_and_exits_0(
    bridge_factory, mosquitto, tmp_path
):
    cfg = config(tmp_path, mqtt=mqtt(mosquitto))
    cfg["plugins"]["recorder"]["slow_s"] = 0.2  # a backlog exists when the signal comes
    bridge = bridge_factory(cfg, plugins=RECORDER)
    wait_for(lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 10, what="mqtt up")
    tap = Tap("127.0.0.1", mosquitto.port, (f"{BASE}/#",))
    wait_for(lambda: tap.on(f"{BASE}/status"), 5, what="online status")
    poster = Poster(bridge.url + "/RealTimeEvent", "t")
    poster.start()
    wait_for(lambda: len(poster.acked) >= 30, 20, what="events before SIGTERM")
    signalled = time.monotonic()
    bridge.proc.send_signal(signal.SIGTERM)
    code = bridge.proc.wait(10)
    took = time.monotonic() - signalled
    poster.finish()
    assert code == 0
    assert took < 8, f"took {took:.1f} s to stop"
    assert not port_open(bridge.port), "still accepting after SIGTERM"
    assert tap.on(f"{BASE}/status")[-1].payload == b"offline"
    acked = {identity for _, identity, _ in poster.acked}
    # Whatever the recorder had not finished stays spooled and comes after a restart.
    bridge._log.close()
    del cfg["plugins"]["recorder"]["slow_s"]
    again = bridge_factory(cfg, plugins=RECORDER, workdir=bridge.workdir)
    wait_for(
        lambda: acked <= {r.get("identity_id") for r in read_lines(tmp_path / "rec.jsonl")},
        30,
        what="every acknowledged event delivered after the restart",
    )
    assert again.stop() == 0
    tap.close()
