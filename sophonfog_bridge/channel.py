"""Requests and answers between the bridge's two processes, over one socket pair.

A message is a small JSON header and an optional binary body (a photo a page asks for),
each length-prefixed. Either side may ask; every request is answered once, with a value
or an error string. Requests are handled on a few threads of the receiving side, so a
slow one (a status page being built) never holds up another (a door decision being
spooled), and a handler may itself ask the other side. The standard library's
multiprocessing connections offer no such concurrent, two-way calls; hence this.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import struct
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import jsoncodec

log = logging.getLogger(__name__)

FRAME = struct.Struct("<II")  # header length, body length
MAX_HEADER = 64 << 20
MAX_BODY = 512 << 20

Handler = Callable[[str, dict[str, Any], bytes], "tuple[Any, bytes] | Any"]


class ChannelClosed(ConnectionError):
    """The other process is gone (or going): nothing more can be asked of it."""


class RemoteError(RuntimeError):
    """The other side's handler raised; the message says what."""


class Channel:
    """One end of the socket pair: `ask` the other side, answer what it asks."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        name: str,
        workers: int = 4,
        inline: Collection[str] = (),
    ):
        self.sock = sock
        self.name = name
        self._handler = handler
        # Requests whose handlers never ask back and never take long may be answered on the
        # reader thread: one thread handoff less for each (a door decision to spool).
        self._inline = frozenset(inline)
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future] = {}
        self._waiting_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"{name}-call")
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-read", daemon=True)

    def start(self) -> Channel:
        self._reader.start()
        return self

    # ---- asking ------------------------------------------------------------------------

    def ask(
        self, kind: str, args: dict[str, Any] | None = None, body: bytes = b"", timeout: float = 30
    ) -> tuple[Any, bytes]:
        """The other side's answer to `kind`: (value, body). Raises ChannelClosed,
        RemoteError, or TimeoutError."""
        call_id = next(self._ids)
        answer: Future = Future()
        with self._waiting_lock:
            if self.closed.is_set():
                raise ChannelClosed(f"{self.name}: closed")
            self._waiting[call_id] = answer
        try:
            self._send({"id": call_id, "kind": kind, "args": args or {}}, body)
            return answer.result(timeout)
        finally:
            with self._waiting_lock:
                self._waiting.pop(call_id, None)

    def tell(self, kind: str, args: dict[str, Any] | None = None) -> None:
        """A message that wants no answer (a count to add). Raises ChannelClosed."""
        self._send({"kind": kind, "args": args or {}}, b"")

    def _send(self, header: dict[str, Any], body: bytes) -> None:
        head = jsoncodec.dumps(header)
        try:
            with self._send_lock:
                self.sock.sendall(FRAME.pack(len(head), len(body)) + head)
                if body:
                    self.sock.sendall(body)
        except OSError as err:
            raise ChannelClosed(f"{self.name}: {err}") from None

    # ---- answering ---------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while True:
                header, body = self._receive()
                if "reply" in header:
                    self._settle(header, body)
                elif header.get("kind") in self._inline:
                    self._answer(header, body)
                else:
                    self._pool.submit(self._answer, header, body)
        except (OSError, ValueError, EOFError) as err:
            if not self.closed.is_set():
                log.debug("%s: channel ended: %s", self.name, err)
        finally:
            self._close_waiting()

    def _receive(self) -> tuple[dict[str, Any], bytes]:
        head_len, body_len = FRAME.unpack(self._exactly(FRAME.size))
        if head_len > MAX_HEADER or body_len > MAX_BODY:
            raise ValueError("frame too large")
        header = jsoncodec.loads(self._exactly(head_len))
        return header, self._exactly(body_len) if body_len else b""

    def _exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise EOFError("the other process closed the channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _settle(self, header: dict[str, Any], body: bytes) -> None:
        with self._waiting_lock:
            answer = self._waiting.get(header["reply"])
        if answer is None:
            return  # the asker gave up waiting
        if header.get("error") is not None:
            answer.set_exception(RemoteError(header["error"]))
        else:
            answer.set_result((header.get("value"), body))

    def _answer(self, header: dict[str, Any], body: bytes) -> None:
        call_id = header.get("id")
        reply: dict[str, Any] = {"reply": call_id}
        out = b""
        try:
            result = self._handler(header["kind"], header.get("args") or {}, body)
            value, out = result if isinstance(result, tuple) else (result, b"")
            reply["value"] = value
        except Exception as err:
            if call_id is None:
                log.exception("%s: %s failed", self.name, header.get("kind"))
                return
            reply["error"] = f"{type(err).__name__}: {err}"
        if call_id is None:
            return
        with contextlib.suppress(ChannelClosed):  # the asker is gone: nothing to tell
            self._send(reply, out)

    def _close_waiting(self) -> None:
        with self._waiting_lock:
            self.closed.set()
            waiting = list(self._waiting.values())
        for answer in waiting:
            if not answer.done():
                answer.set_exception(ChannelClosed(f"{self.name}: the other process is gone"))

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
