"""Setting up boxes from the status page: `GET/POST setup/boxes`, `POST setup/boxes/remove`.

Behind the pages' guard (token, viewers, or HA's ingress gateway), and more: a browser on
the house network could be made to post here by any web site, so every POST must carry
the panel's CSRF token (given by `GET setup/boxes`, which another site's page cannot
read) and, when the browser says where the request comes from, come from this bridge's
own origin. The box's answers are shown; no password and no token ever is.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import bottle

from .boxconfigure import Options, configure
from .guard import Guard, _within, json_answer
from .panelboxes import same_box
from .setupform import is_loopback, read_form

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)

CSRF_HEADER = "HTTP_X_SOPHONFOG_CSRF"
PUBLIC_KEYS = ("name", "host", "firmware", "api_port", "ws_port", "system_port", "username")


class BoxPanel:
    def __init__(self, bridge: Bridge, guard: Guard):
        self.bridge = bridge
        self.guard = guard
        # One per run: a page opened before a restart is told to reload.
        self.csrf = secrets.token_urlsafe(24)

    def routes(self, app: bottle.Bottle) -> None:
        app.route("/setup/boxes", "GET", self.guard.protect(self.listing))
        app.route("/setup/boxes", "POST", self.guard.protect(self.add))
        app.route("/setup/boxes/remove", "POST", self.guard.protect(self.remove))

    # ---- views ---------------------------------------------------------------------------

    def listing(self) -> bottle.HTTPResponse:
        environ = bottle.request.environ
        host = environ.get("HTTP_HOST", "")
        ingress = self.guard.from_gateway(environ)
        suggested = (
            "" if ingress or is_loopback(urlsplit("http://" + host).hostname or "") else host
        )
        panel = self.bridge.panel_boxes.all()
        body = {
            "csrf": self.csrf,
            "ingress": ingress,
            "bridge_port": self.bridge.config["http"]["port"],
            "bridge_suggested": suggested,
            "panel": [_public(b) for b in panel],
            "configured": [_public(b) for b in self.bridge.configured_boxes],
        }
        return _answer(200, body)

    def add(self) -> bottle.HTTPResponse:
        refused = self._refused()
        if refused is not None:
            return refused
        data = _json_body()
        if data is None:
            return _answer(400, {"problems": ["send the form as a JSON object"]})
        environ = bottle.request.environ
        host_header = None if self.guard.from_gateway(environ) else environ.get("HTTP_HOST")
        request, problems = read_form(data, self.bridge.config["http"], host_header)
        if request is None:
            return _answer(400, {"problems": problems})
        clash = next((b for b in self.bridge.configured_boxes if same_box(b, request.box)), None)
        if clash is not None:
            return _answer(409, {"problems": [_in_config(clash)]})
        return self._configure(request)

    def remove(self) -> bottle.HTTPResponse:
        refused = self._refused()
        if refused is not None:
            return refused
        data = _json_body()
        name = str(data.get("name") or "") if data else ""
        if any(b["name"] == name for b in self.bridge.configured_boxes):
            return _answer(
                409, {"problems": [f"box {name} is in the config file: remove it there"]}
            )
        if self.bridge.panel_boxes.remove(name) is None:
            return _answer(404, {"problems": [f"no box named {name!r} was added from the panel"]})
        if self.bridge.box_sources is not None:
            self.bridge.box_sources.remove(name)
        log.info("box %s removed from the panel", name)
        lines = [
            f"box {name} removed: the bridge no longer connects to it",
            "the box itself still sends its uploads here until they are changed on the box",
        ]
        return _answer(200, {"ok": True, "lines": [{"text": t, "problem": False} for t in lines]})

    # ---- parts -----------------------------------------------------------------------------

    def _configure(self, request: Any) -> bottle.HTTPResponse:
        box = request.box
        opts = Options(url=request.bridge_url, replace=request.replace, dry_run=request.dry_run)
        report = configure(box, opts)
        added = False
        if report.error is None and not request.dry_run and report.firmware in ("v5", "v6"):
            box = {**box, "firmware": report.firmware}
            self.bridge.panel_boxes.put(box)
            if self.bridge.box_sources is not None:
                self.bridge.box_sources.add(box)
            added = True
            log.info("box %s (%s) added from the panel", box["name"], box["host"])
            report.say(f"box {box['name']} added: the bridge connects to its websocket now")
        elif report.firmware == "v2" and report.error is None:
            report.say("V2 firmware posts its events here over HTTP: nothing to connect to")
        hide = [s for s in (box.get("password"), self.bridge.config["http"].get("token")) if s]
        body = {
            "ok": report.code == 0,
            "code": report.code,
            "added": added,
            "firmware": report.firmware,
            "box": _public(box),
            "bridge_url": _masked(request.bridge_url, hide),
            "lines": [{"text": _masked(s.text, hide), "problem": s.problem} for s in report.lines],
        }
        return _answer(502 if report.error else 200, body)

    def _refused(self) -> bottle.HTTPResponse | None:
        """The CSRF token and the origin check; the answer that refuses, or None."""
        environ = bottle.request.environ
        offered = environ.get(CSRF_HEADER, "")
        if not hmac.compare_digest(offered.encode(), self.csrf.encode()):
            why = "this page is out of date (the bridge restarted?): reload it"
            if not offered:
                why = "no CSRF token: changes are made from the status page only"
            return _answer(403, {"problems": [why]})
        if not self.guard.from_gateway(environ) and not self._same_origin(environ):
            return _answer(403, {"problems": ["the request comes from another site"]})
        return None

    def _same_origin(self, environ: dict[str, Any]) -> bool:
        # Through HA's ingress Host is the add-on's, the origin HA's: only the token counts.
        origin = environ.get("HTTP_ORIGIN") or environ.get("HTTP_REFERER")
        if origin is None:
            return True  # not a browser, which always sends Origin on a POST
        hosts = {environ.get("HTTP_HOST", "").lower()}
        if self.guard.proxies and _within(environ.get("REMOTE_ADDR", ""), self.guard.proxies):
            hosts.add(environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[0].strip().lower())
        return origin != "null" and urlsplit(origin).netloc.lower() in hosts


def _json_body() -> dict[str, Any] | None:
    try:
        data = json.loads(bottle.request.body.read(1 << 16) or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _public(box: dict[str, Any]) -> dict[str, Any]:
    return {k: box.get(k) for k in PUBLIC_KEYS}


def _in_config(box: dict[str, Any]) -> str:
    return (
        f"box {box['name']} ({box['host']}:{box['api_port']}) is in the config file: "
        "change it there"
    )


def _masked(text: str, secrets_: list[str]) -> str:
    for secret in secrets_:
        text = text.replace(secret, "***")
    return text


def _answer(status: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    answer = json_answer(status, body)
    answer.set_header("Cache-Control", "no-store")
    answer.set_header("X-Content-Type-Options", "nosniff")
    return answer
