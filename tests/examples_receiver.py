"""A real HTTP receiver on 127.0.0.1 for tests: records every request and answers with
whatever status the test sets (or a queue of statuses)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, port: int = 0, status: int = 200, answers: dict[str, Any] | None = None):
        self.status = status
        # (method, path) -> (status, JSON answer), or a callable taking the request body
        self.answers = answers or {}
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = receiver.answer(self.command, self.path, body)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.command, self.path, dict(self.headers), body, status)
                    )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        found = self.answers.get((method, path.split("?")[0]))
        if callable(found):
            return found(body)
        if found is not None:
            return found
        return self.status, {"ok": self.status < 400}

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, status: int | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if status is None or r.status == status]
