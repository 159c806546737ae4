"""A burst behind a busy relay: what each waiting pulse keeps in memory.

At cooldown 0 every employee at a gate is a pulse, and a relay that takes 10 ms queues a
shift change's worth of them. Each waiting job must hold what its turn needs (the decision,
when the face was seen), not the event it came from: the events wait in the spool on disk.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc

from sophonfog_bridge.plugins.door_relay import DoorRelayPlugin
from sophonfog_bridge.plugins.door_relay.schema import CONFIG_SCHEMA

from sophonfog_bridge import samples
from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.dispatcher import Delivery
from sophonfog_bridge.host import build_host
from sophonfog_bridge.wire import parse_event

from .conftest import wait_for
from .door_relay_helpers import RelayServer

QUEUED = 400
# Measured: ~4 KB a job holding a photo-less copy of the event, ~1 KB holding the decision.
BUDGET_BYTES = 2048


def _events(n: int):
    scene = samples.jpeg(64, 48)
    for i in range(n):
        payload = samples.event_payload("v2r2", identity_id=f"9{i:05d}", scene=scene, face=scene)
        payload["ext_data"]["device_ip"] = "192.168.1.101"
        yield parse_event(payload, decode_images=True)


def test_a_waiting_pulse_holds_the_decision_not_the_event(tmp_path):
    gate = threading.Event()
    relay = RelayServer(gate=gate)
    bridge = Bridge({"spool": {"path": str(tmp_path / "spool")}}, build_host(entry_points=False))
    door = {
        "name": "front_gate",
        "devices": ["192.168.1.101"],
        "cooldown_s": 0,
        "backend": {"type": "http", "preset": "shelly_gen1", "host": relay.host},
    }
    plugin = DoorRelayPlugin()
    plugin.startup(bridge, CONFIG_SCHEMA({"doors": [door]}))
    try:
        events = list(_events(QUEUED + 1))
        delivery = Delivery(seq=1, attempt=1, accepted_this_run=True, plugin="door_relay")
        # The first pulse takes the door's thread and waits at the relay's gate.
        plugin.handle_event(events.pop(0), delivery)
        wait_for(lambda: len(relay.requests) == 1, what="the first pulse at the relay")
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        while events:
            plugin.handle_event(events.pop(), delivery)
        gc.collect()
        per_job = (tracemalloc.get_traced_memory()[0] - before) / QUEUED
        tracemalloc.stop()
        assert plugin.plugin_health()["doors"]["front_gate"]["queued"] == QUEUED
        assert per_job < BUDGET_BYTES, f"{per_job:.0f} bytes per waiting pulse"
        gate.set()
        wait_for(lambda: len(relay.requests) == QUEUED + 1, what="every queued pulse")
    finally:
        gate.set()
        plugin.shutdown()
        bridge.spool.close()
        relay.close()
