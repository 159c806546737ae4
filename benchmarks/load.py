"""Load generators: wrk with a unique body per request, and a paced Python client."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sophonfog_bridge.samples import event_payload, jpeg_of_size

MARK = "@@ID@@"
WRK_SCRIPT = """
local path = "{path}"
local function slurp(name)
  local f = assert(io.open(name, "rb")); local data = f:read("*a"); f:close(); return data
end
local head, tail = slurp("{head}"), slurp("{tail}")
-- thread_id must stay a global: thread:set() writes globals, a local would shadow it
-- and every thread would send the same identities (answered as duplicates).
thread_id = 0
local counter = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end
request = function()
  counter = counter + 1
  -- a new identity per request: the bridge would answer a repeat as a duplicate
  local body = head .. "w" .. thread_id .. "-" .. counter .. tail
  return wrk.format("POST", path, {{["Content-Type"] = "application/json"}}, body)
end
"""


@dataclass(frozen=True)
class Workload:
    name: str
    scene_bytes: int


WORKLOADS = (Workload("scene 50 KB", 50_000), Workload("scene 300 KB", 300_000))


class Bodies:
    """One realistic event as JSON bytes, split around its identity_id."""

    def __init__(self, scene_bytes: int, seed: int = 1, scene: bytes | None = None):
        payload = event_payload(
            "v2r2",
            identity_id=MARK,
            scene=scene if scene is not None else jpeg_of_size(scene_bytes, seed=seed),
            registered=jpeg_of_size(12_000, seed=seed + 1),
            face=jpeg_of_size(6_000, seed=seed + 2),
        )
        # A fixed, current box clock: the door rules refuse events older than max_age_s.
        self.payload = payload
        text = json.dumps(payload, ensure_ascii=False).encode()
        self.head, _, self.tail = text.partition(MARK.encode())
        self.size = len(text)

    def body(self, identity: str, timestamp_ms: int | None = None) -> bytes:
        body = self.head + identity.encode() + self.tail
        if timestamp_ms is not None:
            old = str(self.payload["timestamp"]).encode()
            body = body.replace(
                b'"timestamp": ' + old, b'"timestamp": ' + str(timestamp_ms).encode()
            )
        return body

    def wrk_files(self, folder: Path, tag: str, path: str = "/RealTimeEvent") -> Path:
        # Fresh timestamps for the door rules' max_age_s.
        fresh = self.body(MARK, int(time.time() * 1000))
        head, _, tail = fresh.partition(MARK.encode())
        (folder / f"{tag}.head").write_bytes(head)
        (folder / f"{tag}.tail").write_bytes(tail)
        script = folder / f"{tag}.lua"
        script.write_text(
            WRK_SCRIPT.format(path=path, head=folder / f"{tag}.head", tail=folder / f"{tag}.tail")
        )
        return script


@dataclass
class WrkResult:
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)([a-z]*)", text)
    if match is None:
        raise ValueError(f"wrk latency {text!r}")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, script: Path, seconds: float, connections: int, threads: int = 2) -> WrkResult:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url + "/RealTimeEvent",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    if not re.search(r"^\s*50%\s+(\S+)", out, re.M):
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return WrkResult(requests, rate, p50, p99, errors)


@dataclass
class Sent:
    identity: str
    started: float
    acked: float
    status: int
    event_id: str | None


def steady(url: str, bodies: Bodies, rate: float, seconds: float, tag: str) -> list[Sent]:
    """One connection, one event every 1/rate s, as a box does; every ack timed."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    sent: list[Sent] = []
    count = int(rate * seconds)
    start = time.monotonic()
    for n in range(count):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        identity = f"{tag}-{n}"
        body = bodies.body(identity, int(time.time() * 1000))
        began = time.monotonic()
        conn.request("POST", "/RealTimeEvent", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = answer.read()
        acked = time.monotonic()
        event_id = json.loads(data).get("event_id") if answer.status == 200 else None
        sent.append(Sent(identity, began, acked, answer.status, event_id))
    conn.close()
    return sent


def burst(url: str, bodies: Bodies, count: int, tag: str, clients: int = 4) -> int:
    """Post `count` events as fast as `clients` connections allow; the number acked 200."""
    host, port = url.split("//")[1].split(":")
    acked = [0] * clients

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for n in range(index, count, clients):
            conn.request(
                "POST",
                "/RealTimeEvent",
                bodies.body(f"{tag}-{n}", int(time.time() * 1000)),
                {"Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            answer.read()
            acked[index] += answer.status == 200
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(acked)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]
