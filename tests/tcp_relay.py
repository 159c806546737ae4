"""A TCP relay between a client and a real server, over real sockets, that a test can
make hold back what the server sends, or cut: a broker whose acknowledgements are late,
or a network that drops the connection at the worst moment."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.holding = threading.Event()  # set: the server's bytes wait here
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.held_bytes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        held = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if from_server and self.holding.is_set():
                held += data  # never delivered: cut() ends the connection holding it
                self.held_bytes += len(data)
                continue
            try:
                sink.sendall(held + data)
            except OSError:
                return
            held = b""

    def cut(self) -> None:
        """End every connection at once, what was held back with it."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.holding.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()
