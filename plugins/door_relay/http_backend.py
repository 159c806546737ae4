"""HTTP relays: a plain URL, the device presets, and the SophonFog box's own relay.

Presets let the device time the pulse (Shelly timer/toggle_after, Tasmota PulseTime,
an ESPHome or Home Assistant button whose action pulses), so a bridge that dies
mid-pulse cannot leave a door open.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .httpclient import Auth, Request, Response, send
from .pulse import BackendError, Pulse, RelayUnconfirmed, seconds_text

Check = Callable[[Response], str]


def _json(response: Response) -> Any:
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def _ok_status(response: Response) -> str:
    if not 200 <= response.status < 300:
        raise BackendError(f"relay answered HTTP {response.status}: {response.text[:120]}")
    return f"HTTP {response.status}"


def _shelly_gen1_check(response: Response) -> str:
    _ok_status(response)
    answer = _json(response)
    if not isinstance(answer, dict) or answer.get("ison") is not True:
        raise BackendError(f"shelly did not confirm the relay is on: {response.text[:120]}")
    return "shelly ison=true"


def _shelly_gen2_check(response: Response) -> str:
    _ok_status(response)
    answer = _json(response)
    if not isinstance(answer, dict) or "error" in answer or "result" not in answer:
        raise BackendError(f"shelly rpc error: {response.text[:160]}")
    return "shelly Switch.Set ok"


def _tasmota_check(response: Response) -> str:
    _ok_status(response)
    answer = _json(response)
    if not isinstance(answer, dict) or answer.get("Command") == "Unknown" or not answer:
        raise BackendError(f"tasmota rejected the command: {response.text[:120]}")
    if "WARNING" in answer:
        raise BackendError(f"tasmota: {answer['WARNING']}")
    return "tasmota ok"


def _tasmota_power_check(response: Response) -> str:
    _tasmota_check(response)
    answer = _json(response)
    states = [v for k, v in answer.items() if k.upper().startswith("POWER")]
    if states != ["ON"]:
        raise BackendError(f"tasmota did not switch on: {response.text[:120]}")
    return "tasmota POWER ON"


def _json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _base(cfg: dict[str, Any], default_port: int | None = None) -> str:
    host = cfg["host"]
    if default_port and ":" not in host.strip("[]").split("]")[-1]:
        host = f"{host}:{default_port}"
    return f"{cfg['scheme']}://{host}"


def shelly_gen1(cfg: dict[str, Any], pulse_s: float) -> list[tuple[Request, Check]]:
    channel = cfg.get("channel", 0)
    url = f"{_base(cfg)}/relay/{channel}?turn=on&timer={seconds_text(pulse_s)}"
    return [(Request("GET", url), _shelly_gen1_check)]


def shelly_gen2(cfg: dict[str, Any], pulse_s: float) -> list[tuple[Request, Check]]:
    body = {
        "id": 1,
        "method": "Switch.Set",
        "params": {"id": cfg.get("channel", 0), "on": True, "toggle_after": pulse_s},
    }
    headers = {"Content-Type": "application/json"}
    return [(Request("POST", f"{_base(cfg)}/rpc", _json_body(body), headers), _shelly_gen2_check)]


def tasmota_pulse_time(pulse_s: float) -> int:
    """Tasmota PulseTime: 1..111 are tenths of a second, 112 and up are seconds + 100."""
    if pulse_s <= 11.1:
        return max(1, round(pulse_s * 10))
    return round(pulse_s) + 100


def tasmota(cfg: dict[str, Any], pulse_s: float) -> list[tuple[Request, Check]]:
    channel = cfg.get("channel", 1)
    login = ""
    if cfg.get("password"):
        # Tasmota's web password goes in the query, it does not speak HTTP auth.
        login = f"&user={quote(cfg.get('username') or 'admin')}&password={quote(cfg['password'])}"

    def command(text: str) -> str:
        return f"{_base(cfg)}/cm?cmnd={quote(text)}{login}"

    # PulseTime first, so the relay can never latch on; only then the switch.
    return [
        (
            Request("GET", command(f"PulseTime{channel} {tasmota_pulse_time(pulse_s)}")),
            _tasmota_check,
        ),
        (Request("GET", command(f"Power{channel} ON")), _tasmota_power_check),
    ]


def esphome(cfg: dict[str, Any], pulse_s: float) -> list[tuple[Request, Check]]:
    url = f"{_base(cfg)}/button/{quote(cfg['button'], safe='')}/press"
    return [(Request("POST", url, b""), _ok_status)]


HA_SERVICES = {"button": "press", "input_button": "press", "script": "turn_on"}


def home_assistant(cfg: dict[str, Any], pulse_s: float) -> list[tuple[Request, Check]]:
    domain = cfg["entity_id"].split(".", 1)[0]
    url = f"{_base(cfg, 8123)}/api/services/{domain}/{HA_SERVICES[domain]}"
    headers = {"Authorization": f"Bearer {cfg['token']}", "Content-Type": "application/json"}
    body = _json_body({"entity_id": cfg["entity_id"]})
    return [(Request("POST", url, body, headers), _ok_status)]


PRESETS = {
    "shelly_gen1": shelly_gen1,
    "shelly_gen2": shelly_gen2,
    "tasmota": tasmota,
    "esphome": esphome,
    "home_assistant": home_assistant,
}


def _custom(cfg: dict[str, Any], pulse_s: float) -> list[tuple[Request, Check]]:
    seconds = seconds_text(pulse_s)
    body = cfg.get("body")
    headers = dict(cfg["headers"])
    data: bytes | None = None
    if isinstance(body, (dict, list)):
        data = _json_body(body)
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.replace("{pulse_s}", seconds).encode()
    if cfg.get("token"):
        headers["Authorization"] = f"Bearer {cfg['token']}"
    method = cfg.get("method") or ("POST" if data is not None else "GET")
    url = cfg["url"].replace("{pulse_s}", seconds)
    return [(Request(method, url, data, headers), _ok_status)]


class HttpBackend:
    kind = "http"

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        self.build = PRESETS[cfg["preset"]] if cfg.get("preset") else _custom
        self.timeout = cfg["timeout_s"]
        use_auth = cfg.get("preset") != "tasmota" and (cfg.get("username") or cfg.get("password"))
        default_user = "admin" if cfg.get("preset") == "shelly_gen2" else ""
        self.auth = (
            Auth(cfg.get("username") or default_user, cfg.get("password", ""), cfg["auth"])
            if use_auth
            else None
        )

    def describe(self) -> str:
        if self.cfg.get("preset"):
            return f"http {self.cfg['preset']} {self.cfg['scheme']}://{self.cfg['host']}"
        return f"http {self.cfg['url'].split('?')[0]}"

    def pulse(self, pulse: Pulse) -> str:
        confirmations = []
        steps = self.build(self.cfg, pulse.pulse_s)
        for index, (request, check) in enumerate(steps):
            try:
                response = send(request, self.timeout, self.auth, self.cfg["verify_tls"])
            except RelayUnconfirmed as err:
                if index == len(steps) - 1:
                    raise
                # A lost answer to a preparing step (Tasmota's PulseTime): the command that
                # opens was never sent, so the door is certainly shut.
                raise BackendError(f"{err}; the opening command was not sent") from err
            confirmations.append(check(response))
        return "; ".join(confirmations)


class SophonBackend:
    """The box's network relay: `PUT /SophonFogSys/api/EventAction` (protocol.md).

    Documented on V2 and V5R7, on V6R1 only by a legacy page, not at all on V6R2 (the
    schema refuses `firmware: v6r2`)."""

    kind = "sophon"

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        host = cfg["host"] if ":" in cfg["host"] else f"{cfg['host']}:5555"
        self.url = f"http://{host}/SophonFogSys/api/EventAction"

    def describe(self) -> str:
        firmware = self.cfg.get("firmware", "v2")
        return f"sophon box {self.cfg['host']} ({firmware}) relay {self.cfg['action_ip']}"

    def request(self, pulse_s: float) -> Request:
        action = {
            "action_ip": self.cfg["action_ip"],
            "action_port": self.cfg["action_port"],
            "action_mode": "opendoor",
            # The box takes whole seconds; round up so the door is never shorter than asked.
            "action_duration": max(1, int(-(-pulse_s // 1))),
            "logic_port": self.cfg["logic_port"],
        }
        headers = {"Content-Type": "application/json"}
        return Request("PUT", self.url, _json_body({"action": [action]}), headers)

    def pulse(self, pulse: Pulse) -> str:
        response = send(self.request(pulse.pulse_s), self.cfg["timeout_s"])
        _ok_status(response)
        answer = _json(response)
        # Platforms answer {"status": 0, "message": "SUCCESS"}; anything else is a refusal.
        if isinstance(answer, dict) and str(answer.get("status", 0)) not in ("0", "200"):
            raise BackendError(f"box refused: {response.text[:120]}")
        return f"box HTTP {response.status}"
