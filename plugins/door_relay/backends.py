"""Relay backends other than HTTP (MQTT, GPIO, a command) and the registry of all of them."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .http_backend import HttpBackend, SophonBackend
from .pulse import Backend, BackendError, Pulse, RelayUnconfirmed, seconds_text

log = logging.getLogger(__name__)


class MqttBackend:
    """Publishes on the bridge's MQTT connection (the mqtt plugin's `mqtt_publish` hook)."""

    kind = "mqtt"

    def __init__(self, cfg: dict[str, Any], bridge: Any):
        self.cfg = cfg
        self.bridge = bridge

    def describe(self) -> str:
        return f"mqtt {self.cfg.get('preset') or self.cfg['topic']}"

    def messages(self, pulse_s: float) -> list[tuple[str, str]]:
        cfg = self.cfg
        if cfg.get("preset") == "tasmota":
            from .http_backend import tasmota_pulse_time

            prefix = f"cmnd/{cfg['device']}"
            # PulseTime before POWER: the relay must never latch on.
            return [
                (f"{prefix}/PulseTime{cfg['channel']}", str(tasmota_pulse_time(pulse_s))),
                (f"{prefix}/POWER{cfg['channel']}", "ON"),
            ]
        if cfg.get("preset") == "zigbee2mqtt":
            on_time = round(pulse_s) if pulse_s == round(pulse_s) else pulse_s
            payload = json.dumps({"state": "ON", "on_time": on_time}, separators=(",", ":"))
            return [(f"{cfg['base_topic']}/{cfg['device']}/set", payload)]
        payload = cfg["payload"]
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload, separators=(",", ":"))
        return [(cfg["topic"], payload.replace("{pulse_s}", seconds_text(pulse_s)))]

    def pulse(self, pulse: Pulse) -> str:
        messages = self.messages(pulse.pulse_s)
        for index, (topic, payload) in enumerate(messages):
            results = self.bridge.call(
                "mqtt_publish", topic=topic, payload=payload, qos=self.cfg["qos"], retain=False
            )
            if not results:
                raise BackendError("no plugin publishes MQTT (is the mqtt plugin enabled?)")
            if not any(r.value is True for r in results):
                errors = [f"{r.plugin}: {r.error or r.value}" for r in results]
                problem = f"MQTT publish to {topic} not acknowledged: {errors}"
                # QoS 0 fails only before sending. With QoS 1/2 the opening command may
                # have reached the broker without its acknowledgement coming back.
                if self.cfg["qos"] and index == len(messages) - 1:
                    raise RelayUnconfirmed(problem)
                raise BackendError(problem)
        return f"published to {topic}"


class GpioBackend:
    """A relay on a Raspberry Pi pin; the bridge times the pulse (gpiozero's own thread)."""

    kind = "gpio"

    def __init__(self, cfg: dict[str, Any]):
        try:
            from gpiozero import DigitalOutputDevice
        except ImportError as err:
            raise BackendError(
                "the gpio backend needs gpiozero: pip install 'sophonfog-bridge[gpio]'"
            ) from err
        factory = None
        if cfg.get("pin_factory") == "mock":
            from gpiozero.pins.mock import MockFactory

            factory = MockFactory()
        self.cfg = cfg
        # initial_value=False: whatever the board's polarity, the door starts shut.
        self.device = DigitalOutputDevice(
            cfg["pin"],
            active_high=not cfg["active_low"],
            initial_value=False,
            pin_factory=factory,
        )
        self._lock = threading.Lock()

    def describe(self) -> str:
        low = " active-low" if self.cfg["active_low"] else ""
        return f"gpio pin {self.cfg['pin']}{low}"

    def pulse(self, pulse: Pulse) -> str:
        with self._lock:
            self.device.blink(on_time=pulse.pulse_s, off_time=0, n=1, background=True)
        return f"pin {self.cfg['pin']} on for {seconds_text(pulse.pulse_s)} s"

    def close(self) -> None:
        try:
            self.device.off()
        finally:
            self.device.close()


class CommandBackend:
    """Runs a program with arguments, no shell; exit status 0 means opened."""

    kind = "command"

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg

    def describe(self) -> str:
        return f"command {self.cfg['argv'][0]}"

    def argv(self, pulse: Pulse) -> list[str]:
        # Only values the bridge controls are substituted: nothing the box sent.
        values = {"{door}": pulse.door, "{pulse_s}": seconds_text(pulse.pulse_s)}
        out = []
        for arg in self.cfg["argv"]:
            for key, value in values.items():
                arg = arg.replace(key, value)
            out.append(arg)
        return out

    def pulse(self, pulse: Pulse) -> str:
        timeout = self.cfg["timeout_s"]
        try:
            done = subprocess.run(
                self.argv(pulse),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            # It ran, and may have switched the relay before it hung.
            raise RelayUnconfirmed(f"command timed out after {timeout:g} s (killed)") from err
        except OSError as err:
            raise BackendError(f"command failed to start: {err}") from err
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-200:]
            raise BackendError(f"command exited {done.returncode}: {tail}")
        return "command exited 0"


Factory = Callable[[dict[str, Any]], Backend]


def build(cfg: dict[str, Any], bridge: Any, user: Mapping[str, Factory]) -> Backend:
    """The backend for one door; user types come from the `door_backends` hook."""
    kind = cfg["type"]
    if kind == "http":
        return HttpBackend(cfg)
    if kind == "sophon":
        return SophonBackend(cfg)
    if kind == "mqtt":
        return MqttBackend(cfg, bridge)
    if kind == "gpio":
        return GpioBackend(cfg)
    if kind == "command":
        return CommandBackend(cfg)
    factory = user.get(kind)
    if factory is None:
        known = ", ".join(["http", "mqtt", "sophon", "gpio", "command", *sorted(user)])
        raise BackendError(f"unknown backend type {kind!r} (known: {known})")
    schema = getattr(factory, "config_schema", None)
    if schema is not None:
        cfg = {"type": kind, **schema({k: v for k, v in cfg.items() if k != "type"})}
    backend = factory(cfg)
    if not callable(getattr(backend, "pulse", None)):
        raise BackendError(f"backend factory for {kind!r} returned no object with pulse()")
    return backend


def describe(backend: Backend) -> str:
    text = getattr(backend, "describe", None)
    return text() if callable(text) else type(backend).__name__
