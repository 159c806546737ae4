"""The door's plain-HTTP client against a real socket that answers byte for byte."""

from __future__ import annotations

import socket
import threading

import pytest
from sophonfog_bridge.plugins.door_relay.httpclient import Request, send
from sophonfog_bridge.plugins.door_relay.pulse import BackendError, RelayUnconfirmed


class RawServer:
    """Accepts connections, records each request's bytes, answers with `answer` verbatim."""

    def __init__(self, answer: bytes, close_early: bool = False):
        self.answer = answer
        self.close_early = close_early
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                if not self.close_early:
                    conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve():
    servers: list[RawServer] = []

    def start(answer: bytes, **kw) -> RawServer:
        servers.append(RawServer(answer, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_request_is_written_as_http_client_writes_it(serve):
    server = serve(b'HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{"ison": true}')
    url = f"http://127.0.0.1:{server.port}/relay/0?turn=on&timer=1"
    answer = send(Request("GET", url, headers={"X-Test": "1"}), timeout=2)
    assert (answer.status, answer.body) == (200, b'{"ison": true}')
    head = server.requests[0].decode()
    assert head.startswith("GET /relay/0?turn=on&timer=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert "Connection: close\r\n" in head and "X-Test: 1\r\n" in head
    assert "Content-Length" not in head  # a GET without a body says none


def test_a_post_carries_its_length_and_body(serve):
    server = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    url = f"http://127.0.0.1:{server.port}/rpc"
    assert send(Request("POST", url, body=b'{"id":1}'), timeout=2).status == 200
    assert b"Content-Length: 8\r\n" in server.requests[0]


@pytest.mark.parametrize(
    "answer, body",
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
            b"Wikipedia",
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close", b"until the close"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
    ids=["chunked", "read to the close", "no content"],
)
def test_every_way_a_relay_may_end_its_answer(serve, answer, body):
    server = serve(answer)
    got = send(Request("GET", f"http://127.0.0.1:{server.port}/cm"), timeout=2)
    assert got.body == body


def test_an_answer_cut_short_is_unconfirmed_never_shut(serve):
    server = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
    with pytest.raises(RelayUnconfirmed, match="closed mid-answer"):
        send(Request("GET", f"http://127.0.0.1:{server.port}/relay/0"), timeout=2)
    hung_up = serve(b"", close_early=True)
    with pytest.raises(RelayUnconfirmed, match="closed before an answer"):
        send(Request("GET", f"http://127.0.0.1:{hung_up.port}/relay/0"), timeout=2)


def test_a_relay_that_never_answers_is_unconfirmed_after_the_timeout(serve):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection (kernel backlog), never answers
    try:
        port = listener.getsockname()[1]
        with pytest.raises(RelayUnconfirmed, match=r"timed out after 0\.3 s"):
            send(Request("GET", f"http://127.0.0.1:{port}/relay/0"), timeout=0.3)
    finally:
        listener.close()


def test_nothing_is_sent_with_a_line_break_in_a_header(serve):
    server = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    smuggled = {"X-Token": "a\r\nGET /relay/0?turn=on HTTP/1.1"}
    with pytest.raises(BackendError, match="line break"):
        send(Request("GET", f"http://127.0.0.1:{server.port}/", headers=smuggled), timeout=2)
    assert server.requests == []


def test_a_refused_connection_is_a_failure_before_anything_was_sent():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendError, match="relay unreachable"):
        send(Request("GET", f"http://127.0.0.1:{port}/relay/0"), timeout=1)
