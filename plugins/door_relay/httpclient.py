"""One HTTP request to a relay on the local network, with basic, digest or bearer auth.

http.client rather than urllib: urllib's digest handler has no SHA-256, which Shelly
Gen2 devices require (RFC 7616), and a relay request needs nothing else urllib offers.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
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
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if not verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
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
