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
import requests
import yaml

from sophonfog_bridge import samples

from .conftest import ROOT, free_port, wait_for

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

    options, schema = keys(meta["options"]), keys(meta["schema"])
    assert options <= schema, options - schema
    for key in schema - options:  # left out of the defaults: must be optional
        node = meta["schema"]
        for part in key.split("."):
            node = node[part]
        assert isinstance(node, str) and node.endswith("?"), key
    assert meta["ports"] == {"9528/tcp": 9528} and "mqtt:want" in meta["services"]
    assert re.fullmatch(r"[a-z0-9_]+", meta["slug"])


def test_addon_metadata_for_the_store_and_the_sidebar():
    meta = addon_yaml()
    assert meta["ingress"] is True and meta["ingress_port"] == 9528
    assert meta["panel_icon"].startswith("mdi:") and meta["panel_title"]
    assert set(meta["arch"]) == {"aarch64", "amd64"}
    # Supervisor matches these against the data folder's paths (PurePath.match).
    from pathlib import PurePath

    for folder in ("spool", "snapshots"):
        assert any(PurePath(f"data/{folder}").match(g) for g in meta["backup_exclude"])
    assert not any(PurePath("data/sophonfog-bridge.yaml").match(g) for g in meta["backup_exclude"])
    dockerfile = (ADDON / "Dockerfile").read_text()
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms == ["ghcr.io/home-assistant/base-python:3.12-alpine3.22"]
    assert "apk add --no-cache font-wqy-zenhei" in dockerfile
    assert "--constraint /tmp/wheels/requirements.lock" in dockerfile
    assert not (ADDON / "build.yaml").exists(), "the builder no longer reads build.yaml"


def test_the_store_finds_exactly_this_addon():
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert repository["name"]
    # As the Supervisor looks: every config.* below the root, not in dot folders or rootfs.
    found = [
        p
        for p in ROOT.glob("**/config.*")
        if p.suffix in (".json", ".yaml", ".yml")
        and not [part for part in p.relative_to(ROOT).parts if part.startswith(".")]
        and "rootfs" not in p.parts
    ]
    addons = [p for p in found if {"name", "version", "slug", "arch"} <= set(_yaml(p))]
    assert addons == [ADDON / "config.yaml"]
    assert (ADDON / "Dockerfile").is_file() and (ADDON / "run.sh").is_file()


def _yaml(path: Path) -> dict:
    data = yaml.load(path.read_text(), Loader=addon._Loader)  # examples use `!env`
    return data if isinstance(data, dict) else {}


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


def test_boxes_from_the_ui_in_the_cores_shape():
    options = default_options()
    assert "boxes" not in addon.build_config(options, None, SERVICE), "no boxes, no key"
    options["boxes"] = [
        {
            "host": "192.168.1.19",
            "name": "lobby",
            "firmware": "v6",
            "api_port": 5555,
            "ws_port": 5679,
            "username": "admin",
            "password": "box-pw",
            "devices": ["AKOPKKKKK__192.168.1.101", ""],
            "backfill": False,
        },
        {"host": "192.168.1.20", "name": "", "username": "", "password": ""},
    ]
    user = {"boxes": [{"host": "192.168.1.20", "name": "old"}, {"host": "10.0.0.9"}]}
    config = addon.build_config(options, user, SERVICE)
    assert config["boxes"] == [
        {"host": "10.0.0.9"},  # the file's own box stays
        {
            "host": "192.168.1.19",
            "name": "lobby",
            "firmware": "v6",
            "api_port": 5555,
            "ws_port": 5679,
            "username": "admin",
            "password": "box-pw",
            "devices": ["AKOPKKKKK__192.168.1.101"],
            "backfill": False,
        },
        {"host": "192.168.1.20"},  # replaces the file's entry for that host
    ]


