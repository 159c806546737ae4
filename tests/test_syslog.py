"""The syslog plugin on a real bridge process, against real UDP, TCP and unix receivers."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from sophonfog_bridge.samples import event_payload, jpeg

from .conftest import wait_for
from .recorder import read_lines
from .syslog_receiver import (
    TcpReceiver,
    UdpReceiver,
    UnixReceiver,
    parse_5424,
    split_octet_counted,
)

PLUGINS = {
    "recorder": "tests.recorder:Recorder",
    "announcer": "tests.syslog_announcer:Announcer",
}
SCENE = jpeg(64, 48, seed=9)
HOSTNAME = socket.gethostname()
SD_ID = "sophonfog@32473"
HOSTILE = 'Zoë "Q" ]\\ 小明\nnext'


def config(tmp_path: Path, **syslog) -> dict:
    return {
        "plugins": {
            "mqtt": {"enabled": False},
            "snapshots": {"enabled": False},
            "recorder": {"path": str(tmp_path / "rec.jsonl")},
            "syslog": syslog,
        }
    }


def post(bridge, **kwargs) -> str:
    answer = bridge.post(payload=event_payload("v2r1", scene=SCENE, **kwargs))
    assert answer.status_code == 200, answer.text
    return answer.json()["event_id"]


@pytest.fixture
def udp():
    receiver = UdpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def tcp():
    receiver = TcpReceiver()
    yield receiver
    receiver.close()


def test_udp_rfc5424_events_and_door_decisions(bridge_factory, tmp_path, udp):
    bridge = bridge_factory(
        config(
            tmp_path,
            address=f"udp://127.0.0.1:{udp.port}",
            facility="local3",
            severities={"visitor": "debug"},
        ),
        plugins=PLUGINS,
    )
    people = [
        ("e1", "employee", "小明"),
        ("s1", "stranger", ""),
        ("b1", "blacklist", HOSTILE),
        ("v1", "visitor", "Visitor Vic"),
    ]
    ids = {
        identity: post(bridge, identity_id=identity, person_type=ptype, identity_name=name)
        for identity, ptype, name in people
    }
    # 4 events + 4 door decisions (the announcer decides on each event).
    wait_for(lambda: len(udp.frames) >= 8, 10, what="8 syslog datagrams")
    wait_for(bridge.drained, 10, what="the bridge to drain")
    assert len(udp.frames) == 8
    messages = [parse_5424(frame) for frame in udp.frames]

    for frame, msg in zip(udp.frames, messages, strict=True):
        assert not frame.endswith((b"\x00", b"\n")), frame[-10:]
        assert msg.facility == 19  # local3
        assert msg.hostname == HOSTNAME
        assert msg.app == "sophonfog-bridge"
        assert msg.procid == str(bridge.proc.pid)
        assert msg.has_bom and "\n" not in msg.msg
        assert list(msg.sd) == [SD_ID]
        moment = datetime.fromisoformat(msg.timestamp.replace("Z", "+00:00"))
        assert abs((datetime.now(timezone.utc) - moment).total_seconds()) < 120

    events = {m.sd[SD_ID]["identity_id"]: m for m in messages if m.msgid == "EVENT"}
    doors = {m.sd[SD_ID]["identity_id"]: m for m in messages if m.msgid == "DOOR"}
    assert set(events) == set(doors) == set(ids)
    expected_severity = {"e1": 6, "s1": 5, "b1": 4, "v1": 7}  # info, notice, warning, debug
    for identity, ptype, name in people:
        event = events[identity]
        sd = event.sd[SD_ID]
        assert event.severity == expected_severity[identity], identity
        assert sd["event_id"] == ids[identity]
        assert sd["person_type"] == ptype and sd["kind"] == "realtime"
        assert sd["device"] == "AKOPKKKKK__192.168.1.101"
        assert sd["score"] == "0.920"
        assert sd.get("name", "") == name.replace("\n", " ")
    assert "小明 (employee, id e1)" in events["e1"].msg
    # The hostile name survives escaping byte for byte (bar the line break).
    assert events["b1"].sd[SD_ID]["name"] == 'Zoë "Q" ]\\ 小明 next'
    assert 'Zoë "Q" ]\\ 小明 next' in events["b1"].msg

    door_severity = {"e1": 5, "s1": 6, "b1": 3, "v1": 6}  # open notice, deny info, error err
    for identity, door in doors.items():
        sd = door.sd[SD_ID]
        assert door.severity == door_severity[identity], identity
        assert sd["door"] == "front" and sd["event_id"] == ids[identity]
        assert sd["reason"].startswith('rule "a]b\\c" said ')
        assert sd["decision"] in door.msg
    assert doors["e1"].sd[SD_ID]["decision"] == "open"

    # The other plugins got everything: syslog is one consumer among others.
    assert len(read_lines(tmp_path / "rec.jsonl")) == 8
    health = bridge.health()["plugins"]["syslog"]
    assert health["sent"] == 8 and health["dropped"] == 0 and health["failed"] == 0
    assert bridge.stop() == 0


def test_tcp_octet_counting_waits_while_unreachable_then_reconnects(bridge_factory, tmp_path, tcp):
    bridge = bridge_factory(
        config(tmp_path, address=f"tcp://127.0.0.1:{tcp.port}"),
        plugins={"recorder": PLUGINS["recorder"]},
    )
    first = post(bridge, identity_id="t1", identity_name="小明")
    wait_for(lambda: split_octet_counted(tcp.stream())[0], 10, what="the first message")

    tcp.close()  # the daemon goes away, with the bridge's connection
    second = post(bridge, identity_id="t2")
    third = post(bridge, identity_id="t3")
    # The recorder is not held up, while syslog keeps its messages in the spool.
    wait_for(lambda: len(read_lines(tmp_path / "rec.jsonl")) == 3, 10, what="recorder")
    wait_for(
        lambda: bridge.health()["plugins"]["syslog"]["state"] == "retrying",
        10,
        what="syslog to retry",
    )
    assert bridge.health()["plugins"]["syslog"]["backlog"] >= 2

    tcp.start()  # back on the same port
    wait_for(
        lambda: len(split_octet_counted(tcp.stream())[0]) >= 3, 20, what="the two waiting messages"
    )
    wait_for(bridge.drained, 10, what="syslog to catch up")
    messages, rest = split_octet_counted(tcp.stream())
    assert rest == b""
    parsed = [parse_5424(m) for m in messages]
    assert [m.sd[SD_ID]["event_id"] for m in parsed] == [first, second, third]
    assert all(m.msgid == "EVENT" for m in parsed)
    assert parsed[0].sd[SD_ID]["name"] == "小明" and parsed[0].msg.startswith("小明")
    assert tcp.connections == 2
    warnings = [
        line for line in bridge.logs().splitlines() if "WARNING" in line and "syslog" in line
    ]
    assert 1 <= len(warnings) <= 3, warnings  # one outage is reported, not every retry
    assert bridge.stop() == 0


def test_tcp_newline_framing_and_rfc3164(bridge_factory, tmp_path, tcp):
    bridge = bridge_factory(
        config(
            tmp_path,
            address=f"tcp://127.0.0.1:{tcp.port}",
            tcp_framing="newline",
            format="rfc3164",
            facility="auth",
        ),
        plugins={"recorder": PLUGINS["recorder"]},
    )
    ids = [post(bridge, identity_id=f"n{n}", identity_name=HOSTILE) for n in range(3)]
    wait_for(lambda: tcp.stream().count(b"\n") >= 3, 10, what="three lines")
    lines = tcp.stream().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    host = HOSTNAME.split(".")[0]
    pattern = re.compile(
        rf"^<(\d+)>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d {re.escape(host)} "
        rf"sophonfog-bridge\[{bridge.proc.pid}\]: EVENT (.*)$"
    )
    for line, event_id in zip(lines[:3], ids, strict=True):
        match = pattern.match(line.decode("utf-8"))
        assert match, line
        assert int(match.group(1)) == 4 * 8 + 6  # auth.info
        assert f'event_id="{event_id}"' in match.group(2)
        assert 'Zoë "Q" ]\\ 小明 next' in match.group(2)
    assert bridge.stop() == 0


def test_unix_socket_missing_daemon_drops_quietly_then_recovers(bridge_factory, tmp_path):
    folder = tempfile.mkdtemp(prefix="sfb-", dir="/tmp")  # short: AF_UNIX paths are limited
    path = os.path.join(folder, "log")
    bridge = bridge_factory(
        config(tmp_path, address=f"unix://{path}"), plugins={"recorder": PLUGINS["recorder"]}
    )
    for n in range(3):
        post(bridge, identity_id=f"u{n}")
    wait_for(lambda: len(read_lines(tmp_path / "rec.jsonl")) == 3, 10, what="recorder")
    wait_for(bridge.drained, 10, what="syslog not to wait for a missing local daemon")
    health = bridge.health()["plugins"]["syslog"]
    assert health["dropped"] == 3 and health["reachable"] is False and health["failed"] == 0
    syslog_warnings = [
        line for line in bridge.logs().splitlines() if "WARNING" in line and "syslog" in line
    ]
    assert len(syslog_warnings) == 1, syslog_warnings

    receiver = UnixReceiver(path)
    try:
        event_id = post(bridge, identity_id="u9", identity_name="小明")
        wait_for(lambda: receiver.frames, 10, what="a datagram on the unix socket")
        frame = receiver.frames[0].decode("utf-8")
        # Local sockets get the traditional format, without a hostname.
        assert re.match(
            rf"^<14>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d sophonfog-bridge\[{bridge.proc.pid}\]: "
            rf"EVENT 小明 \(employee, id u9\)",
            frame,
        ), frame
        assert f'event_id="{event_id}"' in frame
        wait_for(lambda: "reachable again" in bridge.logs(), 10, what="the recovery note")
    finally:
        receiver.close()
        os.unlink(path)
        os.rmdir(folder)
    assert bridge.stop() == 0


def test_default_config_on_a_machine_without_a_daemon(bridge_factory, tmp_path):
    """Enabled by default: /dev/log where it exists, else UDP to 127.0.0.1:514, quietly."""
    bridge = bridge_factory({"plugins": {"mqtt": {"enabled": False}}})
    for n in range(3):
        post(bridge, identity_id=f"d{n}")
    wait_for(bridge.drained, 10, what="syslog to deliver")
    health = bridge.health()["plugins"]["syslog"]
    expected = "/dev/log" if os.path.exists("/dev/log") else "udp://127.0.0.1:514"
    assert health["address"] == expected
    assert health["enabled"] and health["failed"] == 0 and health["state"] == "ok"
    assert health["sent"] + health["dropped"] == 3
    assert "Traceback" not in bridge.logs()
    assert bridge.stop() == 0


@pytest.mark.parametrize(
    "section, message",
    [
        ({"address": "http://x"}, "plugins.syslog.address"),
        ({"address": "unix://relative"}, "plugins.syslog.address"),
        ({"facility": "local9"}, "plugins.syslog.facility"),
        ({"severities": {"stranger": "loud"}}, "plugins.syslog.severities.stranger"),
        ({"severities": {"janitor": "info"}}, "plugins.syslog.severities.janitor"),
        ({"tcp_framing": "nul"}, "plugins.syslog.tcp_framing"),
        ({"sd_id": "no enterprise"}, "plugins.syslog.sd_id"),
        ({"port": 514}, "plugins.syslog.port: unknown key"),
    ],
)
def test_bad_config_is_refused_with_the_key(tmp_path, section, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"plugins": {"syslog": section}}))
    result = subprocess.run(
        [sys.executable, "-m", "sophonfog_bridge", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


def test_unix_stream_socket_gets_newline_terminated_messages(bridge_factory, tmp_path):
    """Some daemons listen on a stream socket: the datagram attempt falls back to it."""
    folder = tempfile.mkdtemp(prefix="sfb-", dir="/tmp")
    path = os.path.join(folder, "log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    received = bytearray()
    try:
        bridge = bridge_factory(
            config(tmp_path, address=f"unix://{path}"), plugins={"recorder": PLUGINS["recorder"]}
        )
        ids = [post(bridge, identity_id=f"s{n}") for n in range(2)]
        client, _ = server.accept()
        client.settimeout(0.5)

        def two_lines() -> bool:
            with contextlib.suppress(TimeoutError):
                received.extend(client.recv(65536))
            return received.count(b"\n") >= 2

        wait_for(two_lines, 10, what="two lines on the stream socket")
        client.close()
        lines = bytes(received).split(b"\n")
        assert lines[2:] == [b""]
        for line, event_id in zip(lines[:2], ids, strict=True):
            assert line.startswith(b"<14>") and f'event_id="{event_id}"'.encode() in line
        assert bridge.stop() == 0
    finally:
        server.close()
        os.unlink(path)
        os.rmdir(folder)


def test_closing_the_unix_transport_closes_its_stream_fallback():
    """shutdown() must release the stream connection a datagram socket fell back to."""
    from sophonfog_bridge.plugins.syslog.config import parse_address
    from sophonfog_bridge.plugins.syslog.transport import open_transport

    folder = tempfile.mkdtemp(prefix="sfb-", dir="/tmp")
    path = os.path.join(folder, "log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(5)
    try:
        transport = open_transport(parse_address(f"unix://{path}"), 2.0, "octet-counting")
        transport.send(b"<14>hello")
        client, _ = server.accept()
        client.settimeout(5)
        assert client.recv(64) == b"<14>hello\n"
        transport.close()
        assert client.recv(64) == b"", "the stream connection is still open after close()"
        client.close()
    finally:
        server.close()
        os.unlink(path)
        os.rmdir(folder)
