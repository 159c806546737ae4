"""What Home Assistant should know: devices, boxes, people, doors, and retained states.

The announcer remembers every device it has heard of and the last retained state it
published, so after a (re)connect or an HA restart it can say it all again. It publishes
a discovery config only when that exact config is not yet out on the current link.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from sophonfog_bridge import Event, PersonType
from sophonfog_bridge.files import atomic_write

from . import discovery, payloads
from .client import Message, MqttConnection
from .topics import RESERVED, Topics, slug

log = logging.getLogger(__name__)


class Announcer:
    def __init__(self, bridge: Any, config: dict[str, Any], topics: Topics, ctx: discovery.Context):
        self.bridge = bridge
        self.cfg = config
        self.topics = topics
        self.ctx = ctx
        self.conn: MqttConnection | None = None
        self.lock = threading.RLock()
        self.devices: dict[str, dict[str, Any]] = {}
        self.boxes: dict[str, dict[str, Any]] = {}
        self.doors: dict[str, list[str]] = {}
        self.events = 0
        self._slugs: dict[str, str] = {}  # device slug -> device id, for commands
        self._announced: dict[str, str] = {}  # discovery object id -> config on this link
        # What the configs out on this link were made from, to skip making them again for
        # every event: device -> (its info, its doors); person id -> name.
        self._device_inputs: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
        self._person_names: dict[str, str] = {}
        self._retained: dict[str, bytes | str] = {}  # state topics to say again
        self._people_path: Path = bridge.state_dir("mqtt") / "people.json"
        # Only people seen as opted-in non-strangers: a listed id is not known to be a person.
        self.people = self._load_people()
        for info in bridge.known_devices():
            self.remember_device(info)

    # ---- slugs -------------------------------------------------------------------------

    def device_slug(self, device: str) -> str:
        dev_slug = slug(device, RESERVED)
        self._slugs[dev_slug] = device
        return dev_slug

    def device_for_slug(self, dev_slug: str) -> str | None:
        return self._slugs.get(dev_slug)

    # ---- devices -----------------------------------------------------------------------

    def remember_device(self, info: dict[str, Any]) -> None:
        device = info.get("device")
        if not device:
            return
        with self.lock:
            current = self.devices.get(device, {})
            merged = {**current, **{k: v for k, v in info.items() if v not in (None, "")}}
            if current.get("device_type") and merged.get("device_type") == "unknown":
                merged["device_type"] = current["device_type"]
            self.devices[device] = merged
            self.device_slug(device)

    def ensure_device(self, info: dict[str, Any]) -> None:
        """Remember a capture device and make sure HA has its current config (and its box)."""
        with self.lock:
            device = info["device"]
            self.remember_device(info)
            inputs = (self.devices[device], tuple(self.doors.get(device, ())))
            if self._device_inputs.get(device) == inputs:
                return
            box = inputs[0].get("box")
            if box:
                self.ensure_box({"box": box}, merge=False)
            self._announce(*self._capture_config(device))
            self._device_inputs[device] = inputs

    def ensure_box(self, info: dict[str, Any], merge: bool = True) -> None:
        with self.lock:
            box = info["box"]
            if box in self.boxes and not merge:
                return
            self.boxes[box] = {**self.boxes.get(box, {}), **{k: v for k, v in info.items() if v}}
            self._announce(*discovery.box_device(self.ctx, slug(box), self.boxes[box]))

    def ensure_person(self, event: Event) -> str:
        """Announce an opted-in person (name changes too); returns the person's slug."""
        person_slug = slug(event.identity_id)
        name = event.identity_name or event.identity_id
        with self.lock:
            if self._person_names.get(event.identity_id) == name:
                return person_slug
            if self.people.get(event.identity_id) != name:
                self.people[event.identity_id] = name
                self._save_people()
            self._announce(*discovery.person_device(self.ctx, person_slug, event.identity_id, name))
            self._person_names[event.identity_id] = name
        return person_slug

    def opted_in(self, event: Event) -> bool:
        """Per-person entities only for people the user listed; never for strangers."""
        if event.person_type is PersonType.STRANGER or not event.identity_id:
            return False
        if self.cfg["people"] == "employees":
            return event.person_type is PersonType.EMPLOYEE
        return event.identity_id in self.cfg["people"]

    def _listed_people(self) -> list[str]:
        people = self.cfg["people"]
        return [] if people == "employees" else list(people)

    def _capture_config(self, device: str) -> tuple[str, dict[str, Any]]:
        info = self.devices[device]
        box = info.get("box")
        return discovery.capture_device(
            self.ctx,
            self.device_slug(device),
            info,
            slug(box) if box else None,
            self.doors.get(device, []),
        )

    # ---- publishing --------------------------------------------------------------------

    def publish(self, messages: list[Message], states: dict[str, bytes | str]) -> None:
        """Publish, then remember the retained `states` to say them again after a reconnect.

        Both under the lock: `announce_all` re-publishes its copy of the states under it
        too, and outside it that copy could land on the broker after a newer state.
        """
        with self.lock:
            self.conn.publish_many(messages)
            self._retained.update(states)

    def _announce(self, object_id: str, config: dict[str, Any]) -> None:
        if not self.cfg["discovery"]:
            return
        text = payloads.dumps(config)
        if self._announced.get(object_id) == text:
            return
        self.conn.publish_many([(self.topics.discovery(object_id), text, True)])
        self._announced[object_id] = text

    def announce_all(self) -> None:
        """Discovery for everything known, then every retained state, then the bridge state."""
        with self.lock:
            self._announced.clear()
            self._device_inputs.clear()
            self._person_names.clear()
            self.refresh_doors()
            self._announce(*discovery.bridge_device(self.ctx))
            for info in list(self.devices.values()):
                if info.get("box"):
                    self.boxes.setdefault(info["box"], {"box": info["box"]})
            for box, info in list(self.boxes.items()):
                self._announce(*discovery.box_device(self.ctx, slug(box), info))
            for device in list(self.devices):
                self._announce(*self._capture_config(device))
            listed = self._listed_people()
            for identity, name in list(self.people.items()):
                if self.cfg["people"] == "employees" or identity in listed:
                    self._announce(
                        *discovery.person_device(self.ctx, slug(identity), identity, name)
                    )
            self.conn.publish_many([(t, p, True) for t, p in self._retained.items()])
            self.publish_bridge_state()

    def refresh_doors(self) -> None:
        doors: dict[str, list[str]] = {}
        for result in self.bridge.call("remote_doors"):
            for entry in result.value or ():
                try:
                    for device in entry.get("devices", ()):
                        doors.setdefault(str(device), []).append(str(entry["door"]))
                except (AttributeError, KeyError, TypeError):
                    log.warning("mqtt: ignoring bad remote_doors entry from %s", result.plugin)
        self.doors = doors

    def publish_bridge_state(self) -> None:
        health = self.bridge.health()
        mine = health.get("plugins", {}).get("mqtt", {})
        text = payloads.dumps(
            {
                "bridge_id": self.bridge.bridge_id,
                "version": self.bridge.version,
                "events": self.events,
                "spool_depth": health.get("spool_depth"),
                "backlog": mine.get("backlog"),
                "uptime_s": health.get("uptime_s"),
            }
        )
        self.publish([(self.topics.bridge_state, text, True)], {self.topics.bridge_state: text})

    # ---- opted-in people survive restarts ------------------------------------------------

    def _load_people(self) -> dict[str, str]:
        try:
            data = json.loads(self._people_path.read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as err:
            log.warning("mqtt: cannot read %s (%s); starting empty", self._people_path, err)
            return {}

    def _save_people(self) -> None:
        try:
            text = json.dumps(self.people, ensure_ascii=False)
            atomic_write(self._people_path, text, fsync=False)
        except OSError as err:
            log.warning("mqtt: cannot save %s: %s", self._people_path, err)
