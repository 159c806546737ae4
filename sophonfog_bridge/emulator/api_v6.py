"""The V6 API on port 5555 (`/sophon/v2/face/*`): login, devices, config, event query, images."""

from __future__ import annotations

from typing import Any

from . import query
from .devices import v6_device
from .http import BadRequest, Reply, Request, Route
from .images import blank_jpeg
from .replies import v6_body, v6_error
from .state import BoxState
from .system import v6_login

PREFIX = "/sophon/v2/face"


def routes(state: BoxState) -> list[Route]:
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
        ("POST", f"{PREFIX}/login", v6_login(state)),
        ("POST", f"{PREFIX}/getmediadevices", devices),
        *config_routes(state),
        *event_routes(state),
    ]


def config_routes(state: BoxState) -> list[Route]:
    settings = state.settings

    def get(request: Request) -> Reply:
        name = v6_body(request).get("config_name")
        values = settings.all()
        if name is None:
            return Reply.json(values)
        if name not in values:
            return v6_error("CONFIG_NAME_ERROR", f"unknown config {name!r}", 404)
        return Reply.json({name: values[name]})

    def set_(request: Request) -> Reply:
        wanted = v6_body(request).get("config_dict")
        if not isinstance(wanted, dict) or not wanted:
            return v6_error("PARAMETER_ERROR", "config_dict must be a non-empty object")
        ok, failed = settings.update(wanted)
        # The docs: one bad key makes the call an error, yet the good keys still take effect.
        if failed:
            problems = "; ".join(f"{k}: {why}" for k, why in failed.items())
            return v6_error("PARAMETER_ERROR", problems)
        values = settings.all()
        return Reply.json({name: values[name] for name in ok})

    return [("POST", f"{PREFIX}/getconfigs", get), ("POST", f"{PREFIX}/setconfigs", set_)]


def _filters(raw: Any) -> query.Filters:
    if not isinstance(raw, dict):
        raise ValueError("filters must be an object")
    times = {k: query.to_seconds(raw[k]) for k in ("datetime_gte", "datetime_lte") if k in raw}
    scores = {k: float(raw[k]) for k in ("score_min", "score_max") if k in raw}
    types = raw.get("user_type")
    devices = raw.get("media_device_ids")
    if devices is not None and not isinstance(devices, list):
        raise ValueError("media_device_ids must be a list")
    return query.Filters(
        gte=times.get("datetime_gte"),
        lte=times.get("datetime_lte"),
        name=raw.get("identity_name") or None,
        identity_id=raw.get("identity_id") or None,
        score_min=scores.get("score_min"),
        score_max=scores.get("score_max"),
        person_types=frozenset({str(types).lower()}) if types else None,
        devices=frozenset(devices) if devices else None,
    )


def _paging(body: dict[str, Any]) -> tuple[int, int]:
    limit, index = body.get("page_limit", 10), body.get("page_index", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (limit, index)):
        raise ValueError("page_limit and page_index must be integers")
    if limit < 1 or index < 0:
        raise ValueError("page_limit must be >= 1 and page_index >= 0 (pages count from 0)")
    return limit, index


def event_routes(state: BoxState) -> list[Route]:
    store = state.store

    def events(request: Request) -> Reply:
        body = v6_body(request)
        try:
            filters, (limit, index) = _filters(body.get("filters", {})), _paging(body)
        except (TypeError, ValueError) as err:
            return v6_error("PARAMETER_ERROR", str(err))
        found = query.select(store.all(), filters, state.newest_first)
        records = [
            query.v6_event(e, store.is_sent(e["seq"])) for e in query.page(found, index, limit)
        ]
        pagination = {"page_index": index, "page_limit": limit, "total_count": len(found)}
        return Reply.json({"events": records, "pagination": pagination})

    def event(request: Request) -> Reply:
        event_id = v6_body(request).get("event_id")
        found = store.by_id(str(event_id)) if event_id is not None else None
        if found is None:
            return v6_error("ID_NOT_FOUND", f"no event {event_id!r}", 404)
        return Reply.json(query.v6_event(found, store.is_sent(found["seq"])))

    def spot_image(request: Request, image_id: str) -> Reply:
        found = store.image(image_id)
        if found is None or found[1] == "register":
            raise BadRequest(v6_error("ID_NOT_FOUND", f"no event image {image_id!r}", 404))
        event, kind = found
        if not query.image_time_matches(event, request.arg("timestamp")):
            message = "timestamp= must be the event's timestamp (seconds or ms)"
            return v6_error("PARAMETER_ERROR", message)
        return Reply(200, event["images"][kind], "image/jpeg")

    def register_image(request: Request, image_id: str) -> Reply:
        found = store.image(image_id)
        if found is None or found[1] != "register":
            return Reply(200, blank_jpeg(), "image/jpeg")  # documented: a blank image
        return Reply(200, found[0]["images"]["register"], "image/jpeg")

    return [
        ("POST", f"{PREFIX}/getevents", events),
        ("POST", f"{PREFIX}/getevent", event),
        ("GET", f"{PREFIX}/getspotimage/(?P<image_id>[^/]+)", spot_image),
        ("GET", f"{PREFIX}/getregisterimage/(?P<image_id>[^/]+)", register_image),
    ]
