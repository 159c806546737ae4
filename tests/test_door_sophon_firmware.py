"""The door plugin's `sophon` backend names the firmware that has EventAction, and a
V6R2 box is refused when the config is read, with what to use instead."""

from __future__ import annotations

import subprocess
import sys

import pytest
import voluptuous as vol
import yaml
from sophonfog_bridge.plugins.door_relay.backends import build
from sophonfog_bridge.plugins.door_relay.schema import Backend

from .conftest import ROOT

SOPHON = {"type": "sophon", "host": "192.168.1.10", "action_ip": "192.168.1.104"}


@pytest.mark.parametrize("firmware", ["v2", "V5", "v6r1"])
def test_firmware_with_event_action_is_accepted(firmware):
    cfg = Backend({**SOPHON, "firmware": firmware})
    assert cfg["firmware"] == firmware.lower()
    assert f"({firmware.lower()})" in build(cfg, bridge=None, user={}).describe()


def test_default_is_v2_as_before():
    assert Backend(dict(SOPHON))["firmware"] == "v2"


@pytest.mark.parametrize("firmware", ["v6", "v6r2"])
def test_v6r2_is_refused_saying_why_and_what_instead(firmware):
    with pytest.raises(vol.Invalid) as err:
        Backend({**SOPHON, "firmware": firmware})
    message = str(err.value)
    assert "V6R2 documents no on-demand door call" in message
    assert "net_relay" in message and "http, mqtt or gpio" in message


def test_check_config_names_the_door_and_the_reason(tmp_path):
    door = {
        "name": "side_door",
        "devices": ["192.168.1.104"],
        "backend": {**SOPHON, "firmware": "v6r2"},
    }
    config = {"plugins": {"door_relay": {"enabled": True, "doors": [door]}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 1
    assert "plugins.door_relay.doors.0.backend" in run.stderr, run.stderr
    assert "V6R2 documents no on-demand door call" in run.stderr
