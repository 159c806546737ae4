"""A stand-in door plugin for the mqtt tests: remote doors, open_door, mqtt_publish.

Loaded into a real bridge with `--plugin doorstub=tests.mqtt_door_stub:DoorStub`. It
offers one remote door on the listed devices; `open_door` records the call, publishes
through the mqtt plugin's `mqtt_publish` hook (as the real door plugin's mqtt backend
does) and announces its decision, which the mqtt plugin puts on `<device>/access`.
"""

from __future__ import annotations

import json
import os

import voluptuous as vol

from sophonfog_bridge import DecisionResult, DoorDecision, hookimpl


class DoorStub:
    @hookimpl
    def config_schema(self):
        return {vol.Required("path"): str, vol.Required("devices"): [str]}

    @hookimpl
    def startup(self, config):
        self.path = config["path"]
        self.devices = config["devices"]

    @hookimpl
    def remote_doors(self):
        return [{"door": "front", "devices": self.devices}]

    @hookimpl
    def open_door(self, door, source, bridge):
        published = [
            r.value
            for r in bridge.call(
                "mqtt_publish", topic="doorstub/relay", payload="pulse", qos=1, retain=False
            )
        ]
        decision = DoorDecision(
            door=door,
            decision=DecisionResult.OPEN,
            reason="remote command",
            source="remote",
            device=self.devices[0],
        )
        bridge.announce(decision)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"door": door, "source": source, "published": published}))
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        return decision
