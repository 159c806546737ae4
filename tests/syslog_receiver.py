"""Real syslog receivers for the tests (UDP, TCP, unix datagram) and a strict RFC 5424 parser."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field

BOM = b"\xef\xbb\xbf"
# RFC 5424 section 6 ABNF, header part. PRIVAL 0..191 without leading zeros, VERSION 1.
HEADER = re.compile(
    rb"^<(?P<pri>0|1[0-9]{0,2}|[2-9][0-9]?)>(?P<version>1) "
    rb"(?P<timestamp>-|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})) "
    rb"(?P<hostname>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    rb"(?P<msgid>[!-~]{1,32}) "
)
SD_NAME = re.compile(rb"[!#-<>-\\^-~]{1,32}")  # PRINTUSASCII except = SP ] "


@dataclass
class Syslog5424:
    pri: int
    facility: int
    severity: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: str
    has_bom: bool


def parse_5424(data: bytes) -> Syslog5424:
    """Parse one message strictly; AssertionError says what is wrong."""
    head = HEADER.match(data)
    assert head, f"bad RFC 5424 header: {data[:120]!r}"
    pri = int(head["pri"])
    assert pri <= 191
    rest = data[head.end() :]
    sd: dict[str, dict[str, str]] = {}
    if rest.startswith(b"-"):
        rest = rest[1:]
    else:
        assert rest.startswith(b"["), f"no structured data: {rest[:40]!r}"
        while rest.startswith(b"["):
            rest = rest[1:]
            name = SD_NAME.match(rest)
            assert name, f"bad SD-ID: {rest[:40]!r}"
            sd_id = name.group().decode()
            params: dict[str, str] = {}
            rest = rest[name.end() :]
            while rest.startswith(b" "):
                key = SD_NAME.match(rest, 1)
                assert key and rest[key.end() : key.end() + 2] == b'="', f"bad param {rest[:40]!r}"
                rest = rest[key.end() + 2 :]
                value, rest = _param_value(rest)
                params[key.group().decode()] = value
            assert rest.startswith(b"]"), f"SD element not closed: {rest[:40]!r}"
            rest = rest[1:]
            sd[sd_id] = params
    msg, has_bom = "", False
    if rest:
        assert rest.startswith(b" "), f"no SP before MSG: {rest[:20]!r}"
        body = rest[1:]
        has_bom = body.startswith(BOM)
        msg = body[len(BOM) :].decode("utf-8") if has_bom else body.decode("utf-8")
    return Syslog5424(
        pri=pri,
        facility=pri // 8,
        severity=pri % 8,
        timestamp=head["timestamp"].decode(),
        hostname=head["hostname"].decode(),
        app=head["app"].decode(),
        procid=head["procid"].decode(),
        msgid=head["msgid"].decode(),
        sd=sd,
        msg=msg,
        has_bom=has_bom,
    )


def _param_value(data: bytes) -> tuple[str, bytes]:
    """PARAM-VALUE up to the closing quote; only \\" \\\\ \\] are escapes (RFC 5424 6.3.3)."""
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i : i + 1]
        if c == b"\\" and data[i + 1 : i + 2] in (b'"', b"\\", b"]"):
            out += data[i + 1 : i + 2]
            i += 2
            continue
        assert c != b"]", "unescaped ] in a PARAM-VALUE"
        if c == b'"':
            return out.decode("utf-8"), data[i + 1 :]
        out += c
        i += 1
    raise AssertionError("PARAM-VALUE not closed")


def split_octet_counted(stream: bytes) -> tuple[list[bytes], bytes]:
    """RFC 6587 octet counting: `LEN SP MSG` repeated; returns messages and the rest."""
    messages = []
    while stream:
        match = re.match(rb"([1-9][0-9]*) ", stream)
        assert match or len(stream) < 12, f"not octet-counted: {stream[:40]!r}"
        if not match:
            break
        length = int(match.group(1))
        end = match.end() + length
        if len(stream) < end:
            break
        messages.append(stream[match.end() : end])
        stream = stream[end:]
    return messages, stream


@dataclass
class Receiver:
    """Collects what arrives; `frames` are datagrams, or the raw TCP byte stream chunks."""

    frames: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, data: bytes) -> None:
        with self.lock:
            self.frames.append(data)

    def stream(self) -> bytes:
        with self.lock:
            return b"".join(self.frames)


class UdpReceiver(Receiver):
    def __init__(self) -> None:
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.add(self.sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


class UnixReceiver(UdpReceiver):
    def __init__(self, path: str) -> None:
        Receiver.__init__(self)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()


class TcpReceiver(Receiver):
    """Accepts connections on a fixed port; `close()` drops them, `start()` listens again."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self.connections = 0
        self.start()

    def start(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.port = self.server.getsockname()[1]
        self.server.listen(4)
        self.server.settimeout(0.2)
        self.stopped = threading.Event()
        self.clients: list[socket.socket] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self.clients.append(client)
            threading.Thread(target=self._read, args=(client,), daemon=True).start()

    def _read(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.add(data)

    def close(self) -> None:
        """Stop listening for real before returning: no connection is accepted after this."""
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(5)
        self.server.close()
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
