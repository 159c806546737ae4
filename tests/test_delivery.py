"""Delivery through crashes, failing plugins and shutdown, on real bridge processes."""

from __future__ import annotations

import collections
import subprocess
import sys
import time

import pytest

from sophonfog_bridge.samples import event_payload, jpeg

from .conftest import ROOT, wait_for
from .recorder import read_lines
from .test_receiver import core_config

SCENE = jpeg(160, 120, seed=21)
RECORDER = {"recorder": "tests.recorder:Recorder"}


def post_events(bridge, count, prefix="e"):
    ids = []
    for n in range(count):
        answer = bridge.post(payload=event_payload("v2r2", identity_id=f"{prefix}{n}", scene=SCENE))
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["event_id"])
    return ids


def test_kill_9_loses_no_acknowledged_event_and_redelivers_at_most_one(bridge_factory, tmp_path):
    config = core_config(tmp_path)
    config["plugins"]["recorder"]["slow_s"] = 0.01
    first = bridge_factory(config, plugins=RECORDER, workdir=tmp_path / "b")
    ids = post_events(first, 200)
    first.kill()
    delivered_before = {line["event_id"] for line in read_lines(tmp_path / "rec.jsonl")}
    assert len(delivered_before) < 200, "the slow plugin should still have had a backlog"

    config["plugins"]["recorder"]["slow_s"] = 0
    config["http"] = {"port": first.port}
    second = bridge_factory(config, plugins=RECORDER, workdir=tmp_path / "b")

    def all_delivered():
        got = read_lines(tmp_path / "rec.jsonl")
        return len({line["event_id"] for line in got}) == 200 and got

    lines = wait_for(all_delivered, 20, what="all 200 events after restart")
    counts = collections.Counter(line["event_id"] for line in lines)
    assert set(counts) == set(ids)
    twice = [event_id for event_id, n in counts.items() if n > 1]
    assert len(twice) <= 1, f"more than the one in-flight event came twice: {twice}"
    replayed = [line for line in lines if line["event_id"] not in delivered_before]
    assert replayed and all(line["delivery"]["accepted_this_run"] is False for line in replayed)
    # Order is kept across the crash: arrival order is the order of the ids we posted.
    first_seen = list(dict.fromkeys(line["event_id"] for line in lines))
    assert first_seen == ids
    assert second.stop() == 0


def test_retry_later_holds_only_that_plugin_and_keeps_order(bridge_factory, tmp_path):
    flag = tmp_path / "broker-down"
    flag.touch()
    config = core_config(tmp_path)
    config["plugins"]["recorder"]["retry_while_exists"] = str(flag)
    config["plugins"]["second"] = {"path": str(tmp_path / "second.jsonl")}
    bridge = bridge_factory(config, plugins={**RECORDER, "second": "tests.recorder:Recorder"})
    ids = post_events(bridge, 8)
    # The healthy plugin gets everything while the other one waits.
    wait_for(lambda: len(read_lines(tmp_path / "second.jsonl")) == 8, 10, what="second plugin")
    health = wait_for(
        lambda: (h := bridge.health())["plugins"]["recorder"]["retries"] >= 3 and h,
        10,
        what="retries",
    )
    assert health["plugins"]["recorder"]["state"] == "retrying"
    assert health["plugins"]["recorder"]["backlog"] == 8
    assert read_lines(tmp_path / "rec.jsonl") == []
    flag.unlink()
    lines = wait_for(
        lambda: len(got := read_lines(tmp_path / "rec.jsonl")) == 8 and got, 10, what="drain"
    )
    assert [line["event_id"] for line in lines] == ids
    # A retry of a record this run accepted: accepted_this_run, but not its first attempt.
    assert lines[0]["delivery"]["attempt"] > 1 and lines[0]["delivery"]["accepted_this_run"]


def test_raising_and_unimportable_plugins_do_not_stop_a_healthy_one(bridge_factory, tmp_path):
    config = core_config(tmp_path)
    config["plugins"]["recorder"]["raise_on"] = "e1"
    bridge = bridge_factory(
        config,
        plugins={
            **RECORDER,
            "boom": "tests.recorder:Exploder",
            "broken": "tests.broken_plugin",
        },
    )
    ids = post_events(bridge, 3)
    # e1 makes the recorder itself fail: it is retried, given up on, and e2 still arrives.
    lines = wait_for(
        lambda: len(got := read_lines(tmp_path / "rec.jsonl")) == 2 and got, 15, what="e0 and e2"
    )
    assert [line["event_id"] for line in lines] == [ids[0], ids[2]]
    health = wait_for(
        lambda: (h := bridge.health())["plugins"]["boom"]["failed"] == 3 and h, 20, what="boom"
    )
    assert health["plugins"]["recorder"]["failed"] == 1
    assert health["plugins"]["broken"]["state"] == "error"
    assert "broken on purpose" in health["plugins"]["broken"]["error"]
    assert "plugin boom failed on event" in bridge.logs()
    assert bridge.post(payload=event_payload("v2r2", identity_id="late")).status_code == 200


