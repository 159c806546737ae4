"""Plugins in processes of their own: what holds when any process dies, and thread mode.

A real bridge process; its plugin process is found as its child and killed for real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .conftest import ROOT, wait_for
from .door_relay_helpers import RelayServer
from .recorder import read_lines
from .test_door_relay import config as door_config
from .test_door_relay import decision_for, door, ip, payload, post

RECORDER = {"recorder": "tests.recorder:Recorder"}
GATE = "AKOPKKKKK__192.168.1.101"


def plugin_pids(bridge) -> list[int]:
    """The bridge process's children: its plugin processes."""
    pid = bridge.proc.pid
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(c) for c in handle.read().split()]
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def delivered(bridge, *names: str) -> list[int]:
    """Each named plugin's delivered count, as /healthz reports it."""
    plugins = bridge.health()["plugins"]
    return [plugins[name]["delivered"] for name in names]


def recorder_config(tmp: Path, **core) -> dict:
    return {
        **core,
        "plugins": {
            "recorder": {"path": str(tmp / "recorded.jsonl")},
            "mqtt": {"enabled": False},
            "snapshots": {"enabled": False},
            "syslog": {"enabled": False},
        },
    }


def recorded_ids(tmp: Path) -> dict[str, dict]:
    return {
        line["identity_id"]: line
        for line in read_lines(tmp / "recorded.jsonl")
        if line.get("record") == "event"
    }


def test_plugins_run_in_a_child_process_and_their_pages_are_served_through_the_bridge(
    bridge_factory, tmp_path
):
    bridge = bridge_factory(recorder_config(tmp_path), RECORDER)
    [child] = plugin_pids(bridge)
    assert child != bridge.proc.pid and alive(child)
    with open(f"/proc/{child}/cmdline", "rb") as handle:
        assert b"sophonfog_bridge.plugin_main" in handle.read()
    page = requests.get(bridge.url + "/", timeout=5)  # the status plugin's page
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    status = requests.get(bridge.url + "/status.json", timeout=5).json()
    assert status["bridge"]["bridge_id"] == "sophonfog"
    assert "recorder" in status["plugins"]


