"""`configure-box` against a fake of the box API on 127.0.0.1 that records requests, and
`replay` against a real bridge."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from sophonfog_bridge import samples

from .conftest import ROOT, free_port, wait_for
from .examples_receiver import Receiver
from .recorder import read_lines

PATH = "/SophonFogSys/api/EventServerUrl"
OTHERS = ["http://10.0.0.5:9528/RealTimeEvent", "http://10.0.0.6:8080/events"]
OURS = "http://127.0.0.1:9528/RealTimeEvent"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


class FakeBox(Receiver):
    """The box's settings API: GET tells the receivers (when `readable`), POST sets them."""

    def __init__(self, receivers: list[str], readable: bool = True, post_status=(200, 0)):
        self.settings = {"event_server_url": list(receivers), "real_need_reg_pic": True}
        self.readable = readable
        self.post_status = post_status
        super().__init__(answers={("GET", PATH): self._get, ("POST", PATH): self._post})

    def _get(self, body: bytes):
        if not self.readable:
            return 404, {"status": 404, "message": "Not Found"}
        return 200, {"status": 0, "message": "SUCCESS", "data": dict(self.settings)}

    def _post(self, body: bytes):
        http_status, code = self.post_status
        if http_status == 200 and code == 0:
            self.settings = json.loads(body)
        return http_status, {"status": code, "message": "SUCCESS" if code == 0 else "bad request"}

    def posts(self) -> list[dict]:
        return [r.json() for r in self.received() if (r.method, r.path) == ("POST", PATH)]


@pytest.fixture
def box_factory() -> Iterator:
    boxes: list[FakeBox] = []

    def make(*args, **kwargs) -> FakeBox:
        boxes.append(FakeBox(*args, **kwargs).start())
        return boxes[-1]

    yield make
    for box in boxes:
        box.stop()


def test_configure_box_keeps_other_receivers(box_factory):
    box = box_factory(OTHERS)
    run = cli("configure-box", "--box", box.url, "--url", OURS)
    assert run.returncode == 0, run.stderr
    assert [r.method for r in box.received()] == ["GET", "POST"]
    assert box.posts() == [
        {"event_server_url": [*OTHERS, OURS], "real_need_reg_pic": True, "content-type": "json"}
    ]
    assert ", ".join(OTHERS) in run.stdout  # what the box had
    assert 'box answered HTTP 200: {"status": 0, "message": "SUCCESS"}' in run.stdout

    # Again, with the other options and the box address without scheme or default port:
    # our URL is already there, so it is not added twice.
    run = cli(
        "configure-box",
        "--box",
        f"127.0.0.1:{box.port}",
        "--url",
        OURS,
        "--form-data",
        "--no-reg-pic",
    )
    assert run.returncode == 0, run.stderr
    assert box.posts()[-1] == {
        "event_server_url": [*OTHERS, OURS],
        "real_need_reg_pic": False,
        "content-type": "form-data",
    }


