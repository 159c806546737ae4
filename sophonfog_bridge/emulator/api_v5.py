"""The V5R7 API on port 5555 (`/SophonDevice`, `/SophonConfig`, `/SophonFogSys`, `/SophonFace`)."""

from __future__ import annotations

from .devices import v5_device, v5_preview_list
from .http import Reply, Request, Route
from .replies import v5_error
from .state import BoxState


def routes(state: BoxState) -> list[Route]:
    def devices(request: Request) -> Reply:
        wanted = request.arg("device_id") or None
        listed = [d for d in state.devices if wanted in (None, d.id)]
        if wanted is not None and not listed:
            return v5_error(f"no device {wanted!r}", 404)
        data = {"devices_list": [v5_device(d) for d in listed]}
        if (request.arg("need_preview_list") or "").lower() in ("1", "true"):
            data["preview_list"] = v5_preview_list(state.devices)
        return Reply.json({"data": data})

    return [("GET", "/SophonDevice/api/Devices", devices)]