def test_a_killed_plugin_process_starts_again_and_gets_what_was_spooled_meanwhile(
    bridge_factory, tmp_path
):
    bridge = bridge_factory(recorder_config(tmp_path), RECORDER)
    assert post(bridge, payload(identity_id="before")) is not None
    wait_for(lambda: "before" in recorded_ids(tmp_path), what="the first event recorded")
    [child] = plugin_pids(bridge)
    os.kill(child, signal.SIGKILL)
    # Started again after a 1 s pause: time enough to see it said, and to post meanwhile.
    health = wait_for(
        lambda: (h := bridge.health())["status"] == "degraded" and h,
        5,
        what="/healthz to say the plugins are down",
    )
    assert "the plugin process exited" in health["plugins"]["recorder"]["error"]
    started = time.perf_counter()
    answers = [bridge.post(payload=payload(identity_id=f"while-down-{n}")) for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert time.perf_counter() - started < 1.0, "the receiver waited for the plugins"
    lines = wait_for(
        lambda: (
            (r := recorded_ids(tmp_path))
            and {f"while-down-{n}" for n in range(3)} <= r.keys()
            and r
        ),
        20,
        what="the events spooled while the plugin process was down",
    )
    # Spooled before this plugin process started: not live for it (doors stay shut).
    assert all(not lines[f"while-down-{n}"]["delivery"]["accepted_this_run"] for n in range(3))
    [again] = wait_for(lambda: plugin_pids(bridge), what="a new plugin process")
    assert again != child
    wait_for(lambda: bridge.health()["status"] == "ok", what="/healthz ok again")
    assert post(bridge, payload(identity_id="after")) is not None
    fresh = wait_for(lambda: recorded_ids(tmp_path).get("after"), what="a fresh event")
    assert fresh["delivery"]["accepted_this_run"] is True
    assert "the plugin process exited" in bridge.logs()


def test_no_door_opens_for_an_event_spooled_while_the_plugin_process_was_down(
    bridge_factory, tmp_path
):
    relay = RelayServer()
    try:
        bridge = bridge_factory(
            door_config(tmp_path, [door("front_gate", [ip(GATE)], relay)]), RECORDER
        )
        [child] = plugin_pids(bridge)
        os.kill(child, signal.SIGKILL)
        waiting = post(bridge, payload(score=0.95))  # an employee at the gate, now
        found = decision_for(tmp_path, waiting)
        assert (found["decision"], found["rule"]) == ("deny", "not_live"), found
        assert relay.seen() == []
        # The same door opens for the next employee: the plugin process is back.
        opened = decision_for(tmp_path, post(bridge, payload(score=0.95)))
        assert opened["decision"] == "open", opened
        wait_for(lambda: len(relay.seen()) == 1, what="one pulse")
    finally:
        relay.close()


def test_a_killed_bridge_takes_its_plugin_process_along(bridge_factory, tmp_path):
    work = tmp_path / "one"
    bridge = bridge_factory(recorder_config(tmp_path), RECORDER, workdir=work)
    [child] = plugin_pids(bridge)
    bridge.kill()
    wait_for(lambda: not alive(child), 5, what="the plugin process to end with the bridge")
    # The next bridge on the same spool starts and delivers.
    again = bridge_factory({**bridge.config}, RECORDER, workdir=work)
    assert post(again, payload(identity_id="next")) is not None
    wait_for(lambda: "next" in recorded_ids(tmp_path), what="the next bridge's plugins")


def test_a_wrong_plugin_section_stops_the_start_naming_the_key(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"spool: {{path: {tmp_path / 'data'}}}\nplugins:\n  syslog: {{no_such_key: 1}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "plugins.syslog.no_such_key: unknown key" in done.stderr


def test_plugins_as_threads_of_one_process_when_asked(bridge_factory, tmp_path):
    bridge = bridge_factory(recorder_config(tmp_path, plugin_process=False), RECORDER)
    assert plugin_pids(bridge) == []
    assert post(bridge, payload(identity_id="threaded")) is not None
    wait_for(lambda: "threaded" in recorded_ids(tmp_path), what="the event recorded")
    assert requests.get(bridge.url + "/", timeout=5).status_code == 200


def started_at(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rpartition(")")[2].split()[19])


def snapshot_config(tmp: Path, **core) -> dict:
    settings = recorder_config(tmp, **core)
    settings["plugins"]["snapshots"] = {"path": str(tmp / "snaps")}
    return settings


def photos(tmp: Path) -> int:
    """Photos saved in the day folders (`latest.jpg` beside them follows the newest)."""
    return len(list((tmp / "snaps").glob("*-*-*/*/*.jpg")))


def test_snapshots_runs_in_a_second_plugin_process_that_starts_again_alone(
    bridge_factory, tmp_path
):
    bridge = bridge_factory(snapshot_config(tmp_path), RECORDER)
    first, second = sorted(plugin_pids(bridge), key=started_at)
    assert post(bridge, payload(identity_id="before")) is not None
    wait_for(lambda: photos(tmp_path) == 1, what="the photo saved")
    wait_for(lambda: "before" in recorded_ids(tmp_path), what="the event recorded")
    # A hook's file is written before its worker counts the delivery.
    wait_for(lambda: delivered(bridge, "snapshots", "recorder") == [1, 1], what="both counted")
    # Each plugin as the process running it says, here and to a plugin (the status page).
    for plugins in (
        bridge.health()["plugins"],
        requests.get(bridge.url + "/status.json", timeout=5).json()["plugins"],
    ):
        assert plugins["snapshots"]["enabled"] and plugins["recorder"]["enabled"], plugins
        assert plugins["snapshots"]["delivered"] == 1 and plugins["recorder"]["delivered"] == 1
    os.kill(second, signal.SIGKILL)
    health = wait_for(
        lambda: (h := bridge.health())["status"] == "degraded" and h,
        5,
        what="/healthz to say a plugin process is down",
    )
    assert "the plugin process exited" in health["plugins"]["snapshots"]["error"]
    assert health["plugins"]["recorder"]["state"] == "ok"
    post(bridge, payload(identity_id="while-down"))
    # The first process goes on; the second, started again, catches up from the spool.
    wait_for(lambda: "while-down" in recorded_ids(tmp_path), what="recorded meanwhile")
    wait_for(lambda: photos(tmp_path) == 2, 20, what="the photo saved after the restart")
    again = wait_for(lambda: len(p := plugin_pids(bridge)) == 2 and p, what="two processes")
    assert first in again and second not in again
    wait_for(lambda: bridge.health()["status"] == "ok", what="/healthz ok again")
    assert "the process of snapshots: the plugin process exited" in bridge.logs()


def test_one_plugin_process_for_every_plugin_when_asked(bridge_factory, tmp_path):
    bridge = bridge_factory(snapshot_config(tmp_path, second_plugin_process=False), RECORDER)
    assert len(plugin_pids(bridge)) == 1
    assert post(bridge, payload(identity_id="one")) is not None
    wait_for(lambda: photos(tmp_path) == 1, what="the photo saved")
    wait_for(lambda: delivered(bridge, "snapshots") == [1], what="the delivery counted")
    assert bridge.health()["plugins"]["snapshots"]["enabled"]


def test_a_page_that_raises_is_answered_500_and_its_traceback_logged(bridge_factory, tmp_path):
    slow = {"entered": str(tmp_path / "entered"), "release": str(tmp_path / "release")}
    config = recorder_config(tmp_path)
    config["plugins"]["slow"] = slow
    bridge = bridge_factory(config, plugins={**RECORDER, "slow": "tests.slow_page:SlowPage"})
    answer = requests.get(bridge.url + "/broken", timeout=10)
    assert answer.status_code == 500
    assert answer.json()["message"] == "plugin page failed"
    wait_for(lambda: "page broke on purpose" in bridge.logs(), 10, what="the traceback logged")
    assert "Traceback" in bridge.logs()
