"""Websocket event vs HTTP event: time to the relay request, and the bridge's CPU per event.

Starts a real bridge process with one emulated V6 box (websocket) and door_relay on that
box's gate (a real local HTTP relay, Shelly Gen1 preset). The same V6 record, with its
photos, reaches the bridge once over the box's websocket and once as an HTTP POST; each
route is measured in the same run, and the ratios are printed.

    python benchmarks/box_ws.py [--events 200]      (--events 10 for a quick look)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import parts  # noqa: E402
from sophonfog_bridge.emulator import EmulatedBox  # noqa: E402
from sophonfog_bridge.emulator.records import live_v6  # noqa: E402
from tests.conftest import free_port, wait_for  # noqa: E402
from tests.door_relay_helpers import RelayServer  # noqa: E402


def start_bridge(work: Path, box: EmulatedBox, relay: RelayServer) -> tuple[subprocess.Popen, str]:
    port = free_port()
    gate = box.devices[0].id
    config = {
        "log_level": "WARNING",
        "http": {"host": "127.0.0.1", "port": port},
        "spool": {"path": str(work / "data")},
        "boxes": [
            {
                "host": box.host,
                "name": "bench",
                "firmware": "v6",
                "api_port": box.api_port,
                "ws_port": box.ws_port,
            }
        ],
        "plugins": {
            "mqtt": {"enabled": False},
            "door_relay": {
                "enabled": True,
                "doors": [
                    {
                        "name": "gate",
                        "devices": [gate],
                        "device_types": ["gate", "access_control", "unknown"],
                        "cooldown_s": 0,
                        "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host},
                    }
                ],
            },
        },
    }
    (work / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    log = open(work / "bridge.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "sophonfog_bridge", "run", "-c", str(work / "config.yaml")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=0.5).json()["boxes"]["bench"]["connected"]
        except (requests.RequestException, KeyError, ValueError):
            return False

    wait_for(up, 20, what="the bridge connected to the box")
    return proc, url


def measure(
    n: int, send: Callable[[int], None], relay: RelayServer, pid: int
) -> tuple[list[float], float]:
    """Latencies (ms, send start -> relay request) and CPU seconds of the bridge per event."""
    latencies = []
    cpu_before = parts.cpu_s(pid)
    for i in range(n):
        before = len(relay.seen())
        started = time.perf_counter()
        send(i)
        wait_for(lambda b=before: len(relay.seen()) > b, 5, 0.0005, "the relay request")
        latencies.append((relay.seen()[-1].at - started) * 1000)
        time.sleep(0.02)
    time.sleep(0.3)  # let the other plugins finish this phase's records
    return latencies, (parts.cpu_s(pid) - cpu_before) / n


def now_ms() -> int:
    return int(time.time() * 1000)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    relay = RelayServer()
    box = EmulatedBox(firmware="v6", devices=[{"type": "photo"}]).start()
    work = Path(tempfile.mkdtemp(prefix="box-ws-bench-"))
    proc, url = start_bridge(work, box, relay)
    session = requests.Session()
    sent = iter(range(10**9))

    template = live_v6(box.emit("employee"), True, True)

    def record() -> dict:
        # The very record the box pushes, photos and all; a new person and time each.
        n = next(sent)
        return {**template, "identity_id": f"p-{n}", "event_id": f"e{n}", "timestamp": now_ms()}

    def by_websocket(i: int) -> None:
        box.send_raw(json.dumps(record(), ensure_ascii=False))

    def by_http(i: int) -> None:
        session.post(
            url + "/RealTimeEvent",
            data=json.dumps(record(), ensure_ascii=False),
            headers={"Content-Type": "application/json"},
            timeout=5,
        )

    try:
        for warm in (by_websocket, by_http):
            measure(5, warm, relay, proc.pid)
        ws_lat, ws_cpu = measure(args.events, by_websocket, relay, proc.pid)
        http_lat, http_cpu = measure(args.events, by_http, relay, proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)
        box.stop()
        relay.close()
    for name, lat, cpu in (("websocket", ws_lat, ws_cpu), ("http", http_lat, http_cpu)):
        print(
            f"{name:9} event -> relay over {len(lat)} openings: p50 "
            f"{statistics.median(lat):.1f} ms, p99 {p99(lat):.1f} ms, max {max(lat):.1f} ms; "
            f"bridge CPU {cpu * 1000:.2f} ms/event"
        )
    print(
        f"ratios websocket/http: p99 {p99(ws_lat) / p99(http_lat):.2f}, "
        f"CPU per event {ws_cpu / http_cpu:.2f}"
    )
    return 0 if p99(ws_lat) < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