def test_the_ui_door_with_a_preset_is_a_valid_door(tmp_path):
    options = default_options()
    assert "door_relay" not in addon.build_config(options, None, SERVICE)["plugins"]
    options["door"].update(
        enabled=True,
        name="lobby",
        devices=["AKOPKKKKK__192.168.1.101"],
        relay_preset="shelly_gen2",
        relay_host="192.168.1.30",
        relay_password="shelly-pw",
        pulse_s=1.5,
        allow_remote_open=True,
    )
    user = {"plugins": {"door_relay": {"doors": [_door("lobby", "old"), _door("back", "b")]}}}
    config = addon.build_config(options, user, SERVICE, data_dir=str(tmp_path))
    resolved = check_config(config, tmp_path)["plugins"]["door_relay"]
    assert resolved["enabled"] is True
    doors = {d["name"]: d for d in resolved["doors"]}
    assert set(doors) == {"back", "lobby"}, "the UI's door replaces the file's of that name"
    lobby = doors["lobby"]
    assert lobby["devices"] == ["AKOPKKKKK__192.168.1.101"]
    assert lobby["pulse_s"] == 1.5 and lobby["allow_remote_open"] is True
    assert lobby["backend"]["preset"] == "shelly_gen2"
    assert lobby["backend"]["host"] == "192.168.1.30"


def test_the_ui_door_with_a_url_and_one_missing_its_relay(tmp_path):
    options = default_options()
    options["door"].update(enabled=True, devices=["cam1"], relay_url="http://10.0.0.5/open")
    config = addon.build_config(options, None, SERVICE, data_dir=str(tmp_path))
    door = check_config(config, tmp_path)["plugins"]["door_relay"]["doors"][0]
    assert door["name"] == "front" and door["backend"]["url"] == "http://10.0.0.5/open"

    options["door"]["relay_url"] = ""
    path = tmp_path / "no-relay.yaml"
    path.write_text(yaml.safe_dump(addon.build_config(options, None, SERVICE)))
    run = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert run.returncode != 0 and "give either `url` or `preset`" in run.stderr


def _door(name: str, device: str) -> dict:
    return {"name": name, "devices": [device], "backend": {"type": "http", "url": "http://x/"}}


def test_viewers_and_the_ingress_gateway(tmp_path):
    options = default_options()
    http = check_config(addon.build_config(options, None, SERVICE, str(tmp_path)), tmp_path)["http"]
    assert http["ingress_gateways"] == ["172.30.32.2/32"] and http["viewers"] is None
    options["viewers"] = ["192.168.1.0/24"]
    http = check_config(addon.build_config(options, None, SERVICE, str(tmp_path)), tmp_path)["http"]
    assert http["viewers"] == ["192.168.1.0/24"]


