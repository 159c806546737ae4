"""Bundled plugin `status`: a live status page on the bridge's HTTP port.

`GET /` is the page, `GET /status.json` what it polls, and
`GET /status/image/<event_id>/<face|scene|registered>` a downscaled photo of a recent
event. The last events, door decisions and box heartbeats are kept in memory only.
"""

from __future__ import annotations

import json
from typing import Any

import bottle
import voluptuous as vol

from sophonfog_bridge import BoxLink, BoxStatus, DoorDecision, Event, cv, hookimpl

from .board import Board
from .page import render_page
from .thumbs import cached_thumbnail

CONFIG_SCHEMA = vol.Schema(
    {
        vol.Optional("max_events", default=30): cv.Whole(1, 500),
        vol.Optional("thumbnail_px", default=160): cv.Whole(16, 1024),
        vol.Optional("refresh_s", default=3.0): cv.Seconds(0.5, 3600),
    }
)

# Inline script and style are the whole page; nothing else may load or run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; connect-src 'self'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; "
        "frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def mqtt_state(plugins: dict[str, Any]) -> dict[str, Any]:
    """The MQTT connection as the mqtt plugin reports it in its health entry."""
    entry = plugins.get("mqtt")
    if entry is None:
        return {"state": "not installed", "detail": ""}
    if not entry.get("enabled", True):
        return {"state": "disabled", "detail": entry.get("error") or ""}
    if "connected" not in entry:
        return {"state": entry.get("state", "unknown"), "detail": entry.get("error") or ""}
    detail = " · ".join(
        str(v)
        for v in (entry.get("broker"), entry.get("mqtt_error") or entry.get("last_error"))
        if v
    )
    return {"state": "connected" if entry["connected"] else "disconnected", "detail": detail}


class StatusPlugin:
    # The page polls every few seconds: records may wait 0.1 s for others (the
    # dispatcher's `gather_s`), one wake-up of the worker for several.
    gather_s = 0.1

    def __init__(self) -> None:
        self.board = Board(30)
        self.config: dict[str, Any] = CONFIG_SCHEMA({})

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, config: dict[str, Any]) -> None:
        self.config = config
        self.board = Board(config["max_events"])

    @hookimpl
    def handle_event(self, event: Event) -> None:
        self.board.add_event(event)

    @hookimpl
    def handle_door_decision(self, decision: DoorDecision) -> None:
        self.board.add_decision(decision)

    @hookimpl
    def handle_box_status(self, status: BoxStatus) -> None:
        self.board.add_box(status)

    @hookimpl
    def handle_box_link(self, link: BoxLink) -> None:
        self.board.add_link(link)

    @hookimpl
    def register_routes(self, bridge: Any) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/", self.page),
            ("GET", "/status.json", lambda: self.status_json(bridge)),
            # Event ids come from the box and may hold `/` (sent as %2F, decoded before routing).
            ("GET", "/status/image/<event_id:path>/<which>", self.image),
        ]

    def page(self) -> bottle.HTTPResponse:
        return bottle.HTTPResponse(
            render_page(self.config["refresh_s"]),
            content_type="text/html; charset=utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )

    def snapshot(self, bridge: Any) -> dict[str, Any]:
        health = bridge.health(private=True)
        plugins = health["plugins"]
        return {
            "bridge": {
                k: health.get(k)
                for k in ("bridge_id", "version", "uptime_s", "spool_depth", "spool_last_seq")
            },
            "mqtt": mqtt_state(plugins),
            "plugins": plugins,
            "events": self.board.events(),
            "remote_decisions": self.board.remote_decisions(),
            "boxes": self.board.boxes(bridge.known_devices()),
        }

    def status_json(self, bridge: Any) -> bottle.HTTPResponse:
        body = json.dumps(self.snapshot(bridge), ensure_ascii=False, default=str)
        return bottle.HTTPResponse(
            body,
            content_type="application/json",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    def image(self, event_id: str, which: str) -> bottle.HTTPResponse:
        data, cache = self.board.image(event_id, which)
        thumb = None
        if data is not None and cache is not None:
            thumb = cached_thumbnail(data, cache, which, self.config["thumbnail_px"])
        if thumb is None:
            return bottle.HTTPResponse(
                json.dumps({"status": 404, "message": "no such image"}),
                status=404,
                content_type="application/json",
            )
        # An event's photos never change, so the browser may keep them.
        return bottle.HTTPResponse(
            thumb,
            content_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
