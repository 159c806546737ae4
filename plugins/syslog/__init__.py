"""Bundled plugin `syslog`: an audit trail of events and door decisions in the system log.

Each event becomes one message (MSGID `EVENT`), each door decision another (`DOOR`), with
the facts as RFC 5424 structured data. See docs/syslog.md.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import voluptuous as vol

from sophonfog_bridge import DoorDecision, Event, RetryLater, hookimpl

from .config import CONFIG_SCHEMA, Address, default_address
from .message import Formatter, Message, door_message, event_message
from .transport import Lost, Transport, Unreachable, open_transport

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0


class SyslogPlugin:
    # An audit trail, read later: records may wait 0.1 s for others (the dispatcher's
    # `gather_s`), one wake-up of the worker for several.
    gather_s = 0.1

    def __init__(self) -> None:
        self.transport: Transport | None = None
        self.formatter: Formatter | None = None
        self.address: Address | None = None
        self.sent = 0
        self.dropped = 0
        self.down_since_error: str | None = None
        self.retry_s = RETRY_MIN_S

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, bridge: Any, config: dict[str, Any]) -> None:
        self.config = config
        self.address = config["address"] or default_address()
        local = self.address.scheme == "unix"
        self.formatter = Formatter(
            format=config["format"] or ("rfc3164" if local else "rfc5424"),
            facility=config["facility"],
            app_name=config["app_name"],
            sd_id=config["sd_id"],
            hostname=socket.gethostname(),
            # The service's process, the one `ps` and systemd show (the plugins may run in
            # a process of its own).
            procid=bridge.pid,
            local=local,
        )
        self.severities = config["severities"]
        self.transport = open_transport(self.address, config["timeout_s"], config["tcp_framing"])
        log.info("syslog: sending %s to %s", self.formatter.format, self.address)

    @hookimpl
    def handle_event(self, event: Event) -> None:
        self._send(event_message(event, self.severities))

    @hookimpl
    def handle_door_decision(self, decision: DoorDecision) -> None:
        self._send(door_message(decision, self.severities))

    @hookimpl
    def plugin_health(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "format": self.formatter.format if self.formatter else None,
            "reachable": self.down_since_error is None,
            "sent": self.sent,
            "dropped": self.dropped,
        }

    @hookimpl
    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _send(self, message: Message) -> None:
        assert self.formatter is not None
        try:
            self.transport.send(self.formatter.render(message))
        except Unreachable as err:
            self._went_down(err)
            wait, self.retry_s = self.retry_s, min(self.retry_s * 2, RETRY_MAX_S)
            raise RetryLater(str(err), after=wait) from None
        except Lost as err:
            # A datagram nobody can take is gone; say so once per outage, not per message.
            self.dropped += 1
            self._went_down(err)
            return
        self.sent += 1
        self.retry_s = RETRY_MIN_S
        if self.down_since_error is not None:
            log.info("syslog: %s reachable again (%d dropped)", self.address, self.dropped)
            self.down_since_error = None

    def _went_down(self, err: Exception) -> None:
        if self.down_since_error is None:
            log.warning("syslog: %s", err)
        self.down_since_error = str(err)
