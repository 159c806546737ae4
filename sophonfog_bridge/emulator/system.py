"""The system-management API on port 8888: login, and where box status is pushed."""

from __future__ import annotations

from .http import Reply, Request, Route
from .replies import v5_body, v5_error, v6_body, v6_error
from .state import BoxState


def routes(state: BoxState) -> list[Route]:
    return v6_routes(state) if state.firmware == "v6" else v5_routes(state)


def v6_routes(state: BoxState) -> list[Route]:
    def login(request: Request) -> Reply:
        body = v6_body(request)
        if (body.get("username"), body.get("password")) != (state.username, state.password):
            return v6_error("PASSWORD_ERROR", "wrong username or password", 401)
        return Reply.json({"result": True})

    return [("POST", "/sophon/v2/system/login", login)]


def v5_routes(state: BoxState) -> list[Route]:
    def login(request: Request) -> Reply:
        body = v5_body(request)
        if (body.get("username"), body.get("password")) != (state.username, state.password):
            return v5_error("wrong username or password", 401)
        return Reply.json({"data": {"success": True}})

    # The docs name both paths for the V5 login (5.10 page vs system-management page).
    return [
        ("POST", "/SophonSystem/api/login", login),
        ("POST", "/SophonConfig/api/login", login),
    ]
