"""The bottle app: the receiver's routes, /healthz, /metrics, and routes plugins add."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import bottle

from .boxpanel import BoxPanel
from .guard import Guard
from .sources.http import add_receiver_routes

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)


def create_app(bridge: Bridge) -> bottle.Bottle:
    """The bridge's WSGI app."""
    app = bottle.Bottle()
    guard = Guard(bridge.config["http"])
    metrics = bridge.metrics
    add_receiver_routes(app, bridge, guard)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return bridge.health()

    def metrics_page() -> bottle.HTTPResponse:
        body = metrics.render(lambda m: _refresh_gauges(bridge, m))
        return bottle.HTTPResponse(body, content_type=metrics.content_type)

    app.route("/metrics", "GET", guard.protect(metrics_page))
    BoxPanel(bridge, guard).routes(app)
    for method, path, callback in bridge.plugin_routes():
        app.route(path, method, guard.protect(callback))

    def error_page(error: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps({"status": error.status_code, "message": str(error.body)})

    app.default_error_handler = error_page  # type: ignore[method-assign]
    return app


def _refresh_gauges(bridge: Bridge, metrics: Any) -> None:
    metrics.spool_depth.set(bridge.spool.depth())
