"""The HTTP receiver: the routes boxes POST events, history uploads and status pushes to.

A box waits at most 0.5 s for the answer and then delays every later event, so a view
does exactly this: guard, read, parse the body, hand it to the accept path, answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bottle

from ..accept import AcceptPath, Outcome
from ..body import Rejected, parse_body, read_body
from ..guard import Guard, json_answer
from ..spool import SpoolFull
from ..wire import WireError, looks_like_status

if TYPE_CHECKING:
    from ..bridge import Bridge

log = logging.getLogger(__name__)

REALTIME_PATHS = ("/RealTimeEvent", "/EventServer/api/SophonFogRelEvent")
HISTORY_PATHS = ("/EventServer/api/SophonFogHistoryEvent",)
STATUS_PATHS = ("/DeviceStatus",)


def add_receiver_routes(app: bottle.Bottle, bridge: Bridge, guard: Guard) -> None:
    """Mount every route a box posts to, with the token-in-path variant when one is set."""
    accept = AcceptPath(bridge)
    handlers = {
        "realtime": lambda p: accept.event(p),
        "history": upload_handler(accept, "event"),
        "status": upload_handler(accept, "status"),
    }
    receiver = Receiver(bridge, guard)
    for route, paths in route_paths(bridge.config["http"]).items():
        view = receiver.view(route, handlers[route])
        for path in paths:
            app.route(path, "POST", view)
            if guard.token:
                # A box can only be given a URL: let the secret be a path segment.
                app.route("/<secret>" + path, "POST", view)


def route_paths(http: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each route's paths: the firmware's own and those the config adds."""
    return {
        "realtime": (*REALTIME_PATHS, *http["realtime_paths"]),
        "history": (*HISTORY_PATHS, *http["history_paths"]),
        "status": (*STATUS_PATHS, *http["status_paths"]),
    }


def box_post_matcher(http: dict[str, Any]) -> Callable[[str, str], bool]:
    """Whether a request (method, path) is a box's post to one of the routes above, with
    or without the token as its first segment: the server gives those their own threads."""
    paths = frozenset(path for paths in route_paths(http).values() for path in paths)

    def box_post(method: str, path: str) -> bool:
        if method != "POST":
            return False
        cut = path.find("/", 1)
        return path in paths or (cut > 0 and path[cut:] in paths)

    return box_post


def upload_handler(accept: AcceptPath, usual: str) -> Callable[[dict[str, Any]], Outcome]:
    """History and status routes take both: a box is given one URL per push, and a user
    may well give it the same one for all three. The body says which it is; one that
    says neither is taken as what the route is for, and its error names that shape."""

    def handle(payload: dict[str, Any]) -> Outcome:
        is_event = isinstance(payload, dict) and "identity_id" in payload
        if looks_like_status(payload) or (usual == "status" and not is_event):
            return accept.status(payload)
        return accept.event(payload, history=True)

    return handle


class Receiver:
    """Turns a request into a payload for the accept path, and its outcome into an answer."""

    def __init__(self, bridge: Bridge, guard: Guard):
        self.bridge = bridge
        self.guard = guard
        self.metrics = bridge.metrics
        self.limit = int(bridge.config["http"]["max_body_mb"] * (1 << 20))

    def view(self, route: str, handle: Callable[[dict[str, Any]], Outcome]):
        def receive(secret: str | None = None) -> bottle.HTTPResponse:
            started = time.perf_counter()
            environ = bottle.request.environ
            self.metrics.received.labels(route).inc()
            self.bridge.activity.begin()
            try:
                answer = self._answer(environ, secret, handle)
            finally:
                self.bridge.activity.end()
            self.metrics.ack_latency.observe(time.perf_counter() - started)
            return answer

        return receive

    def _answer(self, environ: dict[str, Any], secret: str | None, handle) -> bottle.HTTPResponse:
        try:
            self.guard.check(environ, secret)
            body = read_body(environ, self.limit)
            payload = parse_body(body, environ.get("CONTENT_TYPE", ""), self.limit)
            return json_answer(200, handle(payload).answer())
        except Rejected as err:
            return self._reject(err.code, err.reason, err.message, environ, secret)
        except WireError as err:
            return self._reject(400, "invalid", str(err), environ, secret)
        except SpoolFull as err:
            return self._reject(503, "spool", str(err), environ, secret)

    def _reject(
        self, code: int, reason: str, message: str, environ: dict[str, Any], secret: str | None
    ) -> bottle.HTTPResponse:
        self.metrics.rejected.labels(reason).inc()
        path = environ.get("PATH_INFO", "")
        if secret is not None:
            # The first segment is the token (or a guess at it): never log it.
            path = "/<token>" + path[len(secret) + 1 :]
        log.warning(
            "rejected %s %s from %s: %s",
            environ.get("REQUEST_METHOD"),
            path,
            self.guard.peer(environ),
            message,
        )
        return json_answer(code, {"status": code, "message": message})
