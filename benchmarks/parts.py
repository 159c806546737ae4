"""Real local parts the benchmark runs against: processes, a broker, a relay, a syslog sink."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    out.pop("SOPHONFOG_BRIDGE_PLUGINS", None)
    return out


class Process:
    """A child process we started, with its log in the work folder."""

    def __init__(self, name: str, args: list[str], workdir: Path, port: int):
        self.name, self.port = name, port
        self.log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, cwd=workdir, env=env(), stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_listening(self, timeout: float = 20) -> Process:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}")
            return listening(self.port)

        wait_until(up, timeout, f"{self.name} on {self.port}")
        return self

    def rss_kb(self) -> tuple[int, int]:
        """(current RSS, peak RSS) in KiB, summed over the process and its children (the
        bridge's plugin process): shared pages count twice, so this errs on the high side."""
        rss = peak = 0
        for pid in tree(self.proc.pid):
            fields = {}
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # it ended meanwhile
            for line in text.splitlines():
                key, _, value = line.partition(":")
                fields[key] = value.strip()
            rss += int(fields["VmRSS"].split()[0])
            peak += int(fields["VmHWM"].split()[0])
        return rss, peak

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and every process under it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(c) for c in children)
    return found


def file_creation_us(folder: Path, count: int = 300) -> float:
    """CPU µs to create one small file in a fresh folder under `folder`.

    Snapshots creates one file a photo, and what that costs depends on the disk far more
    than on the bridge: on the machine the figures in docs/ come from, anything from
    35 µs to over a millisecond of system time, from one folder and one hour to the next
    (an ext4 on a shared virtual disk; 20 µs on tmpfs). A report says what it was where
    it ran; `TMPDIR` moves the benchmark's work folder.
    """
    trial = Path(tempfile.mkdtemp(prefix="sfb-create-", dir=folder)) / "day" / "device"
    trial.mkdir(parents=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    started = time.process_time()
    for n in range(count):
        os.close(os.open(trial / f"{n}.jpg", flags, 0o644))
    spent = time.process_time() - started
    shutil.rmtree(trial.parent.parent, ignore_errors=True)
    return spent * 1e6 / count


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (the bridge's work
    is in two processes when plugins run in their own)."""
    total = 0
    for member in tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total * TICK_S


def machine_s() -> dict[str, float]:
    """The whole machine's CPU seconds so far, every core summed (/proc/stat): `busy`,
    `steal` (what the hypervisor gave others: a shared VM's cores are not all ours) and
    `all`. With the load generator and the broker on the same cores, whether a phase was
    bound by CPU at all."""
    with open("/proc/stat") as stat:
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return {"busy": busy * TICK_S, "steal": ticks[7] * TICK_S, "all": sum(ticks) * TICK_S}


def target(kind: str, workdir: Path, threads: int) -> Process:
    port = free_port()
    args = [sys.executable, "-m", "benchmarks.targets", kind, str(port), str(threads)]
    if kind == "logged":
        args.append(str(workdir / "bodies.log"))
    return Process(kind, args, workdir, port).wait_listening()


class Broker:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\n"
        )
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: listening(self.port), 10, "mosquitto")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_until(lambda: not listening(self.port), 5, "mosquitto to stop")


class Relay:
    """A door relay on loopback: answers like a Shelly and notes when each request came."""

    def __init__(self):
        self.arrivals: list[float] = []
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                arrivals.append(time.monotonic())
                body = b'{"ison": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SyslogSink:
    """A UDP syslog listener that counts what it gets."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(65535)
                self.count += 1
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class Tap:
    """An MQTT subscriber noting when each event id arrived on `<base>/+/event`."""

    def __init__(self, port: int, base: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.arrivals: dict[str, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-tap-{port}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{base}/+/event", 1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(subscribed.is_set, 10, "tap subscription")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            event_id = json.loads(msg.payload)["event_id"]
        except (ValueError, KeyError, TypeError):
            return
        self.arrivals.setdefault(event_id, time.monotonic())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Bridge(Process):
    def __init__(self, workdir: Path, config: dict[str, Any], plugins: dict[str, str]):
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config.setdefault("http", {}).update(host="127.0.0.1", port=port)
        config.setdefault("spool", {}).setdefault("path", str(workdir / "spool"))
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        args = [sys.executable, "-m", "sophonfog_bridge", "run", "--config", "config.yaml"]
        for name, spec in plugins.items():
            args += ["--plugin", f"{name}={spec}"]
        super().__init__("bridge", args, workdir, port)
        self.url = f"http://127.0.0.1:{port}"
        self.wait_listening()

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/healthz", timeout=10) as answer:
            return json.loads(answer.read())

    def backlog(self) -> int:
        plugins = self.health()["plugins"].values()
        return sum(p.get("backlog", 0) for p in plugins if p.get("enabled"))
