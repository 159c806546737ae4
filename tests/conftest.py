"""Real parts for the tests: a bridge process on a free port, a Mosquitto broker, polling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll until `predicate()` is truthy; fail the test with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class BridgeProcess:
    """`sophonfog-bridge run` in a subprocess with a config written for the test."""

    def __init__(self, workdir: Path, config: dict[str, Any], plugins: dict[str, str]):
        self.workdir = workdir
        self.config = config
        self.plugins = plugins
        self.port = config.setdefault("http", {}).setdefault("port", free_port())
        config["http"].setdefault("host", "127.0.0.1")
        config.setdefault("spool", {}).setdefault("path", str(workdir / "data"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "bridge.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> BridgeProcess:
        self.config_path.write_text(yaml.safe_dump(self.config, allow_unicode=True))
        args = [
            sys.executable,
            "-m",
            "sophonfog_bridge",
            "--log-level",
            "DEBUG",
            "run",
            "--config",
            str(self.config_path),
        ]
        for name, spec in self.plugins.items():
            args += ["--plugin", f"{name}={spec}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("SOPHONFOG_BRIDGE_PLUGINS", None)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        if wait:
            wait_for(self._ready, 15, what=f"bridge on {self.port}\n{self.logs()[-3000:]}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"bridge exited {self.proc.returncode}:\n{self.logs()[-3000:]}")
        try:
            return requests.get(self.url + "/healthz", timeout=0.5).ok
        except requests.RequestException:
            return False

    def post(
        self, path: str = "/RealTimeEvent", payload: Any = None, **kwargs
    ) -> requests.Response:
        if payload is not None:
            kwargs["json"] = payload
        return requests.post(self.url + path, timeout=5, **kwargs)

    def health(self) -> dict[str, Any]:
        return requests.get(self.url + "/healthz", timeout=5).json()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def drained(self) -> bool:
        health = self.health()
        return all(p.get("backlog", 0) == 0 for p in health["plugins"].values())

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("bridge did not stop on SIGTERM") from None
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def bridge_factory(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    """Start real bridge processes: `bridge_factory(config, plugins={name: "mod:attr"})`."""
    started: list[BridgeProcess] = []

    def start(
        config: dict[str, Any] | None = None,
        plugins: dict[str, str] | None = None,
        workdir: Path | None = None,
        wait: bool = True,
    ) -> BridgeProcess:
        work = workdir or tmp_path / f"bridge{len(started)}"
        work.mkdir(parents=True, exist_ok=True)
        bridge = BridgeProcess(work, json.loads(json.dumps(config or {})), plugins or {})
        started.append(bridge)
        return bridge.start(wait=wait)

    yield start
    for bridge in started:
        if bridge.proc and bridge.proc.poll() is None:
            bridge.kill()


class Mosquitto:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: port_open(self.port), 10, what="mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_for(lambda: not port_open(self.port), 5, what="mosquitto to stop")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker per test (tests stop and restart it)."""
    broker = Mosquitto(tmp_path).start()
    yield broker
    if broker.proc and broker.proc.poll() is None:
        broker.stop()
