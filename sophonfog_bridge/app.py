"""The bottle app: the box's routes, /healthz, /metrics, and routes plugins add.

The answer to the box depends on one thing only: the spool write. The box gives up
after 0.5 s and then delays every later event, so nothing a plugin does happens here.
"""

from __future__ import annotations

import base64
import hmac
import io
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import bottle
import multipart

from .spool import SpoolFull
from .wire import WireError, coerce_form, parse_event, parse_status

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)

REALTIME_PATHS = ("/RealTimeEvent", "/EventServer/api/SophonFogRelEvent")
HISTORY_PATHS = ("/EventServer/api/SophonFogHistoryEvent",)
STATUS_PATHS = ("/DeviceStatus",)
TOKEN_HEADER = "X-Sophonfog-Token"
SUCCESS = {"status": 0, "message": "SUCCESS"}


class Rejected(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _json(code: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps(body, ensure_ascii=False), status=code, content_type="application/json"
    )


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Rejected(400, "bad_length", "Content-Length: not a number") from None
    if length > limit:
        raise Rejected(413, "too_large", f"body: {length} bytes is over the limit of {limit} bytes")
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    if len(body) < length:
        raise Rejected(400, "truncated", f"body: truncated ({len(body)} of {length} bytes)")
    return body


def parse_body(body: bytes, content_type: str, limit: int) -> dict[str, Any]:
    """JSON (whatever Content-Type says), multipart form-data, or urlencoded form."""
    if not body.strip():
        raise Rejected(400, "empty", "body: empty")
    mime, options = multipart.parse_options_header(content_type or "")
    if mime == "multipart/form-data":
        return coerce_form(_multipart(body, options.get("boundary"), limit))
    if body.lstrip()[:1] in (b"{", b"["):
        try:
            data = json.loads(body)
        except RecursionError:
            raise Rejected(400, "bad_json", "body: nested too deeply") from None
        except ValueError as err:
            raise Rejected(400, "bad_json", f"body: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise Rejected(400, "bad_json", "body: expected a JSON object")
        return data
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "bad_body", "body: neither JSON nor a form") from None
    return coerce_form(fields)


def _multipart(body: bytes, boundary: str | None, limit: int) -> dict[str, str]:
    if not boundary:
        raise Rejected(400, "bad_multipart", "Content-Type: multipart without a boundary")
    fields: dict[str, str] = {}
    try:
        parser = multipart.MultipartParser(
            io.BytesIO(body),
            boundary,
            len(body),
            spool_limit=limit,
            memory_limit=limit,
            part_limit=256,
        )
        for part in parser:
            fields[part.name] = part.raw.decode("utf-8", "replace")
    except multipart.MultipartError as err:
        raise Rejected(400, "bad_multipart", f"body: broken multipart ({err})") from None
    return fields


class Guard:
    """Who may post: optional shared secret and CIDR allow-list on the socket peer."""

    def __init__(self, http: dict[str, Any]):
        self.token: str | None = http["token"]
        self.allowed = [ipaddress.ip_network(n) for n in http["allowed_sources"]]
        self.proxies = [ipaddress.ip_network(n) for n in http["trusted_proxies"]]

    def peer(self, environ: dict[str, Any]) -> str:
        peer = environ.get("REMOTE_ADDR", "")
        if self.proxies and _within(peer, self.proxies):
            forwarded = [a.strip() for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")]
            for address in reversed([a for a in forwarded if a]):
                if not _within(address, self.proxies):
                    return address
        return peer

    def check(self, environ: dict[str, Any], path_secret: str | None) -> None:
        """For the box's routes: the source allow-list, then the token."""
        if self.allowed and not _within(self.peer(environ), self.allowed):
            raise Rejected(403, "source", "source address not allowed")
        self.check_token(environ, path_secret)

    def check_token(self, environ: dict[str, Any], path_secret: str | None = None) -> None:
        """Query `token`, X-Sophonfog-Token, Bearer, or a Basic password (for browsers)."""
        if self.token is None:
            return
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        offered = (
            path_secret
            or query.get("token")
            or environ.get("HTTP_X_SOPHONFOG_TOKEN")
            or _authorization_secret(environ.get("HTTP_AUTHORIZATION", ""))
        )
        if not offered or not hmac.compare_digest(offered.encode(), self.token.encode()):
            raise Rejected(401, "token", "missing or wrong token")

    def protect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Pages plugins add show people's photos: with a token set, they need it too."""
        if self.token is None:
            return callback

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                self.check_token(bottle.request.environ)
            except Rejected as err:
                answer = _json(err.code, {"status": err.code, "message": err.message})
                answer.set_header("WWW-Authenticate", 'Basic realm="sophonfog-bridge"')
                return answer
            return callback(*args, **kwargs)

        return guarded


def _authorization_secret(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _within(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


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
                answer = _json(200, handle(payload))
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
        return _json(code, {"status": code, "message": message})

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
