"""The spool's promises on real bridge processes: one owner per folder, commands that only
read, and corrupt records that cost themselves and nothing after them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from sophonfog_bridge.samples import event_payload, jpeg
from sophonfog_bridge.spool import HEADER

from .conftest import ROOT, free_port, wait_for
from .hostile_support import RECORDER, config
from .mqtt_tap import Tap

BASE = "sfbspool"
FACE = jpeg(32, 32, seed=32)


def event(identity: str, scene: bytes) -> dict:
    return event_payload("v2r2", identity_id=identity, scene=scene, registered=FACE, face=FACE)


def mqtt(broker) -> dict:
    return {
        "host": "127.0.0.1",
        "port": broker.port,
        "base_topic": BASE,
        "discovery": False,
        "retry_s": 0.2,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
    }


def published(tap: Tap) -> set[str]:
    events = tap.matching(lambda m: m.topic.startswith(BASE) and m.topic.endswith("/event"))
    return {json.loads(m.payload)["identity_id"] for m in events}


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder` with its bytes and mtime: what "untouched" means."""
    found: dict[str, tuple] = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        body = path.read_bytes() if path.is_file() else None
        found[str(path.relative_to(folder))] = (stat.st_mtime_ns, body)
    return found


def frames(segment: Path) -> list[tuple[int, int, int]]:
    """(seq, payload offset, payload length) of each frame in a segment file."""
    data = segment.read_bytes()
    found, offset = [], 0
    while offset + HEADER.size <= len(data):
        _, length, _, seq = HEADER.unpack_from(data, offset)
        found.append((seq, offset + HEADER.size, length))
        offset += HEADER.size + length
    return found


