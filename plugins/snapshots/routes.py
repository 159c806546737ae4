"""`GET /snapshots/<path>`: saved photos, read-only, never anything outside the folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import bottle

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def _servable_name(requested: str) -> bool:
    """No NUL, backslash, empty, dot or hidden component: never outside the folder."""
    if "\x00" in requested or "\\" in requested:
        return False
    parts = requested.split("/")
    return not any(part in ("", ".", "..") or part.startswith(".") for part in parts)


def resolve_request(root: Path, requested: str) -> Path | None:
    """The file under `root` that `requested` names, or None if it is not a served photo."""
    if not _servable_name(requested):
        return None
    base = root.resolve()
    try:
        target = (base / requested).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    if target.suffix.lower() not in CONTENT_TYPES:
        return None
    return target


def photo_view(
    get_root: Callable[[], Path | None], make: Callable[[str], bool] = lambda path: False
) -> Callable[[str], bottle.HTTPResponse]:
    """The view; `make(path)` may create a missing photo (a copy made on request)."""

    def view(path: str) -> bottle.HTTPResponse:
        root = get_root()
        if root is None:
            return bottle.HTTPError(503, "snapshots: not started")
        target = resolve_request(root, path)
        if target is None and _servable_name(path) and make(path):
            target = resolve_request(root, path)
        if target is None:
            return bottle.HTTPError(404, "no such photo")
        response = bottle.static_file(
            str(target.relative_to(root.resolve())),
            root=str(root.resolve()),
            mimetype=CONTENT_TYPES[target.suffix.lower()],
        )
        response.set_header("X-Content-Type-Options", "nosniff")
        response.set_header("Cache-Control", "no-cache")
        return response

    return view
