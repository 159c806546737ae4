"""The bottle app: the box's routes, /healthz, /metrics, and routes plugins add.

The answer to the box depends on one thing only: the spool write. The box gives up
after 0.5 s and then delays every later event, so nothing a plugin does happens here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bottle

from .body import Rejected, parse_body, read_body
from .guard import Guard, json_answer
from .spool import SpoolFull
from .wire import WireError, parse_event, parse_status

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)

REALTIME_PATHS = ("/RealTimeEvent", "/EventServer/api/SophonFogRelEvent")
HISTORY_PATHS = ("/EventServer/api/SophonFogHistoryEvent",)
STATUS_PATHS = ("/DeviceStatus",)
SUCCESS = {"status": 0, "message": "SUCCESS"}


def create_app(bridge: Bridge) -> bottle.Bottle:
    """The bridge's WSGI app."""
    app = bottle.Bottle()
    http = bridge.config["http"]
    limit = int(http["max_body_mb"] * (1 << 20))
    max_image = http["max_image_kb"] * 1024
    guard = Guard(http)
    threshold = bridge.config["threshold"]
    metrics = bridge.metrics

    def accept_event(payload: dict[str, Any], history: bool) -> dict[str, Any]:
        event = parse_event(
            payload,
            history=history,
            max_image_bytes=max_image,
            ep_id_for_ip=bridge.devices.ep_id_for_ip,
            decode_images=False,
        )
        if event.score < threshold:
            metrics.dropped.labels("below_threshold").inc()
            log.debug("event %s below threshold (%.3f)", event.short_id, event.score)
            return {**SUCCESS, "event_id": event.event_id, "dropped": "below_threshold"}
        if not bridge.recent_ids.claim(event.event_id):
            metrics.dropped.labels("duplicate").inc()
            log.info("event %s is a duplicate; not dispatched again", event.short_id)
            return {**SUCCESS, "event_id": event.event_id, "duplicate": True}
        try:
            bridge.record(event)
        except BaseException:
            bridge.recent_ids.release(event.event_id)
            raise
        for warning in event.warnings:
            log.warning("event %s: %s", event.short_id, warning)
        bridge.devices.observe_event(event)
        return {**SUCCESS, "event_id": event.event_id}

    def accept_status(payload: dict[str, Any]) -> dict[str, Any]:
        status = parse_status(payload)
        bridge.record(status)
        bridge.devices.observe_status(status)
        return dict(SUCCESS)

    def receiver(route: str, handle: Callable[[dict[str, Any]], dict[str, Any]]):
        def view(secret: str | None = None) -> bottle.HTTPResponse:
            started = time.perf_counter()
            environ = bottle.request.environ
            metrics.received.labels(route).inc()
            bridge.activity.begin()
            try:
                guard.check(environ, secret)
                body = read_body(environ, limit)
                payload = parse_body(body, environ.get("CONTENT_TYPE", ""), limit)
                answer = json_answer(200, handle(payload))
            except Rejected as err:
                answer = _reject(err.code, err.reason, err.message, environ, guard, secret)
            except WireError as err:
                answer = _reject(400, "invalid", str(err), environ, guard, secret)
            except SpoolFull as err:
                answer = _reject(503, "spool", str(err), environ, guard, secret)
            finally:
                bridge.activity.end()
            metrics.ack_latency.observe(time.perf_counter() - started)
            return answer

        return view

    def _reject(code, reason, message, environ, guard, secret) -> bottle.HTTPResponse:
        metrics.rejected.labels(reason).inc()
        path = environ.get("PATH_INFO", "")
        if secret is not None:
            # The first segment is the token (or a guess at it): never log it.
            path = "/<token>" + path[len(secret) + 1 :]
        log.warning(
            "rejected %s %s from %s: %s",
            environ.get("REQUEST_METHOD"),
            path,
            guard.peer(environ),
            message,
        )
        return json_answer(code, {"status": code, "message": message})

    routes = {
        "realtime": (REALTIME_PATHS, http["realtime_paths"], lambda p: accept_event(p, False)),
        "history": (HISTORY_PATHS, http["history_paths"], lambda p: accept_event(p, True)),
        "status": (STATUS_PATHS, http["status_paths"], accept_status),
    }
    for route, (paths, extra, handle) in routes.items():
        view = receiver(route, handle)
        for path in (*paths, *extra):
            app.route(path, "POST", view)
            if guard.token:
                # A box can only be given a URL: let the secret be a path segment.
                app.route("/<secret>" + path, "POST", view)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return bridge.health()

    def metrics_page() -> bottle.HTTPResponse:
        body = metrics.render(lambda m: _refresh_gauges(bridge, m))
        return bottle.HTTPResponse(body, content_type=metrics.content_type)

    app.route("/metrics", "GET", guard.protect(metrics_page))
    for result in bridge.call("register_routes"):
        for method, path, callback in result.value or ():
            app.route(path, method, guard.protect(callback))

    def error_page(error: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps({"status": error.status_code, "message": str(error.body)})

    app.default_error_handler = error_page  # type: ignore[method-assign]
    return app


def _refresh_gauges(bridge: Bridge, metrics: Any) -> None:
    metrics.spool_depth.set(bridge.spool.depth())
    if bridge.dispatcher is not None:
        for name, worker in bridge.dispatcher.workers.items():
            metrics.backlog.labels(name).set(bridge.spool.last_seq - worker.cursor.value)
