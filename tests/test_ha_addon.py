"""Deployment files: the Home Assistant add-on's options-to-config translation (checked by
the real `check-config`), the compose file's config, and the Dockerfile's healthcheck."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, free_port

ADDON = ROOT / "ha-addon"
SERVICE = {
    "host": "core-mosquitto",
    "port": 1883,
    "ssl": False,
    "protocol": "3.1.1",
    "username": "addons",
    "password": "from-supervisor",
}


def _load_addon():
    spec = importlib.util.spec_from_file_location("addon_config", ADDON / "addon_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


addon = _load_addon()


def addon_yaml() -> dict:
    return yaml.safe_load((ADDON / "config.yaml").read_text())


def default_options() -> dict:
    return json.loads(json.dumps(addon_yaml()["options"]))


def check_config(config: dict, tmp_path: Path) -> dict:
    """What the real bridge makes of a config (plugins resolved), or the test fails."""
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    run = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_every_option_has_a_schema_entry():
    meta = addon_yaml()

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(meta["options"]) == keys(meta["schema"])
    assert meta["ports"] == {"9528/tcp": 9528} and "mqtt:want" in meta["services"]
    assert re.fullmatch(r"[a-z0-9_]+", meta["slug"])


def test_default_options_with_the_supervisor_broker(tmp_path):
    config = addon.build_config(default_options(), None, SERVICE, data_dir=str(tmp_path))
    resolved = check_config(config, tmp_path)
    assert resolved["bridge_id"] == "sophonfog"
    assert resolved["log_level"] == "INFO"
    assert resolved["http"]["port"] == 9528 and resolved["http"]["token"] is None
    assert resolved["spool"]["path"] == f"{tmp_path}/spool"
    assert resolved["spool"]["max_mb"] == 1024
    mqtt = resolved["plugins"]["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["username"], mqtt["password"]) == (
        "core-mosquitto",
        1883,
        "addons",
        "from-supervisor",
    )
    assert mqtt["enabled"] and mqtt["discovery"] is True
    assert resolved["plugins"]["snapshots"]["enabled"] is True
    assert resolved["plugins"]["snapshots"]["path"] == f"{tmp_path}/snapshots"
    assert resolved["plugins"]["syslog"]["enabled"] is False
    assert resolved["plugins"]["status"]["enabled"] is True


def test_ui_options_override_and_explicit_broker_wins(tmp_path):
    options = default_options()
    options.update(
        bridge_id="lobby",
        log_level="debug",
        threshold=0.7,
        token="a-long-secret",
        allowed_sources=["192.168.1.0/24"],
        status_page=False,
    )
    options["mqtt"].update(host="broker.lan", port=8883, username="me", password="pw")
    config = addon.build_config(options, None, SERVICE, data_dir=str(tmp_path))
    resolved = check_config(config, tmp_path)
    assert resolved["bridge_id"] == "lobby" and resolved["log_level"] == "DEBUG"
    assert resolved["threshold"] == 0.7
    assert resolved["http"]["token"] == "***"  # check-config hides it
    assert config["http"]["token"] == "a-long-secret"
    assert resolved["http"]["allowed_sources"] == ["192.168.1.0/24"]
    mqtt = resolved["plugins"]["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["username"], mqtt["password"]) == (
        "broker.lan",
        8883,
        "me",
        "pw",
    )
    assert resolved["plugins"]["status"]["enabled"] is False

    options["mqtt"]["enabled"] = False
    config = addon.build_config(options, None, SERVICE, data_dir=str(tmp_path))
    assert config["plugins"]["mqtt"] == {"enabled": False}
    assert check_config(config, tmp_path)["plugins"]["mqtt"]["enabled"] is False


def test_user_file_is_the_base_and_its_broker_beats_the_supervisor(tmp_path):
    user = {
        "http": {"realtime_paths": ["/face"], "token": "token-from-file"},
        "plugins": {
            "mqtt": {"host": "mqtt.site", "port": 1884, "base_topic": "site/faces"},
        },
    }
    options = default_options()
    config = addon.build_config(options, user, SERVICE, data_dir=str(tmp_path))
    resolved = check_config(config, tmp_path)
    assert resolved["http"]["realtime_paths"] == ["/face"]
    assert config["http"]["token"] == "token-from-file"  # the UI left it empty
    mqtt = resolved["plugins"]["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["base_topic"]) == ("mqtt.site", 1884, "site/faces")
    assert mqtt["username"] is None, "no Supervisor credentials for somebody else's broker"

    options["token"] = "token-from-the-ui"
    config = addon.build_config(options, user, SERVICE, data_dir=str(tmp_path))
    assert config["http"]["token"] == "token-from-the-ui"


def test_write_config_from_files(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERVISOR_TOKEN", raising=False)  # not inside Home Assistant
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(default_options()))
    user_file = tmp_path / "sophonfog-bridge.yaml"
    user_file.write_text("threshold: 0.4\nplugins:\n  syslog:\n    enabled: true\n")
    output = tmp_path / "out.yaml"
    addon.write_config(str(options_file), str(output), str(user_file))
    written = yaml.safe_load(output.read_text())
    assert output.stat().st_mode & 0o777 == 0o600
    assert written["threshold"] == 0.0, "the UI's threshold overrides the file's"
    assert written["plugins"]["syslog"]["enabled"] is False
    assert written["plugins"]["mqtt"]["host"] == "core-mosquitto"  # the fallback
    assert written["spool"]["path"] == "/data/spool"


def test_compose_file_config_is_valid(tmp_path):
    compose = yaml.safe_load((ROOT / "examples" / "docker-compose.yml").read_text())
    bridge = compose["services"]["sophonfog-bridge"]
    assert bridge["configs"][0]["target"] == "/config/sophonfog-bridge.yaml"
    content = compose["configs"]["bridge-config"]["content"].replace("/data", str(tmp_path))
    resolved = check_config(yaml.safe_load(content), tmp_path)
    assert resolved["plugins"]["mqtt"]["host"] == "mosquitto"
    assert compose["services"]["mosquitto"]["image"].startswith("eclipse-mosquitto")


@pytest.fixture
def healthcheck() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("HEALTHCHECK"))
    assert "curl" not in line
    return json.loads(line.split("CMD", 1)[1].strip())


def test_dockerfile_healthcheck_probes_healthz(bridge_factory, healthcheck):
    assert healthcheck[0] == "python"
    command = [sys.executable, *healthcheck[1:]]
    bridge = bridge_factory({"plugins": {n: {"enabled": False} for n in ("mqtt", "snapshots")}})
    env = {**os.environ, "SOPHONFOG_HEALTHCHECK_URL": bridge.url + "/healthz"}
    assert subprocess.run(command, env=env, timeout=30).returncode == 0
    env["SOPHONFOG_HEALTHCHECK_URL"] = f"http://127.0.0.1:{free_port()}/healthz"
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode != 0
