"""Bundled plugin `door_relay`: pulse a door relay when an employee is recognised at a gate.

A wrong opening is a security incident, so a door opens only on the first, live delivery
of a fresh real-time event that passes every rule of the door, at most once per event
(a journal on disk remembers every pulse across restarts), and at most once per cooldown.
Anything that fails leaves the door shut and says why; a relay whose answer was lost is
reported as unconfirmed (it may have opened), never as shut.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

import voluptuous as vol

from sophonfog_bridge import BoxLink, DecisionResult, DoorDecision, Event, hookimpl

from . import hookspecs, rules
from .backends import build
from .doors import Claim, Door, Job
from .journal import Journal
from .listed import never_opens
from .pulse import Pulse
from .schema import CONFIG_SCHEMA, warnings_for

log = logging.getLogger(__name__)

REMOTE_WAIT_S = 1.0


class DoorRelayPlugin:
    # A person is waiting at the door: the dispatcher must not deprioritise this worker.
    realtime = True
    # The hooks this plugin offers (remote opening, user backends): the host adds them on load.
    hookspecs = hookspecs

    def __init__(self) -> None:
        self.doors: dict[str, Door] = {}
        self.by_device: dict[str, list[Door]] = {}
        self.journal: Journal | None = None
        self._warned: set[tuple[str, str]] = set()  # (door, device) told never to open

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, bridge, config) -> None:
        state = bridge.state_dir("door_relay")
        self.journal = Journal(
            state / "journal.jsonl",
            config["journal_keep_days"] * 86400,
            fsync=bridge.config["spool"]["fsync"],
        )
        for entry in self.journal.unfinished:
            self._announce_interrupted(bridge, entry)
        user: dict[str, Any] = {}
        for result in bridge.call("door_backends"):
            if isinstance(result.value, dict):
                user.update(result.value)
        try:
            for cfg in config["doors"]:
                for warning in warnings_for(cfg):
                    log.warning("door %s: %s", cfg["name"], warning)
                backend = build(cfg["backend"], bridge, user)
                door = Door(
                    cfg, backend, self.journal, bridge.announce_many, config["announce_every_s"]
                )
                self.doors[door.name] = door
                for device in cfg["devices"]:
                    self.by_device.setdefault(device, []).append(door)
        except BaseException:
            # A plugin whose startup fails is disabled without a shutdown() call: release
            # the journal and the relays already opened (a GPIO pin) here.
            for door in self.doors.values():
                door.close_backend()
            self.journal.close()
            raise
        for door in self.doors.values():
            door.start()
            log.info(
                "door %s: devices %s, %s, remote open %s",
                door.name,
                ", ".join(door.cfg["devices"]),
                door.health()["backend"]["target"],
                "allowed" if door.cfg["allow_remote_open"] else "off",
            )

    def _announce_interrupted(self, bridge, entry: dict[str, Any]) -> None:
        """The bridge died between pulse and report: tell the audit trail what is known.

        The decision goes out under the id it was given before the pulse; if it reached
        the spool before the crash (only the journal's mark is missing), the core refuses
        this second copy by that id.
        """
        result, reason = _interrupted(entry.get("outcome") or {})
        log.warning("door %s: event %s: %s", entry["door"], entry["event_id"], reason)
        fields: dict[str, Any] = {}
        if entry.get("decision_id"):
            fields["decision_id"] = entry["decision_id"]
        decision = DoorDecision(
            door=entry["door"],
            decision=result,
            reason=reason,
            rule="interrupted",
            source=entry.get("source", "event"),
            event_id=None if entry["event_id"].startswith("remote-") else entry["event_id"],
            **fields,
        )
        try:
            bridge.announce(decision)
        except OSError:
            log.exception("door %s: cannot announce an interrupted pulse", entry["door"])
            return
        self.journal.announced(entry["event_id"], entry["door"])

    def doors_for(self, event: Event) -> list[Door]:
        found: list[Door] = []
        for key in (event.device, event.ep_id, event.device_ip):
            for door in self.by_device.get(key or "", ()):
                if door not in found:
                    found.append(door)
        return found

    @hookimpl
    def handle_event(self, event, delivery) -> None:
        doors = self.doors_for(event)
        if not doors:
            log.debug(
                "door_relay: no door serves device %s (event %s)", event.device, event.short_id
            )
            return
        if not event.is_live:
            # History repeats events the real-time feed already decided: no decision noise.
            log.debug("door_relay: history event %s never opens a door", event.short_id)
            return
        live = delivery.accepted_this_run and delivery.attempt == 1
        now, mono = datetime.now(timezone.utc), time.monotonic()
        for door in doors:
            verdict = rules.decide(
                event, door.cfg, door.state_for(event), live=live, now=now, mono=mono
            )
            claim = None
            if verdict.opens:
                claim, refusal = self._claim(event, door, mono)
                verdict = refusal or verdict
            decision = DoorDecision.for_event(
                event, door.name, verdict.decision, verdict.reason, verdict.rule
            )
            pulse = Pulse(door.name, door.cfg["pulse_s"], "event", event.event_id)
            door.submit(Job.for_event(decision, pulse if verdict.opens else None, event, claim))

    def _claim(
        self, event: Event, door: Door, mono: float
    ) -> tuple[Claim | None, rules.Verdict | None]:
        """Take the journal and cooldown claims, in that order; a refusal is a deny."""
        assert self.journal is not None
        if not self.journal.claim(event.event_id, door.name):
            reason = f"event {event.event_id} was already decided for this door"
            return None, rules.Verdict(DecisionResult.DENY, "duplicate", reason)
        claim, why = door.claim_open(mono)
        if claim is None:
            return None, rules.Verdict(DecisionResult.DENY, "cooldown", why)
        return claim, None

    @hookimpl
    def handle_box_link(self, link: BoxLink) -> None:
        """A V6 box listed its devices: say so if a door can never open for one it maps."""
        if link.connected:
            doors = [door.cfg for door in self.doors.values()]
            for warning in never_opens(doors, link, self._warned):
                log.warning(warning)

    @hookimpl
    def remote_doors(self) -> list[dict[str, Any]]:
        return [
            {"door": d.name, "devices": list(d.cfg["devices"])}
            for d in self.doors.values()
            if d.cfg["allow_remote_open"]
        ]

    @hookimpl
    def open_door(self, door, source) -> DoorDecision | None:
        target = self.doors.get(door)
        if target is None:
            return None  # another door plugin's door, or none at all
        claim = None
        if not target.cfg["allow_remote_open"]:
            verdict = rules.Verdict(
                DecisionResult.DENY, "remote_not_allowed", "allow_remote_open is off for this door"
            )
        else:
            claim, why = target.claim_open(time.monotonic())
            if claim is None:
                verdict = rules.Verdict(DecisionResult.DENY, "cooldown", why)
            else:
                verdict = rules.Verdict(
                    DecisionResult.OPEN, "remote", f"remote command from {source}"
                )
        decision = DoorDecision(
            door=target.name,
            decision=verdict.decision,
            reason=verdict.reason,
            rule=verdict.rule,
            source="remote",
        )
        pulse = Pulse(target.name, target.cfg["pulse_s"], "remote")
        done: Future[DoorDecision] = Future()
        target.submit(Job(decision, pulse if verdict.opens else None, claim=claim, done=done))
        # An MQTT relay acknowledges through the same client that may be calling us:
        # waiting for it here could only stall both.
        if target.cfg["backend"]["type"] == "mqtt":
            return None
        try:
            return done.result(timeout=REMOTE_WAIT_S)
        except Exception:
            return None  # still pulsing: the decision is announced when it is known

    @hookimpl
    def plugin_health(self) -> dict[str, Any]:
        return {
            "doors": {name: door.health() for name, door in self.doors.items()},
            "journal_unfinished": len(self.journal.unfinished) if self.journal else 0,
        }

    @hookimpl
    def shutdown(self) -> None:
        for door in self.doors.values():
            door.stop()
        if self.journal is not None:
            self.journal.close()


def _interrupted(outcome: dict[str, Any]) -> tuple[DecisionResult, str]:
    """What a journal entry without its announcement says about the door."""
    if outcome.get("result") == "open":
        return DecisionResult.OPEN, "the relay was pulsed; the bridge stopped before reporting it"
    if outcome.get("result") == "error":
        return DecisionResult.ERROR, f"relay failed, door stays shut: {outcome.get('reason')}"
    if outcome.get("result") == "unconfirmed":
        return (
            DecisionResult.ERROR,
            f"relay did not confirm, the door may have opened: {outcome.get('reason')}",
        )
    return DecisionResult.ERROR, "the bridge stopped while pulsing: the door may have opened"
