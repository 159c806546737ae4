"""Error bodies and request-body checks in each firmware's style.

The docs give the error bodies but not the HTTP status codes; the emulator answers 400 for
bad requests, 401 for a wrong password and 404 for unknown ids and paths."""

from __future__ import annotations

from typing import Any

from .http import BadRequest, Reply, Request

_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}


def v6_error(code: str, message: str, status: int = 400) -> Reply:
    return Reply.json({"error": {"code": code, "message": message}}, status)


def v5_error(message: str, status: int = 400) -> Reply:
    body = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "ERROR")}
    return Reply.json({"error": body}, status)


def v6_body(request: Request) -> dict[str, Any]:
    """A V6 call's JSON object body: every V6 call requires Content-Type application/json."""
    if not request.is_json:
        raise BadRequest(
            v6_error("UNSUPPORT_CONTENT_TYPE", "Content-Type must be application/json")
        )
    try:
        body = request.json_body()
    except ValueError as err:
        raise BadRequest(v6_error("PARAMETER_ERROR", f"the body is not JSON: {err}")) from err
    if not isinstance(body, dict):
        raise BadRequest(v6_error("PARAMETER_ERROR", "the body must be a JSON object"))
    return body


def v5_body(request: Request) -> dict[str, Any]:
    try:
        body = request.json_body()
    except ValueError as err:
        raise BadRequest(v5_error(f"the body is not JSON: {err}")) from err
    if not isinstance(body, dict):
        raise BadRequest(v5_error("the body must be a JSON object"))
    return body
