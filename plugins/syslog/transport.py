"""Sockets to the syslog daemon: UDP, TCP (framed, reconnecting) and unix sockets.

Datagram transports are lossy by nature: when nobody listens the message is dropped
(`Lost`). Connection transports raise `Unreachable`, and the plugin lets the message wait
in the spool until the daemon is back.
"""

from __future__ import annotations

import errno
import select
import socket

from .config import Address


class Unreachable(Exception):
    """The daemon cannot take the message now; send it again later."""


class Lost(Exception):
    """The datagram could not be sent and is gone."""


def _reason(err: OSError) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    return err.strerror or str(err) or type(err).__name__


def frame_octets(message: bytes) -> bytes:
    """RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`."""
    return str(len(message)).encode() + b" " + message


def frame_newline(message: bytes) -> bytes:
    return message + b"\n"


class _OneSocket:
    """A transport that holds at most one socket and drops it when it breaks."""

    def __init__(self, address: Address, timeout_s: float):
        self.address = address
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class UdpTransport(_OneSocket):
    def __init__(self, address: Address, timeout_s: float):
        super().__init__(address, timeout_s)
        self.target: tuple | None = None

    def send(self, message: bytes) -> None:
        try:
            if self.sock is None:
                family, _, _, _, target = socket.getaddrinfo(
                    self.address.host, self.address.port, type=socket.SOCK_DGRAM
                )[0]
                self.sock = socket.socket(family, socket.SOCK_DGRAM)
                self.sock.settimeout(self.timeout_s)
                self.target = target
            # Unconnected sendto: an ICMP "port unreachable" from a missing daemon is
            # not reported back, so no daemon means silence, not errors.
            self.sock.sendto(message, self.target)
        except OSError as err:
            self.close()
            raise Lost(f"cannot send to {self.address}: {_reason(err)}") from err


class StreamTransport(_OneSocket):
    """TCP, or a unix stream socket; one connection, reopened when it breaks."""

    def __init__(self, address: Address, timeout_s: float, framing: str):
        super().__init__(address, timeout_s)
        self.frame = frame_octets if framing == "octet-counting" else frame_newline

    def _connect(self) -> socket.socket:
        if self.address.scheme == "unix":
            return _unix_socket(self.address.path, socket.SOCK_STREAM, self.timeout_s)
        return socket.create_connection(
            (self.address.host, self.address.port), timeout=self.timeout_s
        )

    def _peer_closed(self, sock: socket.socket) -> bool:
        """A syslog server never talks: readable means it closed (or reset) the connection.

        Checked before each send, because the first send on a connection the peer
        already closed succeeds locally and the message would vanish.
        """
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def send(self, message: bytes) -> None:
        try:
            if self.sock is not None and self._peer_closed(self.sock):
                self.close()
            if self.sock is None:
                self.sock = self._connect()
            self.sock.sendall(self.frame(message))
        except OSError as err:
            self.close()
            raise Unreachable(f"{self.address}: {_reason(err)}") from err


class UnixDatagramTransport(_OneSocket):
    """`/dev/log` and friends; falls back to a stream socket if the daemon uses one."""

    def __init__(self, address: Address, timeout_s: float):
        super().__init__(address, timeout_s)
        self.stream: StreamTransport | None = None

    def send(self, message: bytes) -> None:
        if self.stream is not None:
            self.stream.send(message)
            return
        try:
            if self.sock is None:
                self.sock = _unix_socket(self.address.path, socket.SOCK_DGRAM, self.timeout_s)
            self.sock.send(message)
        except OSError as err:
            self.close()
            if err.errno == errno.EPROTOTYPE:
                # Local stream sockets take newline-terminated messages.
                self.stream = StreamTransport(self.address, self.timeout_s, "newline")
                self.stream.send(message)
                return
            if err.errno in (errno.ENOBUFS, errno.EAGAIN) or isinstance(err, TimeoutError):
                raise Unreachable(f"{self.address}: busy") from err
            raise Lost(f"cannot send to {self.address}: {_reason(err)}") from err

    def close(self) -> None:
        super().close()
        if self.stream is not None:
            self.stream.close()


Transport = UdpTransport | StreamTransport | UnixDatagramTransport


def open_transport(address: Address, timeout_s: float, framing: str) -> Transport:
    if address.scheme == "udp":
        return UdpTransport(address, timeout_s)
    if address.scheme == "tcp":
        return StreamTransport(address, timeout_s, framing)
    return UnixDatagramTransport(address, timeout_s)


def _unix_socket(path: str, kind: int, timeout_s: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.settimeout(timeout_s)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock
