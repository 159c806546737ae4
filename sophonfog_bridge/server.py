"""Serving the app with waitress, and stopping cleanly on SIGTERM / SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

from waitress.server import create_server

from .app import create_app
from .lanes import Lanes
from .sources.http import box_post_matcher

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger(__name__)


def serve(bridge: Bridge) -> None:
    """Run until SIGTERM or SIGINT; then stop accepting, let workers finish, stop plugins."""
    http = bridge.config["http"]
    limit = int(http["max_body_mb"] * (1 << 20))
    # First: the plugins' pages are known once they run (in their own process, perhaps).
    bridge.start()
    try:
        server = _server(bridge, http, limit)
    except BaseException:
        bridge.stop()
        raise
    stopping = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("signal %d: stopping", signum)
            # waitress's loop ends on SystemExit and then waits for requests in flight.
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("listening on http://%s:%s", http["host"], server.effective_port)
    try:
        server.run()
    finally:
        server.close()
        bridge.stop()
        log.info("stopped")


def _server(bridge: Bridge, http: dict, limit: int):
    return create_server(
        create_app(bridge),
        _dispatcher=Lanes(box_post_matcher(http), box_threads(bridge.config), http["threads"]),
        host=http["host"],
        port=http["port"],
        connection_limit=http["max_in_flight"],
        channel_timeout=http["client_timeout_s"],
        # waitress looks for idle connections only every cleanup_interval (30 s by
        # default), which would stretch a 10 s client timeout to 40 s.
        cleanup_interval=max(1, min(30, int(http["client_timeout_s"] / 2))),
        # Bodies up to twice our limit reach the app, which answers 413 in JSON; beyond
        # that waitress refuses them itself before buffering gigabytes.
        max_request_body_size=2 * limit + (1 << 20),
        ident="sophonfog-bridge",
        # Events are ~100 KB: read them in 64 KiB gulps, not waitress's 8 KiB (fewer trips
        # of its I/O thread through the GIL; ~+10 % ack throughput measured here).
        recv_bytes=65536,
        clear_untrusted_proxy_headers=False,
    )


def box_threads(config: dict) -> int:
    """The boxes' lane (see lanes.py): 2 threads, or as many as the pages' with fsync on,
    where they wait for the disk rather than for each other."""
    chosen = config["http"]["box_threads"]
    if chosen is not None:
        return chosen
    return config["http"]["threads"] if config["spool"]["fsync"] else 2