def test_configure_box_replace_and_dry_run(box_factory):
    box = box_factory(OTHERS)
    run = cli("configure-box", "--box", box.url, "--url", OURS, "--replace", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "dry run" in run.stdout and f'"event_server_url": ["{OURS}"]' in run.stdout
    assert [r.method for r in box.received()] == ["GET"]

    run = cli("configure-box", "--box", box.url, "--url", OURS, "--replace")
    assert run.returncode == 0, run.stderr
    assert box.posts()[-1]["event_server_url"] == [OURS]


def test_configure_box_that_will_not_tell_its_receivers(box_factory):
    box = box_factory(OTHERS, readable=False)
    run = cli("configure-box", "--box", box.url, "--url", OURS)
    assert run.returncode == 2
    assert "cannot read the box's current receivers" in run.stderr
    assert "HTTP 404" in run.stderr and "--replace" in run.stderr
    assert box.posts() == [], "nothing may be changed when the others would be lost"

    run = cli("configure-box", "--box", box.url, "--url", OURS, "--replace")
    assert run.returncode == 0, run.stderr
    assert box.posts() == [
        {"event_server_url": [OURS], "real_need_reg_pic": True, "content-type": "json"}
    ]


def test_configure_box_reports_refusals_and_unreachable_boxes(box_factory):
    box = box_factory(OTHERS, post_status=(200, 1))
    run = cli("configure-box", "--box", box.url, "--url", OURS)
    assert run.returncode == 1
    assert 'box answered HTTP 200: {"status": 1, "message": "bad request"}' in run.stdout

    box.post_status = (500, 500)
    run = cli("configure-box", "--box", box.url, "--url", OURS)
    assert run.returncode == 1 and "box answered HTTP 500" in run.stdout

    run = cli("configure-box", "--box", f"http://127.0.0.1:{free_port()}", "--url", OURS)
    assert run.returncode == 2
    assert "cannot reach http://127.0.0.1:" in run.stderr


def test_replay_posts_saved_events_with_progress(bridge_factory, tmp_path):
    token = "replay-token-1"
    seen = tmp_path / "seen.jsonl"
    bridge = bridge_factory(
        {
            "http": {"token": token},
            "plugins": {
                **{n: {"enabled": False} for n in ("mqtt", "snapshots", "syslog", "status")},
                "recorder": {"path": str(seen)},
            },
        },
        plugins={"recorder": "tests.recorder:Recorder"},
    )
    old = 1_700_000_000_000

    def payload(i: int, shape: str = "v2r2") -> dict:
        return samples.event_payload(shape, identity_id=f"r{i}", timestamp_ms=old + i)

    one = tmp_path / "one.json"
    one.write_text(json.dumps(payload(0)))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([payload(1), payload(2, "v2r1")]))
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps(payload(3)) + "\n\n" + json.dumps(payload(4, "ws")) + "\n")
    files = [str(one), str(many), str(lines)]
    url = bridge.url + "/RealTimeEvent"

    run = cli("replay", *files, "--url", url)  # no token: the bridge refuses every event
    assert run.returncode == 1
    assert "0 sent, 5 failed" in run.stdout and "HTTP 401" in run.stderr

    run = cli("replay", *files, "--url", url, "--token", token)
    assert run.returncode == 0, run.stderr
    assert "5 sent, 0 failed" in run.stdout
    assert f"replay [{'#' * 30}] 5/5 ok 5 failed 0" in run.stderr
    wait_for(lambda: len(read_lines(seen)) == 5, what="five events recorded")
    assert [e["identity_id"] for e in read_lines(seen)] == ["r0", "r1", "r2", "r3", "r4"]

    # The same files again are duplicates; --now makes them new events of today.
    before = time.time()
    run = cli("replay", *files, "--url", url, "--token", token, "--now", "--quiet")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    wait_for(lambda: len(read_lines(seen)) == 10, what="five restamped events")
    for event in read_lines(seen)[5:]:
        recorded = datetime.fromisoformat(event["timestamp"]).timestamp()
        assert recorded >= int(before) - 1, event["timestamp"]


def test_replay_rejects_files_that_are_not_events(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"identity_id": "1"}\nnot json\n')
    run = cli("replay", str(bad), "--url", f"http://127.0.0.1:{free_port()}/RealTimeEvent")
    assert run.returncode == 2
    assert "bad.jsonl:2: not JSON" in run.stderr

    scalar = tmp_path / "scalar.json"
    scalar.write_text("[1, 2]")
    run = cli("replay", str(scalar))
    assert run.returncode == 2 and "item 1 is not a JSON object" in run.stderr

    unreachable = tmp_path / "one.json"
    unreachable.write_text(json.dumps(samples.event_payload()))
    run = cli("replay", str(unreachable), "--url", f"http://127.0.0.1:{free_port()}/x")
    assert run.returncode == 1 and "cannot reach" in run.stderr
