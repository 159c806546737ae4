"""The V5R7 API on port 5555 (`/SophonDevice`, `/SophonConfig`, `/SophonFogSys`, `/SophonFace`)."""

from __future__ import annotations

import math

from . import query
from .devices import v5_device, v5_preview_list
from .http import Reply, Request, Route
from .replies import v5_body, v5_error
from .settings import split_urls
from .state import BoxState
from .store import PERSON_TYPES


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

    return [
        ("GET", "/SophonDevice/api/Devices", devices),
        *config_routes(state),
        *event_routes(state),
    ]


def config_routes(state: BoxState) -> list[Route]:
    settings = state.settings

    def get_all(request: Request) -> Reply:
        return Reply.json({"data": settings.all()})

    def get_one(request: Request, name: str) -> Reply:
        values = settings.all()
        if name not in values:
            return v5_error(f"unknown config {name!r}", 404)
        return Reply.json({"data": {name: values[name]}})

    def put(request: Request) -> Reply:
        wanted = v5_body(request).get("config_dict")
        if not isinstance(wanted, dict) or not wanted:
            return v5_error("config_dict must be a non-empty object")
        ok, failed = settings.update(wanted)
        return Reply.json({"data": {"failed_configs": list(failed), "success_configs": ok}})

    def set_history(request: Request) -> Reply:
        body = v5_body(request)
        urls = body.get("history_upload_event_url")
        problem = _history_problem(body, urls)
        if problem:
            return v5_error(problem)
        settings.update(
            {
                "HISTORY_UPLOAD_EVENT_URL": "".join(f"{url}," for url in urls),
                "HISTORY_CONTENT_TYPE": body["content-type"],
                "REPORTED_PEROID": body["reported_peroid"],
                **{key: bool(body.get(field, True)) for field, key in _PHOTO_FIELDS.items()},
            }
        )
        return get_history(request)

    def get_history(request: Request) -> Reply:
        values = settings.all()
        data = {
            "message": "success",
            "history_upload_event_url": split_urls(values["HISTORY_UPLOAD_EVENT_URL"]),
            "content-type": values["HISTORY_CONTENT_TYPE"],
            "reported_peroid": values["REPORTED_PEROID"],
            **{field: values[key] for field, key in _PHOTO_FIELDS.items()},
        }
        return Reply.json({"data": data})

    return [
        ("GET", "/SophonConfig/api/Configs", get_all),
        ("GET", "/SophonConfig/api/Configs/(?P<name>[A-Za-z0-9_]+)", get_one),
        ("PUT", "/SophonConfig/api/Configs", put),
        ("POST", "/SophonFogSys/api/HistoryEventUrl", set_history),
        ("GET", "/SophonFogSys/api/HistoryEventUrl", get_history),
    ]


_PHOTO_FIELDS = {
    "history_need_reg_pic": "HISTORY_EVENT_NEED_REG_PIC",
    "history_need_spot_pic": "HISTORY_EVENT_NEED_SPOT_PIC",
    "history_need_recognize_face": "HISTORY_EVENT_NEED_RECOGNIZE_FACE",
}


def _history_problem(body: dict, urls: object) -> str | None:
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return "history_upload_event_url must be a list of URLs"
    if body.get("content-type") not in ("json", "form-data"):
        return "content-type must be 'json' or 'form-data'"
    period = body.get("reported_peroid")
    if isinstance(period, bool) or not isinstance(period, (int, float)) or period <= 0:
        return "reported_peroid must be a positive number"
    return None


def _filters(request: Request) -> query.Filters:
    def number(name: str) -> float | None:
        value = request.arg(name)
        return None if value in (None, "") else float(value)

    times = {
        k: query.to_seconds(v)
        for k in ("datetime_gte", "datetime_lte")
        if (v := request.arg(k)) not in (None, "")
    }
    # V5 query records carry scores on 0..1, so its score filters are on 0..1 too.
    low, high = number("score_min"), number("score_max")
    user_type = request.arg("userType")
    streams = [s for v in request.query.get("streams", []) for s in v.split(",") if s]
    return query.Filters(
        gte=times.get("datetime_gte"),
        lte=times.get("datetime_lte"),
        name=request.arg("name") or None,
        identity_id=request.arg("identity_id") or None,
        score_min=None if low is None else low * 100,
        score_max=None if high is None else high * 100,
        person_types=frozenset({PERSON_TYPES[int(user_type) - 1]}) if user_type else None,
        devices=frozenset(streams) or None,
    )


def event_routes(state: BoxState) -> list[Route]:
    store = state.store

    def events(request: Request) -> Reply:
        try:
            filters = _filters(request)
            per_page, page = int(request.arg("per_page", "10")), int(request.arg("page", "0"))
            if per_page < 1 or page < 0:
                raise ValueError("per_page must be >= 1 and page >= 0 (pages count from 0)")
        except (IndexError, ValueError) as err:
            return v5_error(f"bad query: {err}")
        found = query.select(store.all(), filters, state.newest_first)
        data = [
            query.v5_event(e, store.is_sent(e["seq"]), state.identity)
            for e in query.page(found, page, per_page)
        ]
        pagination = {
            "num_pages": math.ceil(len(found) / per_page),
            "page": page,
            "per_page": per_page,
            "total_count": len(found),
        }
        return Reply.json({"data": data, "pagination": pagination})

    def event_image(request: Request, image_id: str) -> Reply:
        found = store.image(image_id)
        if found is None or found[1] == "register":
            return v5_error(f"no event image {image_id!r}", 404)
        event, kind = found
        if not query.image_time_matches(event, request.arg("datetime")):
            return v5_error("datetime= must be the event's timestamp (seconds or ms)")
        return Reply(200, event["images"][kind], "image/jpeg")

    def gallery_image(request: Request, image_id: str) -> Reply:
        found = store.image(image_id)
        if found is None or found[1] != "register":
            return v5_error(f"no image {image_id!r}", 404)
        return Reply(200, found[0]["images"]["register"], "image/jpeg")

    return [
        ("GET", "/SophonFace/api/events", events),
        ("GET", "/SophonFace/api/event_images/(?P<image_id>[^/]+)", event_image),
        ("GET", "/SophonFace/api/images/(?P<image_id>[^/]+)", gallery_image),
    ]
