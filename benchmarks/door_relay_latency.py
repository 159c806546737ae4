"""POST to relay request: how long a person waits at the gate, under background load.

Starts a real bridge process with door_relay pointing at a real local HTTP relay (Shelly
Gen1 preset), posts employee events at the gate while other threads post events from an
unmapped camera with full-size images, and reports the time from the start of each gate
POST to the relay receiving its request.

    python benchmarks/door_relay_latency.py [--events 200] [--load-threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sophonfog_bridge import samples  # noqa: E402
from tests.conftest import free_port, port_open, wait_for  # noqa: E402
from tests.door_relay_helpers import RelayServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--load-threads", type=int, default=2)
    parser.add_argument("--scene-width", type=int, default=640)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()

    relay = RelayServer()
    work = Path(tempfile.mkdtemp(prefix="door-bench-"))
    port = free_port()
    config = {
        "log_level": args.log_level,
        "http": {"host": "127.0.0.1", "port": port},
        "spool": {"path": str(work / "data")},
        "plugins": {
            "door_relay": {
                "enabled": True,
                "doors": [
                    {
                        "name": "front_gate",
                        "devices": ["192.168.1.101"],
                        "cooldown_s": 0,
                        "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host},
                    }
                ],
            },
        },
    }
    (work / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    log = open(work / "bridge.log", "wb")  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sophonfog_bridge", "run", "-c", str(work / "config.yaml")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: port_open(port), 15, what="the bridge")
    scene, face = (
        samples.jpeg(args.scene_width, args.scene_width * 3 // 4, seed=5),
        samples.jpeg(112, 112, seed=6),
    )
    stop = threading.Event()
    load_count = [0]

    def background() -> None:
        session = requests.Session()
        while not stop.is_set():
            body = samples.event_payload(
                ep_id="AKOPKKKKK__192.168.1.200",
                identity_id=uuid.uuid4().hex[:8],
                scene=scene,
                registered=face,
                face=face,
            )
            session.post(url + "/RealTimeEvent", json=body, timeout=5)
            load_count[0] += 1

    loaders = [threading.Thread(target=background, daemon=True) for _ in range(args.load_threads)]
    for thread in loaders:
        thread.start()
    session = requests.Session()
    latencies: list[float] = []
    try:
        for i in range(args.events):
            body = samples.event_payload(
                identity_id=f"emp-{i}", scene=scene, registered=face, face=face
            )
            before = len(relay.seen())
            started = time.perf_counter()
            session.post(url + "/RealTimeEvent", json=body, timeout=5)
            wait_for(lambda b=before: len(relay.seen()) > b, 5, 0.001, "the relay request")
            latencies.append((relay.seen()[-1].at - started) * 1000)
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in loaders:
            thread.join(5)
        proc.terminate()
        proc.wait(15)
        relay.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"door_relay POST->relay over {len(latencies)} openings with {load_count[0]} background "
        f"events: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )
    return 0 if p99 < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
