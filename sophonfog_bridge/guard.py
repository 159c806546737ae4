"""Who may use the bridge: an optional shared secret and a CIDR allow-list of boxes."""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import bottle

from .body import Rejected


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
                answer = json_answer(err.code, {"status": err.code, "message": err.message})
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


def json_answer(code: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps(body, ensure_ascii=False), status=code, content_type="application/json"
    )
