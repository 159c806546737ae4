"""The `mqtt` plugin: events, snapshots and box health on MQTT, with HA discovery.

Threads: paho's network thread (callbacks only look and hand over), the announcer loop
here (discovery and retained states after every connect and HA restart, and the bridge
state now and then), the door-command thread, and the dispatcher's worker that calls
`handle_*`. Until discovery, states and `online` are out on the current connection,
`handle_*` raises RetryLater: records wait in the spool and come again, in order.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import voluptuous as vol

from sophonfog_bridge import (
    BoxLink,
    BoxStatus,
    DoorDecision,
    Event,
    EventKind,
    RetryLater,
    device_record,
    hookimpl,
)

from . import discovery, hookspecs, payloads
from .announcer import Announcer
from .client import Message, MqttConnection, NotConnected
from .commands import DoorCommands
from .config import CONFIG_SCHEMA, default_base_topic
from .memory import Memory
from .topics import Topics, slug, valid_publish_topic

log = logging.getLogger(__name__)

_CONNECTED, _HA_ONLINE, _STATE, _STOP = "connected", "ha_online", "state", "stop"
_STATE_AFTER_EVENT_S = 2.0


class MqttPlugin:
    # The hook this plugin offers the others (`mqtt_publish`): the host adds it on load.
    hookspecs = hookspecs

    def __init__(self) -> None:
        self.conn: MqttConnection | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._jobs: queue.Queue[str] = queue.Queue()
        self._last_state = 0.0
        self._state_due: float | None = None
        # Per device, the newest live event published (a completion's photos go out only
        # for it, so a late one never replaces the photo of a newer event), and per box the
        # last status (a push of its devices keeps the health another said); both outlive
        # a restart, in the plugin's own state file.
        self._memory = Memory(None)

    # ---- hooks -------------------------------------------------------------------------

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, bridge: Any, config: dict[str, Any]) -> None:
        self.bridge = bridge
        self.cfg = config
        # Records may wait this long (50 ms by default) for others, one wake-up of the
        # worker for several (the dispatcher reads `gather_s` after startup): at 40 events
        # a second that took it from ~7 sleeps and wake-ups an event to ~1.3, and ~0.3 ms
        # of CPU an event off (measured per thread), for ~25 ms more from POST to HA.
        self.gather_s = config["gather_s"]
        self.topics = Topics(
            config["base_topic"] or default_base_topic(bridge.bridge_id),
            config["discovery_prefix"],
        )
        ctx = discovery.Context(
            bridge_id=bridge.bridge_id,
            version=bridge.version,
            topics=self.topics,
            origin_url=config["origin_url"],
            off_delay_s=config["off_delay_s"],
            presence_off_delay_s=config["presence_off_delay_s"],
        )
        self._memory = Memory(bridge.state_dir("mqtt") / "memory.json")
        self._memory.load()
        self.known = Announcer(bridge, config, self.topics, ctx)
        self.commands = DoorCommands(bridge, self.known.device_for_slug, lambda: self.known.doors)
        self.conn = MqttConnection(
            config,
            client_id=config["client_id"] or self._default_client_id(),
            will_topic=self.topics.status,
            subscriptions=[self.topics.ha_status, self.topics.commands],
            on_connected=lambda: self._jobs.put(_CONNECTED),
            on_message=self._on_message,
            on_disconnected=self._ready.clear,
        )
        self.known.conn = self.conn
        self.commands.start()
        threading.Thread(target=self._announce_loop, name="mqtt-announce", daemon=True).start()
        self.conn.start()

    @hookimpl
    def handle_event(self, event: Event) -> None:
        with self._publishing():
            self.known.ensure_device(device_record(event))
            if event.completes:
                self._publish_completion(event)
                return
            if event.kind is EventKind.HISTORY:
                # Old news: its own topic, so HA's event entity, triggers and sensors stay quiet.
                topic = self.topics.device(self.known.device_slug(event.device), "history")
                self.conn.publish_many([(topic, payloads.event_json(event, False), False)])
                return
            self._publish_event(event)
        if self._state_due is None:
            # The events counter follows soon, but at most every few seconds.
            self._state_due = max(time.monotonic(), self._last_state + _STATE_AFTER_EVENT_S)
            self._jobs.put(_STATE)

    @hookimpl
    def handle_box_status(self, status: BoxStatus) -> None:
        status = status.merged_onto(self._memory.boxes.get(status.box))
        with self._publishing():
            metrics = set(self.known.boxes.get(status.box, {}).get("metrics") or ())
            self.known.ensure_box(
                {
                    "box": status.box,
                    "name": status.name,
                    "sw_version": status.sw_version,
                    "metrics": sorted(metrics | set(payloads.reported_metrics(status))),
                }
            )
            for sub in status.sub_devices:
                self.known.ensure_device(
                    {
                        "device": sub.ep_id,
                        "name": sub.name,
                        "location": sub.location,
                        "device_type": sub.device_type.value,
                        "box": status.box,
                    }
                )
            topic, message = self.topics.box(slug(status.box)), payloads.box_json(status)
            self.known.publish([(topic, message, True)], {topic: message})
        self._memory.note_box(status)

    @hookimpl
    def handle_box_link(self, link: BoxLink) -> None:
        """The websocket link to a V5/V6 box: a connectivity sensor, and its named devices."""
        with self._publishing():
            self.known.ensure_box({"box": link.box, "name": link.box, "link": True})
            for sub in link.devices:
                self.known.ensure_device(
                    {
                        "device": sub.ep_id,
                        "name": sub.name,
                        "device_ip": sub.ip,
                        "device_type": sub.device_type.value,
                        "box": link.box,
                    }
                )
            topic, message = self.topics.box_link(slug(link.box)), payloads.link_json(link)
            self.known.publish([(topic, message, True)], {topic: message})

    @hookimpl
    def handle_door_decision(self, decision: DoorDecision) -> None:
        with self._publishing():
            if decision.device:
                topic = self.topics.device(self.known.device_slug(decision.device), "access")
            else:
                topic = self.topics.door_access(slug(decision.door))
            self.conn.publish_many([(topic, payloads.access_json(decision), False)])

    @hookimpl
    def mqtt_publish(self, topic: str, payload: Any, qos: int, retain: bool) -> bool:
        if self.conn is None or not self.conn.connected:
            return False
        if not valid_publish_topic(str(topic)):
            raise ValueError(f"not a topic one can publish on: {topic!r}")
        if payload is not None and not isinstance(payload, (bytes, bytearray, str)):
            payload = payloads.dumps(payload)
        try:
            self.conn.publish_many([(str(topic), payload or b"", bool(retain))], qos=int(qos))
        except NotConnected as err:
            log.warning("mqtt: publish to %s for another plugin failed: %s", topic, err)
            return False
        return True

    @hookimpl
    def plugin_health(self) -> dict[str, Any]:
        if self.conn is None:
            return {"connected": False}
        return {
            "connected": self.conn.connected,
            "announced": self._ready.is_set(),
            "broker": f"{self.conn.host}:{self.conn.port}",
            "client_id": self.conn.client_id,
            "base_topic": self.topics.base,
            "mqtt_error": self.conn.last_error,
        }

    @hookimpl
    def shutdown(self) -> None:
        self._stopping.set()
        self._jobs.put(_STOP)
        if self.conn is not None:
            self.commands.stop()
            self._ready.clear()
            # Availability only: the discovery configs stay, so HA keeps the entities.
            self.conn.stop([(self.topics.status, "offline", True)])
        self._memory.close()

    # ---- events ------------------------------------------------------------------------

    @contextmanager
    def _publishing(self) -> Iterator[None]:
        """A lost broker, before or mid-publish, is RetryLater: the record comes again, in order."""
        if not self._ready.is_set():
            raise RetryLater("mqtt: not connected to the broker", after=self.cfg["retry_s"])
        try:
            yield
        except NotConnected as err:
            raise RetryLater(f"mqtt: {err}", after=self.cfg["retry_s"]) from None

    def _publish_event(self, event: Event) -> None:
        dev_slug = self.known.device_slug(event.device)
        retained: dict[str, bytes | str] = {}
        for leaf, image in self._images(event):
            if image is not None:
                retained[self.topics.device(dev_slug, leaf)] = image
        message = payloads.event_json(event, snapshot=bool(retained))
        # Images first, so HA shows the photo by the time the event fires.
        messages: list[Message] = [(topic, image, True) for topic, image in retained.items()]
        messages.append((self.topics.device(dev_slug, "event"), message, False))
        retained[self.topics.device(dev_slug, "last")] = message
        messages.append((self.topics.device(dev_slug, "last"), message, True))
        if self.known.opted_in(event):
            person = self.known.ensure_person(event)
            device_name = self.known.devices.get(event.device, {}).get("name") or event.device
            state = self.topics.person(person, "state")
            retained[state] = payloads.person_json(event, device_name)
            messages.append((state, retained[state], True))
            messages.append((self.topics.person(person, "seen"), "ON", False))
        self.known.publish(messages, retained)
        self.known.events += 1
        self._memory.note_event(event.device, event.event_id)

    def _publish_completion(self, event: Event) -> None:
        """The photos a later copy adds (a V6 upload's scene): on the image topics, as
        the live copy's would have been, and no HA event or history message."""
        if self._memory.latest.get(event.device) != event.event_id:
            log.debug("mqtt: completion of %s is not its device's latest event", event.short_id)
            return
        dev_slug = self.known.device_slug(event.device)
        retained = {
            self.topics.device(dev_slug, leaf): image
            for leaf, image in self._images(event)
            if image is not None
        }
        if retained:
            self.known.publish([(t, image, True) for t, image in retained.items()], retained)

    def _images(self, event: Event) -> list[tuple[str, bytes | None]]:
        chosen = [("snapshot", event.spot_pic if self.cfg["snapshot"] else None)]
        if self.cfg["face_crop"]:
            chosen.append(("face", event.face_pic))
        if self.cfg["registered_photo"]:
            chosen.append(("registered", event.reg_pic))
        return [(leaf, payloads.as_jpeg(image)) for leaf, image in chosen]

    # ---- connection follow-up ------------------------------------------------------------

    def _announce_loop(self) -> None:
        interval = self.cfg["state_interval_s"]
        while not self._stopping.is_set():
            due = self._last_state + interval
            if self._state_due is not None:
                due = min(due, self._state_due)
            try:
                job = self._jobs.get(timeout=max(0.05, due - time.monotonic()))
            except queue.Empty:
                job = _STATE
            try:
                if job == _STOP:
                    return
                if job == _CONNECTED:
                    self._ready.clear()
                    self.known.announce_all()
                    self.conn.publish_many([(self.topics.status, "online", True)])
                    self._last_state = time.monotonic()
                    self._ready.set()
                    log.info("mqtt: online on %s", self.topics.base)
                elif job == _HA_ONLINE:
                    # Spread the load when many publishers hear the same HA restart.
                    if self._stopping.wait(random.uniform(0, self.cfg["rediscovery_delay_s"])):
                        return
                    self.known.announce_all()
                    log.info("mqtt: Home Assistant came online; discovery sent again")
                elif job == _STATE and time.monotonic() >= due:
                    self._last_state, self._state_due = time.monotonic(), None
                    if self._ready.is_set():
                        self.known.publish_bridge_state()
            except NotConnected as err:
                log.warning("mqtt: announcing failed, will redo on reconnect: %s", err)
            except Exception:
                log.exception("mqtt: announcing failed")

    def _on_message(self, message) -> None:
        """paho's thread: look and hand over, never block."""
        if message.topic == self.topics.ha_status:
            # A retained `online` is the HA that was already up: we announced on connect.
            if not message.retain and message.payload.strip() == b"online":
                self._jobs.put(_HA_ONLINE)
            return
        dev_slug = self.topics.command_device(message.topic)
        if dev_slug is None:
            return
        if message.retain:
            log.warning("mqtt: ignoring retained command on %s", message.topic)
            return
        self.commands.submit(dev_slug, message.payload)

    def _default_client_id(self) -> str:
        # Two bridges, or two copies of one config on different data dirs, never share it.
        spool = os.path.abspath(self.bridge.config["spool"]["path"])
        digest = hashlib.sha1(spool.encode("utf-8")).hexdigest()[:8]
        return f"sophonfog-bridge-{self.bridge.bridge_id}-{digest}"