def test_env_tags_in_the_users_file_reach_the_bridge_unresolved(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERVISOR_TOKEN", raising=False)
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(default_options()))
    user_file = tmp_path / "sophonfog-bridge.yaml"
    user_file.write_text("http:\n  token: !env ADDON_TEST_TOKEN\n")
    output = tmp_path / "out.yaml"
    addon.write_config(str(options_file), str(output), str(user_file), str(tmp_path))
    text = output.read_text()
    assert re.search(r"token: !env '?ADDON_TEST_TOKEN'?\n", text), "the tag is kept as it is"
    check = [sys.executable, "-m", "sophonfog_bridge", "check-config", "--config", str(output)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ADDON_TEST_TOKEN": "from-the-environment"}
    run = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["http"]["token"] == "***"
    env.pop("ADDON_TEST_TOKEN")
    run = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode != 0 and "ADDON_TEST_TOKEN" in run.stderr


# ---- the add-on as the Supervisor runs it: built wheel, fresh virtualenv, run.sh -------


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


@pytest.fixture(scope="module")
def built_addon(tmp_path_factory) -> tuple[Path, Path]:
    """`scripts/build-addon --out`, then the wheel installed as the Dockerfile does it,
    into a fresh virtualenv: (the add-on folder, the venv's bin folder)."""
    base = tmp_path_factory.mktemp("addon-build")
    folder = base / "sophonfog_bridge"
    build = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build-addon"), "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheels = sorted((folder / "wheels").glob("sophonfog_bridge-*.whl"))
    assert len(wheels) == 1 and (folder / "wheels" / "requirements.lock").is_file()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    lock = folder / "wheels" / "requirements.lock"
    install = subprocess.run(
        [*pip, "--constraint", str(lock), str(wheels[0])],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return folder, venv / "bin"


def test_the_wheel_installs_from_the_lock_in_a_fresh_virtualenv(built_addon):
    _folder, bin_dir = built_addon
    freeze = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = {
        re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(freeze.stdout)
    }
    pins = lock_pins()
    assert installed["sophonfog-bridge"] == "0.1.0"
    for name, version in installed.items():
        if name in ("sophonfog-bridge", "pip", "setuptools", "wheel"):
            continue
        assert pins.get(name) == version, f"{name} {version} is not the locked {pins.get(name)}"
    check = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "check"], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout


def test_run_sh_starts_the_bridge_from_options_json(built_addon, tmp_path, mosquitto):
    folder, bin_dir = built_addon
    data, config_dir = tmp_path / "data", tmp_path / "config"
    data.mkdir()
    config_dir.mkdir()
    options = default_options()
    options["mqtt"].update(host="127.0.0.1", port=mosquitto.port)
    (data / "options.json").write_text(json.dumps(options))
    # The user's own file in the add-on's config folder, with a secret from the environment.
    (config_dir / "sophonfog-bridge.yaml").write_text("http:\n  token: !env ADDON_RUN_TOKEN\n")
    port = free_port()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SOPHONFOG_ADDON_DATA": str(data),
        "SOPHONFOG_ADDON_CONFIG": str(config_dir),
        "SOPHONFOG_ADDON_LISTEN": f"127.0.0.1:{port}",
        "ADDON_RUN_TOKEN": "run-sh-token",
    }
    log = open(tmp_path / "addon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["/bin/sh", str(folder / "run.sh")], cwd=data, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: _health(url, proc), 30, what="the add-on's /healthz")
        assert health["status"] == "ok", health
        payload = samples.event_payload(identity_name="Add-on Test")
        assert requests.post(url + "/RealTimeEvent", json=payload, timeout=5).status_code == 401
        answer = requests.post(
            url + "/RealTimeEvent",
            json=payload,
            headers={"X-Sophonfog-Token": "run-sh-token"},
            timeout=5,
        )
        assert answer.status_code == 200 and answer.json()["status"] == 0, answer.text
        # Accepted into the add-on's data folder: the spool, then a photo on disk.
        wait_for(lambda: list((data / "snapshots").glob("2*/*/*.jpg")), 15, what="a photo")
        assert list((data / "spool").iterdir())
        written = (data / "sophonfog-bridge.yaml").read_text()
        assert "ADDON_RUN_TOKEN" in written and "run-sh-token" not in written, "no secret in /data"
    finally:
        proc.terminate()
        code = proc.wait(20)
        log.close()
    assert code == 0, (tmp_path / "addon.log").read_text()[-3000:]


def _health(url: str, proc: subprocess.Popen) -> dict | None:
    if proc.poll() is not None:
        raise AssertionError(f"run.sh exited {proc.returncode}")
    try:
        answer = requests.get(url + "/healthz", timeout=1)
    except requests.RequestException:
        return None
    return answer.json() if answer.ok else None


def test_release_workflow_gives_the_builder_actions_their_required_inputs():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads `on:` as True
    required = {  # home-assistant/builder actions/*/action.yml, release 2026.06.0
        "prepare-multi-arch-matrix": {"architectures", "image-name"},
        "build-image": {"arch", "container-registry-password", "image", "image-tags", "version"},
        "publish-multi-arch-manifest": {
            "architectures",
            "container-registry-password",
            "image-name",
            "image-tags",
        },
    }
    used = {}
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            uses = step.get("uses", "")
            if uses.startswith("home-assistant/builder/actions/"):
                action = uses.split("/")[3].split("@")[0]
                used[action] = set(step["with"])
    assert set(used) == set(required)
    for action, inputs in required.items():
        assert inputs <= used[action], (action, inputs - used[action])
    image_steps = workflow["jobs"]["image"]["steps"]
    assert any("scripts/build-addon" in s.get("run", "") for s in image_steps)
