"""The V6 API on port 5555 (`/sophon/v2/face/*`): login, devices, config."""

from __future__ import annotations

from .devices import v6_device
from .http import Reply, Request, Route
from .replies import v6_body, v6_error
from .state import BoxState

PREFIX = "/sophon/v2/face"


def routes(state: BoxState) -> list[Route]:
    def login(request: Request) -> Reply:
        body = v6_body(request)
        if (body.get("username"), body.get("password")) != (state.username, state.password):
            return v6_error("PASSWORD_ERROR", "wrong username or password", 401)
        return Reply.json({"result": True})

    def devices(request: Request) -> Reply:
        body = v6_body(request)
        if state.devices_initialising:
            return v6_error("DEVICE_INIT_ERROR", "devices are initialising, retry later")
        wanted = body.get("media_device_id")
        listed = [d for d in state.devices if wanted in (None, d.id)]
        if wanted is not None and not listed:
            return v6_error("ID_NOT_FOUND", f"no media device {wanted!r}", 404)
        return Reply.json({"devices": [v6_device(d) for d in listed]})

    return [
        ("POST", f"{PREFIX}/login", login),
        ("POST", f"{PREFIX}/getmediadevices", devices),
    ]
