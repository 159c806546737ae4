"""A request body as the box sends it -> a dict: JSON, multipart form-data or a plain form.

The box sends JSON with a wrong or missing Content-Type as often as not, so the bytes
decide, not the header. Every failure is a `Rejected` naming what is wrong.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import parse_qsl

import multipart

from . import jsoncodec
from .wire import coerce_form


class Rejected(Exception):
    """A request the bridge refuses: the HTTP code, a metrics reason, a message for the box."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Rejected(400, "bad_length", "Content-Length: not a number") from None
    if length > limit:
        raise Rejected(413, "too_large", f"body: {length} bytes is over the limit of {limit} bytes")
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    if len(body) < length:
        raise Rejected(400, "truncated", f"body: truncated ({len(body)} of {length} bytes)")
    return body


def parse_body(body: bytes, content_type: str, limit: int) -> dict[str, Any]:
    """JSON (whatever Content-Type says), multipart form-data, or urlencoded form."""
    if not body.strip():
        raise Rejected(400, "empty", "body: empty")
    mime, options = multipart.parse_options_header(content_type or "")
    if mime == "multipart/form-data":
        return coerce_form(_multipart(body, options.get("boundary"), limit))
    if body.lstrip()[:1] in (b"{", b"["):
        try:
            data = jsoncodec.loads(body)
        except RecursionError:
            raise Rejected(400, "bad_json", "body: nested too deeply") from None
        except ValueError as err:
            raise Rejected(400, "bad_json", f"body: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise Rejected(400, "bad_json", "body: expected a JSON object")
        return data
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "bad_body", "body: neither JSON nor a form") from None
    return coerce_form(fields)


def _multipart(body: bytes, boundary: str | None, limit: int) -> dict[str, str]:
    if not boundary:
        raise Rejected(400, "bad_multipart", "Content-Type: multipart without a boundary")
    fields: dict[str, str] = {}
    try:
        parser = multipart.MultipartParser(
            io.BytesIO(body),
            boundary,
            len(body),
            spool_limit=limit,
            memory_limit=limit,
            part_limit=256,
        )
        for part in parser:
            fields[part.name] = part.raw.decode("utf-8", "replace")
    except multipart.MultipartError as err:
        raise Rejected(400, "bad_multipart", f"body: broken multipart ({err})") from None
    return fields
