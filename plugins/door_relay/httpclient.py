"""One HTTP request to a relay on the local network, with basic, digest or bearer auth.

Not urllib: its digest handler has no SHA-256, which Shelly Gen2 devices require (RFC
7616), and a relay request needs nothing else urllib offers. Plain `http://` is spoken
here on a socket: http.client parses every answer's headers with the email package,
measured at a quarter of the door thread's CPU per pulse, for a relay's three-line reply.
`https://` goes through http.client, which brings TLS.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .pulse import BackendError, RelayUnconfirmed


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Auth:
    username: str = ""
    password: str = ""
    kind: str = "basic"  # basic | digest


_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def send(
    request: Request, timeout: float, auth: Auth | None = None, verify_tls: bool = True
) -> Response:
    """Send `request`; answer a digest challenge once.

    Raises BackendError when the request never left (refused, unreachable, TLS failed) and
    RelayUnconfirmed when it was sent but no answer came back.
    """
    headers = dict(request.headers)
    if auth and auth.kind == "basic" and (auth.username or auth.password):
        token = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    response, challenge = _once(request, headers, timeout, verify_tls)
    if response.status == 401 and auth and auth.kind == "digest" and challenge:
        headers["Authorization"] = _digest(request, auth, challenge)
        response, _ = _once(request, headers, timeout, verify_tls)
    return response


def _once(
    request: Request, headers: dict[str, str], timeout: float, verify_tls: bool
) -> tuple[Response, str | None]:
    parts = urlsplit(request.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme != "https":
        return _plain(request, headers, timeout, parts, path)
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    try:
        _connect(conn, timeout)
        headers.setdefault("Connection", "close")
        # From here on the relay may have the command: a failure is a lost answer.
        conn.request(request.method, path, body=request.body, headers=headers)
        answer = conn.getresponse()
        body = answer.read(65536)
        return Response(answer.status, body), answer.getheader("WWW-Authenticate")
    except TimeoutError as err:
        raise RelayUnconfirmed(f"relay timed out after {timeout:g} s") from err
    except (OSError, http.client.HTTPException) as err:
        raise RelayUnconfirmed(f"relay connection lost: {type(err).__name__}: {err}") from err
    finally:
        conn.close()


def _connect(conn: http.client.HTTPConnection, timeout: float) -> None:
    """Open the connection (and TLS); nothing has been sent if this fails."""
    try:
        conn.connect()
    except TimeoutError as err:
        raise BackendError(f"relay unreachable: no connection within {timeout:g} s") from err
    except OSError as err:
        raise BackendError(f"relay unreachable: {type(err).__name__}: {err}") from err


def _digest(request: Request, auth: Auth, challenge: str) -> str:
    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() != "digest":
        raise BackendError(f"relay asked for {scheme} auth, configured digest")
    params = {m[0].lower(): m[1] or m[2] for m in _PARAM.findall(rest)}
    algorithm = params.get("algorithm", "MD5").upper()
    hasher = _HASHES.get(algorithm)
    if hasher is None:
        raise BackendError(f"relay wants digest algorithm {algorithm}, unsupported")

    def h(text: str) -> str:
        return hasher(text.encode()).hexdigest()

    parts = urlsplit(request.url)
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = h(f"{auth.username}:{realm}:{auth.password}")
    ha2 = h(f"{request.method}:{uri}")
    fields = {
        "username": auth.username,
        "realm": realm,
        "nonce": nonce,
        "uri": uri,
        "algorithm": algorithm,
    }
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = os.urandom(8).hex(), "00000001"
        fields.update(qop="auth", nc=nc, cnonce=cnonce)
        fields["response"] = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    else:
        fields["response"] = h(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in params:
        fields["opaque"] = params["opaque"]
    bare = {"qop", "nc", "algorithm"}
    return "Digest " + ", ".join(
        f"{k}={v}" if k in bare else f'{k}="{v}"' for k, v in fields.items()
    )


# ---- plain HTTP on a socket ---------------------------------------------------------------

MAX_HEAD = 16384
MAX_BODY = 65536
_BODY_METHODS = ("POST", "PUT", "PATCH")


def _plain(
    request: Request, headers: dict[str, str], timeout: float, parts, path: str
) -> tuple[Response, str | None]:
    wire = _request_bytes(request, headers, parts, path)
    try:
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    except TimeoutError as err:
        raise BackendError(f"relay unreachable: no connection within {timeout:g} s") from err
    except OSError as err:
        raise BackendError(f"relay unreachable: {type(err).__name__}: {err}") from err
    try:
        # From here on the relay may have the command: a failure is a lost answer.
        sock.sendall(wire)
        head, rest = _read_head(sock)
        status, fields = _parse_head(head)
        bodyless = request.method == "HEAD" or status in (204, 304)
        body = b"" if bodyless else _body(sock, fields, rest)
        return Response(status, body), fields.get("www-authenticate")
    except TimeoutError as err:
        raise RelayUnconfirmed(f"relay timed out after {timeout:g} s") from err
    except (OSError, ValueError) as err:
        raise RelayUnconfirmed(f"relay connection lost: {type(err).__name__}: {err}") from err
    finally:
        sock.close()


def _request_bytes(request: Request, headers: dict[str, str], parts, path: str) -> bytes:
    """The request as http.client would write it; a header with a line break is refused
    before anything is sent (it could smuggle a second request to the relay)."""
    host = parts.hostname if parts.port in (None, 80) else f"{parts.hostname}:{parts.port}"
    if ":" in (parts.hostname or "") and parts.port in (None, 80):
        host = f"[{parts.hostname}]"
    lines = [f"{request.method} {path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    fields = {"Connection": "close", **headers}
    if request.body is not None:
        fields["Content-Length"] = str(len(request.body))
    elif request.method in _BODY_METHODS:
        fields["Content-Length"] = "0"
    for name, value in fields.items():
        if any(c in f"{name}{value}" for c in "\r\n\0"):
            raise BackendError(f"header {name!r}: a line break or NUL is not allowed")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (request.body or b"")


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise ValueError("headers too long")
        chunk = sock.recv(8192)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, tail = status_line.partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {status_line[:40]!r}")
    status = int(tail[:3])
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    return status, fields


def _body(sock: socket.socket, fields: dict[str, str], data: bytes) -> bytes:
    """The answer's body (at most MAX_BODY): chunked, by length, or up to the close."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _chunked(sock, data)
    length = fields.get("content-length")
    want = min(int(length), MAX_BODY) if length is not None else MAX_BODY
    while len(data) < want:
        chunk = sock.recv(want - len(data))
        if not chunk:
            if length is not None:
                raise ConnectionError("closed mid-answer")
            break
        data += chunk
    return data[:want]


def _chunked(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while len(body) < MAX_BODY:
        while b"\r\n" not in data:
            data += _more(sock)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        while len(data) < size + 2:
            data += _more(sock)
        body, data = body + data[:size], data[size + 2 :]
    return body[:MAX_BODY]


def _more(sock: socket.socket) -> bytes:
    chunk = sock.recv(8192)
    if not chunk:
        raise ConnectionError("closed mid-answer")
    return chunk
