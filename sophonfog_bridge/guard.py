"""Who may use the bridge: the boxes (token, source allow-list) and the people who look.

The pages that show faces (status page, saved photos, /metrics) have a guard of their own:
without a token or a viewer allow-list they are served to loopback and private networks
only, so a bridge port that leaks to the internet shows nobody's face. Home Assistant's
ingress gateway, which authenticates the user itself, is let in without the token.
"""

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

# Loopback, RFC 1918, link-local and IPv6 unique-local/link-local: the house network.
# CGNAT (100.64.0.0/10, e.g. Tailscale) is not in it: such viewers go in `http.viewers`.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


class Guard:
    """Who may post (token, source allow-list) and who may look (token, viewer allow-list)."""

    def __init__(self, http: dict[str, Any]):
        self.token: str | None = http["token"]
        self.allowed = [ipaddress.ip_network(n) for n in http["allowed_sources"]]
        self.proxies = [ipaddress.ip_network(n) for n in http["trusted_proxies"]]
        self.gateways = [ipaddress.ip_network(n) for n in http.get("ingress_gateways") or ()]
        viewers = http.get("viewers")
        if viewers is not None:
            self.viewers: list | None = [ipaddress.ip_network(n) for n in viewers]
        elif self.token is None:
            self.viewers = list(PRIVATE_NETWORKS)
        else:
            self.viewers = None  # the token is the control: any address that has it

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

    def from_gateway(self, environ: dict[str, Any]) -> bool:
        """The socket peer is Home Assistant's ingress proxy (never a forwarded address)."""
        return bool(self.gateways) and _within(environ.get("REMOTE_ADDR", ""), self.gateways)

    def check_viewer(self, environ: dict[str, Any]) -> None:
        """For the pages that show people: the gateway, else viewer addresses, then token."""
        if self.from_gateway(environ):
            # Served under /api/hassio_ingress/<token>/: bottle builds URLs from SCRIPT_NAME.
            prefix = environ.get("HTTP_X_INGRESS_PATH", "").rstrip("/")
            if prefix.startswith("/") and "//" not in prefix:
                environ["SCRIPT_NAME"] = prefix
            return
        if self.viewers is not None and not _within(self.peer(environ), self.viewers):
            raise Rejected(
                403, "viewer", "this address may not see the pages (http.viewers, http.token)"
            )
        self.check_token(environ)

    def protect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Pages plugins add show people's photos: viewers only (see `check_viewer`)."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                self.check_viewer(bottle.request.environ)
            except Rejected as err:
                answer = json_answer(err.code, {"status": err.code, "message": err.message})
                if err.code == 401:
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


def _within(address: str, networks: list | tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d
    return any(ip in net for net in networks)


def json_answer(code: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps(body, ensure_ascii=False), status=code, content_type="application/json"
    )
