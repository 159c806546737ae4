"""/healthz is open to anyone: a plugin's error message must not carry an event's person
data there, while the guarded status page keeps the whole message for the administrator."""

from __future__ import annotations

import requests

from sophonfog_bridge import samples

from .conftest import wait_for

NAME, IDENTITY = "Zhang Weiqiang", "emp-4411"


def test_a_plugin_error_quoting_a_person_stays_off_healthz(bridge_factory):
    bridge = bridge_factory(
        {"plugins": {"mqtt": {"enabled": False}, "syslog": {"enabled": False}}},
        plugins={"quoting": "tests.failing_plugin:QuotingFailure"},
    )
    payload = samples.event_payload("v2r2", identity_name=NAME, identity_id=IDENTITY)
    assert bridge.post(payload=payload).status_code == 200
    wait_for(
        lambda: bridge.health()["plugins"]["quoting"]["failed"] == 1,
        15,
        what="the plugin gave up on the event",
    )
    text = requests.get(bridge.url + "/healthz", timeout=5).text
    assert NAME not in text and IDENTITY not in text, text
    assert bridge.health()["plugins"]["quoting"]["last_error"] == "ValueError"
    # The status page (loopback is a viewer by default) has the whole message.
    page = requests.get(bridge.url + "/status.json", timeout=5).json()
    assert NAME in str(page), page