def test_strict_mode_turns_a_broken_plugin_into_an_error(bridge_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("SOPHONFOG_BRIDGE_STRICT_PLUGINS", "1")
    bridge = bridge_factory(
        core_config(tmp_path), plugins={**RECORDER, "broken": "tests.broken_plugin"}, wait=False
    )
    assert bridge.proc.wait(20) != 0
    assert "broken on purpose" in bridge.logs()


def test_sigterm_stops_cleanly_within_seconds(bridge_factory, tmp_path):
    config = core_config(tmp_path)
    config["plugins"]["recorder"]["slow_s"] = 1.0
    bridge = bridge_factory(config, plugins=RECORDER)
    post_events(bridge, 3)
    started = time.monotonic()
    assert bridge.stop(timeout=10) == 0
    assert time.monotonic() - started < 8
    assert "stopped" in bridge.logs()


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_plugins_command_lists_bundled_plugins_through_entry_points(tmp_path):
    result = run_cli("plugins", "--plugin", "broken=tests.broken_plugin", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line[:1] != " "}
    for name in ("mqtt", "snapshots", "syslog", "door_relay"):
        assert "sophonfog-bridge" in lines[name], result.stdout
    assert "disabled" in lines["door_relay"]
    assert "FAILED" in lines["broken"] and "broken on purpose" in result.stdout


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("http:\n  port: 70000\n", "http.port: value must be at most 65535"),
        ("htp:\n  port: 1\n", "htp: unknown key"),
        ("plugins:\n  mqtt:\n    hots: x\n", "plugins.mqtt.hots: unknown key"),
        ("plugins:\n  nosuch: {}\n", "plugins.nosuch: no plugin of that name is installed"),
        ("http: [unclosed\n", "not valid YAML"),
        ("http:\n  token: !env SFB_TEST_UNSET_VAR\n", "!env SFB_TEST_UNSET_VAR"),
    ],
)
def test_check_config_names_file_key_and_problem(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    result = run_cli("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and str(path) in result.stderr


def test_check_config_resolves_defaults_and_env(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("http:\n  token: !env SFB_TEST_TOKEN\nspool:\n  path: spool\n")
    result = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "SFB_TEST_TOKEN": "a-long-secret"},
    )
    assert result.returncode == 0, result.stderr
    assert '"port": 9528' in result.stdout and '"token": "***"' in result.stdout
    assert "a-long-secret" not in result.stdout
    assert '"door_relay"' in result.stdout


def test_the_full_example_config_is_valid(tmp_path):
    result = run_cli(
        "check-config", "--config", str(ROOT / "examples" / "config.yaml"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    for plugin in ("mqtt", "snapshots", "syslog", "status", "door_relay"):
        assert f'"{plugin}": {{' in result.stdout
    assert '"name": "front_gate"' in result.stdout


@pytest.mark.parametrize("shape", ["v2r1", "v2r2", "history", "ws", "platform"])
def test_send_test_event_posts_like_a_box(bridge_factory, tmp_path, shape):
    bridge = bridge_factory(core_config(tmp_path), plugins=RECORDER)
    form = ["--form"] if shape == "v2r1" else []
    result = run_cli(
        "send-test-event",
        "--url",
        bridge.url + "/RealTimeEvent",
        "--shape",
        shape,
        "--person-type",
        "visitor",
        "--device-type",
        "access_control",
        *form,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200 ") and '"status": 0' in result.stdout
    (line,) = wait_for(lambda: read_lines(tmp_path / "rec.jsonl"), 10, what="the test event")
    assert line["person_type"] == "visitor"
    assert line["kind"] == ("history" if shape == "history" else "realtime")
    assert line["spot_pic"] is not None or shape == "ws"


def test_version_flag():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("sophonfog-bridge ")


def test_deprecated_live_alias_warns_and_keeps_its_old_meaning():
    from sophonfog_bridge import Delivery

    def live(**fields):
        with pytest.warns(DeprecationWarning, match="accepted_this_run"):
            return Delivery(seq=7, plugin="p", **fields).live

    assert live(attempt=1, accepted_this_run=True) is True
    assert live(attempt=2, accepted_this_run=True) is False
    assert live(attempt=1, accepted_this_run=False) is False
