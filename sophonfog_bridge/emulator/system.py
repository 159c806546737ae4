"""The system-management API on port 8888: login, and where box status is pushed."""

from __future__ import annotations

from .http import Handler, Reply, Request, Route
from .replies import v5_body, v5_error, v6_body, v6_error
from .settings import split_urls
from .state import BoxState


def routes(state: BoxState) -> list[Route]:
    return v6_routes(state) if state.firmware == "v6" else v5_routes(state)


def v6_login(state: BoxState) -> Handler:
    """The V6 login, on the system port and on the face API's port alike."""

    def login(request: Request) -> Reply:
        body = v6_body(request)
        if (body.get("username"), body.get("password")) != (state.username, state.password):
            return v6_error("PASSWORD_ERROR", "wrong username or password", 401)
        return Reply.json({"result": True})

    return login


def v5_login(state: BoxState) -> Handler:
    def login(request: Request) -> Reply:
        body = v5_body(request)
        if (body.get("username"), body.get("password")) != (state.username, state.password):
            return v5_error("wrong username or password", 401)
        return Reply.json({"data": {"success": True}})

    return login


def v6_routes(state: BoxState) -> list[Route]:
    settings = state.settings

    def set_monitor(request: Request) -> Reply:
        body = v6_body(request)
        url = body.get("device_monitor_url")
        if not isinstance(url, str):
            return v6_error("PARAMETER_ERROR", "device_monitor_url must be a string of URLs")
        try:
            settings.set_monitor(
                split_urls(url),
                body.get("device_monitor_report_period", 20),
                body.get("reporter_id"),
            )
        except (TypeError, ValueError) as err:
            return v6_error("PARAMETER_ERROR", str(err))
        # The response example's keys (the response table names others).
        monitor = settings.monitor
        return Reply.json(
            {
                "monitor_address_list": monitor["urls"],
                "report_period": monitor["period"],
                "reporter_id": monitor["reporter_id"],
            }
        )

    def get_monitor(request: Request) -> Reply:
        v6_body(request)
        monitor = settings.monitor
        return Reply.json(
            {
                "reporter_id": monitor["reporter_id"],
                "device_monitor_url": ", ".join(monitor["urls"]),
                "device_monitor_report_period": monitor["period"],
            }
        )

    return [
        ("POST", "/sophon/v2/system/login", v6_login(state)),
        ("POST", "/sophon/v2/system/setsystemmonitorconfig", set_monitor),
        ("POST", "/sophon/v2/system/getsystemmonitorconfig", get_monitor),
    ]


def v5_routes(state: BoxState) -> list[Route]:
    settings = state.settings

    def set_monitor(request: Request) -> Reply:
        body = v5_body(request)
        urls = body.get("monitor_address_list")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            return v5_error("monitor_address_list must be a list of URLs")
        try:
            settings.set_monitor(urls, body.get("report_period", 20), body.get("dev_sno"))
        except (TypeError, ValueError) as err:
            return v5_error(str(err))
        return get_monitor(request)

    def get_monitor(request: Request) -> Reply:
        monitor = settings.monitor
        return Reply.json(
            {
                "data": {
                    "dev_sno": monitor["reporter_id"],
                    "monitor_address_list": monitor["urls"],
                    "report_period": monitor["period"],
                }
            }
        )

    # The docs name both paths for the V5 login (5.10 page vs system-management page).
    return [
        ("POST", "/SophonSystem/api/login", v5_login(state)),
        ("POST", "/SophonConfig/api/login", v5_login(state)),
        ("POST", "/SophonSystem/api/monitor", set_monitor),
        ("GET", "/SophonSystem/api/monitor", get_monitor),
    ]