def flip_payload_byte(spool_dir: Path, seq: int) -> Path:
    for segment in sorted((spool_dir / "segments").glob("*.seg")):
        for frame_seq, start, length in frames(segment):
            if frame_seq == seq:
                data = bytearray(segment.read_bytes())
                data[start + length // 2] ^= 0x5A
                segment.write_bytes(bytes(data))
                return segment
    raise AssertionError(f"no record {seq} in the spool")


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SOPHONFOG_BRIDGE_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- one bridge per spool folder ------------------------------------------------------------


def test_a_second_bridge_on_the_same_spool_exits_naming_the_folder_and_the_owner(
    bridge_factory, tmp_path
):
    first = bridge_factory(config(tmp_path), plugins=RECORDER)
    assert first.post(payload=event("one", FACE)).status_code == 200
    spool_dir = Path(first.config["spool"]["path"])
    cfg = config(tmp_path, http={"port": free_port()})
    cfg["spool"] = {"path": str(spool_dir)}
    second = bridge_factory(cfg, plugins=RECORDER, wait=False)
    code = second.proc.wait(15)
    assert code != 0
    logs = second.logs()
    assert str(spool_dir) in logs and str(first.proc.pid) in logs, logs[-2000:]
    assert "Traceback" not in logs
    # The owner is unharmed and keeps accepting.
    assert first.post(payload=event("two", FACE)).status_code == 200
    assert first.health()["spool_last_seq"] == 2
    assert first.stop() == 0
    # Once the owner is gone the folder is free again.
    again = bridge_factory(cfg, plugins=RECORDER, workdir=second.workdir)
    assert again.health()["spool_last_seq"] == 2
    assert again.stop() == 0


# ---- commands other than `run` leave the data folder alone ----------------------------------


def check_config(bridge):
    """`check-config` on a test bridge's own config, as its user would run it."""
    return cli(
        "check-config",
        "--config",
        str(bridge.config_path),
        "--plugin",
        f"recorder={RECORDER['recorder']}",
    )


def test_check_config_leaves_a_torn_spool_untouched(bridge_factory, tmp_path):
    bridge = bridge_factory(config(tmp_path), plugins=RECORDER)
    for n in range(3):
        assert bridge.post(payload=event(f"c{n}", FACE)).status_code == 200
    wait_for(bridge.drained, 10, what="the recorder drained")
    bridge.kill()
    data = Path(bridge.config["spool"]["path"])
    segment = sorted((data / "segments").glob("*.seg"))[-1]
    with open(segment, "ab") as handle:
        handle.write(b"SFB1\x40\x00\x00\x00torn")  # a write cut short by the kill
    before = snapshot(data)
    result = check_config(bridge)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spool"]["path"] == str(data)
    assert snapshot(data) == before, "check-config changed the data folder"
    # `plugins` reads the config too; it must not touch the folder either.
    listed = cli("plugins", "--config", str(bridge.config_path), "--json")
    assert listed.returncode == 0, listed.stderr
    assert snapshot(data) == before, "plugins changed the data folder"


def test_check_config_beside_a_live_bridge_changes_nothing(bridge_factory, tmp_path):
    bridge = bridge_factory(config(tmp_path), plugins=RECORDER)
    for n in range(3):
        assert bridge.post(payload=event(f"l{n}", FACE)).status_code == 200
    wait_for(bridge.drained, 10, what="the recorder drained")
    data = Path(bridge.config["spool"]["path"])
    # The bridge writes what it learned of devices in the background: let it settle first.
    wait_for(lambda: (data / "devices.json").exists(), 10, what="devices.json written")
    before = snapshot(data)
    result = check_config(bridge)
    assert result.returncode == 0, result.stderr
    assert snapshot(data) == before
    assert bridge.post(payload=event("l3", FACE)).status_code == 200
    assert bridge.health()["spool_last_seq"] == 4
    assert bridge.stop() == 0


# ---- a corrupt record costs that record only ------------------------------------------------


def backlog_then_stop(bridge_factory, mosquitto, tmp_path, count, scene, spool=None):
    """A bridge whose broker is down holds `count` events for mqtt, then stops cleanly."""
    mosquitto.stop()
    cfg = config(tmp_path, mqtt=mqtt(mosquitto))
    cfg["spool"] = dict(spool or {})
    bridge = bridge_factory(cfg, plugins=RECORDER)
    sent = [f"q{n}" for n in range(count)]
    for identity in sent:
        assert bridge.post(payload=event(identity, scene)).status_code == 200
    wait_for(lambda: bridge.health()["plugins"]["mqtt"]["backlog"] == count, 10, what="backlog")
    assert bridge.stop() == 0
    return bridge, cfg, sent


def restart_with_broker(bridge_factory, mosquitto, bridge, cfg):
    mosquitto.start()
    tap = Tap("127.0.0.1", mosquitto.port, (f"{BASE}/#",))
    again = bridge_factory(cfg, plugins=RECORDER, workdir=bridge.workdir)
    return again, tap


def assert_reported_once(again, lost: int) -> None:
    health = again.health()
    assert health["spool_corrupt_records"] == 1
    assert health["status"] == "degraded"
    errors = [line for line in again.logs().splitlines() if "corrupt" in line and "ERROR" in line]
    assert len(errors) == 1, errors
    assert f"{lost}..{lost}" in errors[0] or f"record {lost}" in errors[0], errors[0]


def test_corrupt_record_in_the_active_segment_costs_only_itself(
    bridge_factory, mosquitto, tmp_path
):
    bridge, cfg, sent = backlog_then_stop(bridge_factory, mosquitto, tmp_path, 20, FACE)
    flip_payload_byte(Path(bridge.config["spool"]["path"]), 9)
    again, tap = restart_with_broker(bridge_factory, mosquitto, bridge, cfg)
    expected = set(sent) - {"q8"}
    wait_for(
        lambda: expected <= published(tap), 20, what=f"19 of 20 on MQTT, got {len(published(tap))}"
    )
    assert "q8" not in published(tap)
    wait_for(lambda: again.health()["plugins"]["mqtt"]["backlog"] == 0, 10, what="drained")
    assert_reported_once(again, 9)
    text = requests.get(again.url + "/metrics", timeout=5).text
    assert "sophonfog_spool_corrupt_records_total 1.0" in text
    # Appending after the damaged spot goes on as before.
    assert again.post(payload=event("after", FACE)).status_code == 200
    wait_for(lambda: "after" in published(tap), 10, what="a new event after the corruption")
    assert again.stop() == 0
    tap.close()


def test_corrupt_record_in_an_older_segment_costs_only_itself_and_no_cpu(
    bridge_factory, mosquitto, tmp_path
):
    scene = jpeg(640, 480, seed=33)
    bridge, cfg, sent = backlog_then_stop(
        bridge_factory, mosquitto, tmp_path, 30, scene, spool={"segment_mb": 0.25}
    )
    data = Path(bridge.config["spool"]["path"])
    segments = sorted((data / "segments").glob("*.seg"))
    assert len(segments) >= 4
    damaged = flip_payload_byte(data, 6)
    assert damaged != segments[-1], "record 6 must be in an older segment"
    again, tap = restart_with_broker(bridge_factory, mosquitto, bridge, cfg)
    expected = set(sent) - {"q5"}
    wait_for(
        lambda: expected <= published(tap), 30, what=f"29 of 30 on MQTT, got {len(published(tap))}"
    )
    wait_for(lambda: again.health()["plugins"]["mqtt"]["backlog"] == 0, 10, what="backlog 0")
    assert_reported_once(again, 6)
    # Idle now: the reader must wait, not spin on the bad frame.
    start = cpu_seconds(again.proc.pid)
    time.sleep(3)
    used = cpu_seconds(again.proc.pid) - start
    assert used < 1.0, f"an idle bridge used {used:.2f} s of CPU in 3 s"
    assert again.stop() == 0
    tap.close()
