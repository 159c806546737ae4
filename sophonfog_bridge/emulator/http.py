"""A small threaded HTTP server with regex routes and a log of every request it answered."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("sophonfog_bridge.emulator.http")


class BadRequest(Exception):
    """The request cannot be answered; `reply` is what the box says instead."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body.decode("utf-8", "replace"))
        self.reply = reply


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(value, ensure_ascii=False).encode("utf-8"))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    parsed: Any = field(default=None)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def is_json(self) -> bool:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip() == "application/json"

    def json_body(self) -> Any:
        if not self.body.strip():
            return {}
        return json.loads(self.body)


Handler = Callable[..., Reply]
Route = tuple[str, str, Handler]


class HttpServer:
    """Answers `routes` (method, path regex, handler(request, **groups)) on one port."""

    def __init__(
        self,
        name: str,
        routes: list[Route],
        on_request: Callable[[dict[str, Any]], None],
        not_found: Callable[[Request], Reply],
    ) -> None:
        self.name = name
        self.routes = [(m, re.compile(p + r"/?\Z"), h) for m, p, h in routes]
        self.on_request = on_request
        self.not_found = not_found
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int) -> None:
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll so stop() (and so restart()) takes milliseconds, not half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"emulator-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def answer(self, request: Request) -> Reply:
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                try:
                    return handler(request, **match.groupdict())
                except BadRequest as err:
                    return err.reply
        return self.not_found(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    self.headers,
                    self.rfile.read(length) if length else b"",
                )
                reply = server.answer(request)
                # Logged before answering, so a client that has its answer finds it logged.
                server.on_request(_log_entry(server.name, request, reply))
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s: " + format, server.name, *args)

        return _Handler


def _log_entry(server: str, request: Request, reply: Reply) -> dict[str, Any]:
    try:
        body: Any = json.loads(request.body) if request.body else None
    except ValueError:
        body = request.body.decode("utf-8", "replace")
    return {
        "time": time.time(),
        "server": server,
        "method": request.method,
        "path": request.path,
        "query": {k: v if len(v) > 1 else v[0] for k, v in request.query.items()},
        "content_type": request.headers.get("Content-Type"),
        "body": body,
        "status": reply.status,
    }
