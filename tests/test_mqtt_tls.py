"""The mqtt plugin over TLS, against a real Mosquitto with a certificate made by openssl.

TLS hands the plugin's socket work decrypted bytes the socket itself no longer signals:
photos span several TLS records, and commands come in while nothing is published.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sophonfog_bridge import samples

from .conftest import Mosquitto, free_port, port_open, wait_for
from .mqtt_tap import Tap
from .test_mqtt import EP1, RELAY_TOPIC, _hash, mqtt_config, with_remote_door

BASE = "sophonfog/akopkkkkk__192-168-1-101-" + _hash(EP1)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def certificates(folder: Path) -> Path:
    """A CA, and a certificate it signed for 127.0.0.1; returns the folder."""
    folder.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
            cwd=folder)  # fmt: skip
    return folder


class TlsMosquitto(Mosquitto):
    """Plain TCP on `port` (for the test's subscriber), TLS on `tls_port` (for the bridge)."""

    def start(self) -> TlsMosquitto:
        certs = certificates(self.workdir / "certs")
        self.ca = certs / "ca.pem"
        self.tls_port = free_port()
        conf = self.workdir / "tls.conf"
        # `user root`: Mosquitto started as root would read the key as `mosquitto`, which
        # may not enter the test's private temporary folder (ignored when not root).
        conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\n"
            f"keyfile {certs / 'server.key'}\n"
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: port_open(self.port) and port_open(self.tls_port), 10, what="mosquitto")
        return self


@pytest.fixture
def tls_broker(tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    broker = TlsMosquitto(tmp_path).start()
    yield broker
    broker.stop()


def test_events_photos_and_door_commands_over_tls(tls_broker, bridge_factory):
    tap = Tap(tls_broker.host, tls_broker.port)
    config = with_remote_door(mqtt_config(tls_broker))
    config["plugins"]["mqtt"].update(port=tls_broker.tls_port, tls={"ca_certs": str(tls_broker.ca)})
    bridge = bridge_factory(config)
    wait_for(lambda: [m for m in tap.on("sophonfog/status") if m.text == "online"], 15)

    scenes = []
    for seed in range(5):
        scene = samples.jpeg_of_size(60_000 + seed, seed=seed)  # ~4 TLS records each
        payload = samples.event_payload("v2r1", person_type="visitor", scene=scene,
                                        timestamp_ms=1_700_000_000_000 + seed * 1000)  # fmt: skip
        assert bridge.post("/RealTimeEvent", payload).ok
        scenes.append(scene)
    wait_for(lambda: len(tap.on(BASE + "/event")) == 5, 15, what="five events over TLS")
    assert [m.payload for m in tap.on(BASE + "/snapshot")] == scenes
    wait_for(bridge.drained, 10, what="the mqtt plugin done")

    # A command arrives while nothing is being published: the network thread reads it.
    tap.publish(BASE + "/open_door", "front")
    [pulse] = wait_for(lambda: tap.on(RELAY_TOPIC), 10, what="the relay command over TLS")
    assert pulse.text == "pulse"
    access = wait_for(lambda: tap.on("sophonfog/door/front/access"), 10, what="the decision")
    assert json.loads(access[0].payload)["decision"] == "open"
    assert bridge.health()["plugins"]["mqtt"]["connected"] is True
    tap.close()
