"""A record is done for the mqtt plugin only once the broker has acknowledged its messages.

A real Mosquitto behind a real TCP relay that holds back what the broker answers, then
drops the connection: the message reached the broker, its acknowledgement never reached
the bridge, so the record is published again once the bridge is back, before the next.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from .conftest import wait_for
from .mqtt_tap import Tap
from .tcp_relay import TcpRelay
from .test_mqtt import EP1, _hash, mqtt_config, post_event

EVENT_TOPIC = "sophonfog/akopkkkkk__192-168-1-101-" + _hash(EP1) + "/event"


def identities(tap: Tap) -> list[str]:
    return [json.loads(m.payload)["identity_id"] for m in tap.on(EVENT_TOPIC)]


def test_a_record_whose_puback_never_came_is_published_again(mosquitto, bridge_factory):
    relay = TcpRelay((mosquitto.host, mosquitto.port))
    tap = Tap(mosquitto.host, mosquitto.port, (EVENT_TOPIC,))
    try:
        broker = SimpleNamespace(host="127.0.0.1", port=relay.port)
        config = mqtt_config(broker, retry_s=0.2, reconnect_max_s=1, publish_timeout_s=60)
        bridge = bridge_factory(config)
        wait_for(lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 10, what="online")
        post_event(bridge, "visitor", seed=0, identity_id="p0")
        wait_for(lambda: identities(tap) == ["p0"], 10, what="p0")
        wait_for(bridge.drained, 10, what="p0 acknowledged")

        relay.holding.set()
        post_event(bridge, "visitor", seed=1, identity_id="p1")
        post_event(bridge, "visitor", seed=2, identity_id="p2")
        # p1 taken by the broker, its PUBACK held back: not done, and p2 waits behind it.
        wait_for(lambda: identities(tap) == ["p0", "p1"], 10, what="p1 at the broker")
        wait_for(lambda: relay.held_bytes >= 4, 10, what="its PUBACK held back")
        mqtt = bridge.health()["plugins"]["mqtt"]
        assert mqtt["backlog"] == 2 and mqtt["delivered"] == 1, mqtt
        assert identities(tap) == ["p0", "p1"]

        relay.cut()
        wait_for(lambda: "p2" in identities(tap), 20, what="p2, once p1 is acknowledged")
        wait_for(bridge.drained, 10, what="every record acknowledged")
        # p1 again (from paho's session and from the spool: at least once), all before p2.
        seen = identities(tap)
        assert seen[:2] == ["p0", "p1"] and seen[-1] == "p2" and seen.count("p2") == 1, seen
        assert set(seen[2:-1]) == {"p1"}, seen
        assert bridge.health()["plugins"]["mqtt"]["delivered"] == 3
        assert "retry later" in bridge.logs()
    finally:
        tap.close()
        relay.close()
