"""`configure-box` against the V5R7 and V6 box emulators (real sockets), and the box's
upload retry after a 503 from a real bridge process."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from sophonfog_bridge.emulator import EmulatedBox

from .conftest import ROOT, wait_for
from .hostile_support import RECORDER, config
from .recorder import read_lines

BRIDGE = "http://10.0.0.9:9528"
HISTORY = BRIDGE + "/EventServer/api/SophonFogHistoryEvent"
STATUS = BRIDGE + "/DeviceStatus"
SECRET = "s3cret-Pass!"
SETTERS = ("setconfigs", "setsystemmonitorconfig", "HistoryEventUrl", "api/monitor")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(params=["v5", "v6"])
def box(request) -> Iterator[EmulatedBox]:
    with EmulatedBox(firmware=request.param, password=SECRET) as emulated:
        yield emulated


def config_file(tmp_path: Path, box: EmulatedBox, password: str = SECRET) -> str:
    entry = {
        "host": box.host,
        "name": "lobby",
        "api_port": box.api_port,
        "ws_port": box.ws_port,
        "system_port": box.system_port,
        "username": "admin",
        "password": password,
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({"boxes": [entry]}))
    return str(path)


def settings_sent(box: EmulatedBox) -> list[dict]:
    return [r for r in box.requests if r.get("method") == "POST" and r["path"].endswith(SETTERS)]


def test_configure_box_sets_what_the_docs_say(box, tmp_path):
    run = cli("configure-box", "--config", config_file(tmp_path, box), "--url", BRIDGE)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert f"firmware {box.firmware} (probed)" in out and "logged in as admin" in out
    assert SECRET not in out, "the password was printed"
    assert out.count("box answered HTTP 200") == 2, out
    if box.firmware == "v6":
        assert {
            k: box.config[k] for k in ("HISTORY_EVENT_UPLOAD_URL", "HISTORY_REPORT_PEROID")
        } == {
            "HISTORY_EVENT_UPLOAD_URL": HISTORY,
            "HISTORY_REPORT_PEROID": 5,
        }
        assert box.config["MEDIA_DEVICE_MONITOR_URL"] == STATUS
        assert box.config["MEDIA_DEVICE_MONITOR_REPORT_PEROID"] == 60
    else:
        assert box.config["HISTORY_UPLOAD_EVENT_URL"] == HISTORY + ","
        assert box.config["HISTORY_CONTENT_TYPE"] == "json"
        assert box.config["HISTORY_EVENT_NEED_SPOT_PIC"] is True
        assert box.config["REPORTED_PEROID"] == 5
    assert box.monitor_config["urls"] == [STATUS] and box.monitor_config["period"] == 60

    # Again: nothing doubles, the lists still hold our URL once.
    assert (
        cli("configure-box", "--config", config_file(tmp_path, box), "--url", BRIDGE).returncode
        == 0
    )
    assert box.monitor_config["urls"] == [STATUS]


def test_dry_run_sets_nothing(box, tmp_path):
    before, monitor = box.config, box.monitor_config
    run = cli("configure-box", "--config", config_file(tmp_path, box), "--url", BRIDGE, "--dry-run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("dry run: nothing sent") == 2 and HISTORY in run.stdout
    assert SECRET not in run.stdout + run.stderr
    assert settings_sent(box) == [] and box.config == before and box.monitor_config == monitor


def test_other_receivers_are_kept_or_replaced_only_when_asked(box, tmp_path):
    other = "http://10.0.0.5:8080/monitor"
    box.state.settings.set_monitor([other], 20)
    run = cli("configure-box", "--config", config_file(tmp_path, box), "--url", BRIDGE)
    assert run.returncode == 0 and f"keeps {other}" in run.stdout, run.stdout + run.stderr
    assert box.monitor_config["urls"] == [other, STATUS]
    if box.firmware == "v6":
        box.set_config({"HISTORY_EVENT_UPLOAD_URL": "http://10.0.0.5/history"})
        run = cli("configure-box", "--config", config_file(tmp_path, box), "--url", BRIDGE)
        assert "HISTORY_EVENT_UPLOAD_URL stays http://10.0.0.5/history" in run.stdout
        assert box.config["HISTORY_EVENT_UPLOAD_URL"] == "http://10.0.0.5/history"
        args = ("--config", config_file(tmp_path, box), "--url", BRIDGE, "--replace")
        assert cli("configure-box", *args).returncode == 0
        assert box.config["HISTORY_EVENT_UPLOAD_URL"] == HISTORY


def test_a_wrong_password_is_reported_with_the_boxs_code(box, tmp_path):
    path = config_file(tmp_path, box, password="wrong-Secret9")
    run = cli("configure-box", "--config", path, "--url", BRIDGE)
    assert run.returncode == 2
    code = "PASSWORD_ERROR" if box.firmware == "v6" else "401"
    assert f"login as admin refused: {code}" in run.stderr, run.stderr
    assert "wrong-Secret9" not in run.stdout + run.stderr
    assert settings_sent(box) == []


def test_flags_without_a_config_and_a_given_firmware(tmp_path):
    with EmulatedBox(firmware="v6") as box:
        args = ("--box", box.api_url, "--firmware", "v6", "--url", BRIDGE)
        run = cli("configure-box", *args, "--system-port", str(box.system_port))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "(probed)" not in run.stdout and "logged in" not in run.stdout
        assert box.config["HISTORY_EVENT_UPLOAD_URL"] == HISTORY
        assert box.monitor_config["urls"] == [STATUS]
        box.stop()
        run = cli("configure-box", *args, "--system-port", str(box.system_port))
        assert run.returncode == 2 and "cannot reach http://127.0.0.1:" in run.stderr


def test_upload_retry_after_a_503_delivers_the_event(bridge_factory, tmp_path):
    """The spool's file size limit (as in test_faults) makes the bridge answer 503; the
    emulator keeps its history cursor and delivers the event once the bridge can write."""
    bridge = bridge_factory(config(tmp_path), plugins=RECORDER)
    assert bridge.post(payload={"identity_id": "warm", "timestamp": 1_700_000_000_000}).ok
    segment = sorted((Path(bridge.config["spool"]["path"]) / "segments").glob("*.seg"))[-1]
    soft, hard = resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE, (segment.stat().st_size + 500, hard))
    with EmulatedBox(firmware="v6", push_period=0.2) as box:
        event = box.emit(identity_id="80001")
        box.set_config(
            {"HISTORY_EVENT_UPLOAD_URL": bridge.url + "/EventServer/api/SophonFogHistoryEvent"}
        )
        try:
            wait_for(lambda: [u for u in box.uploads if u["status"] == 503], 10, what="a 503")
            assert box.history_cursor == 0, "the box moved its cursor past a refused upload"
        finally:
            resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
        wait_for(lambda: box.history_cursor == 1, 10, what="the retried upload")
    wait_for(bridge.drained, 10, what="delivery")
    got = [r for r in read_lines(tmp_path / "rec.jsonl") if r["identity_id"] == "80001"]
    assert len(got) == 1 and got[0]["kind"] == "history", got
    stamp = datetime.fromisoformat(got[0]["timestamp"]).timestamp()
    assert round(stamp * 1000) == event["timestamp_ms"]
    assert got[0]["spot_pic"] is not None, "the scene photo of the upload was lost"
