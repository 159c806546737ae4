"""A plugin process: plugins and their workers, apart from the receiver.

`sophonfog-bridge run` starts this process (`plugin_process.py`) and talks to it over a
socket pair. The bridge process receives, validates and spools; this one runs the
plugins, each worker reading the spool from its own cursor. Apart, no plugin's Python
work takes the interpreter lock from the receiver, which boxes wait on for at most 0.5 s,
and the plugins get a core of their own on a two-core machine. Plugins that ask for it
run in a second such process (`_validate_plugins`).

What plugins see is the same `bridge` as ever: `announce()` spools through the bridge
process, `known_devices()` and the core's part of `health()` come from it.
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

import bottle

from .bridge import Bridge, merge_plugins
from .channel import Channel, ChannelClosed, RemoteError
from .host import build_host
from .spool import SpoolFull, encode
from .spoolview import SpoolView, listen

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class PluginBridge(Bridge):
    """The bridge as the plugins see it, in the plugin process."""

    def __init__(self, start: dict[str, Any], channel: Channel):
        self.channel = channel
        self._start = start
        self.apart: list[str] = []
        specs = start.get("specs") or {}
        super().__init__(start["config"], build_host(specs=specs), start["source"])
        self.pid = int(start["pid"])

    def _validate_plugins(self, source: str) -> dict[str, dict[str, Any]]:
        """Every section is checked in every plugin process; each runs only its plugins.

        The first runs every enabled plugin but those that ask for a process of their own
        (`own_process = True`: a plugin that calls no other plugin's hooks and offers
        none), and names them in `apart`; the second runs just those (`only`). With
        `second_plugin_process: false` the first runs them too.
        """
        configs = super()._validate_plugins(source)
        only = self._start.get("only")
        if only is None and self.config["second_plugin_process"]:
            self.apart = [
                name
                for name in self.host.names()
                if getattr(self.host.pm.get_plugin(name), "own_process", False)
            ]
        here = set(only) if only is not None else set(self.host.names()) - set(self.apart)
        for name in set(self.host.names()) - here:
            self.host.disable(name)
        return configs

    def _open_spool(self) -> SpoolView:
        start = self._start
        missing = start.get("missing")
        return SpoolView(
            self.data_dir,
            last_seq=start["last_seq"],
            boot_seq=start["boot_seq"],
            missing=tuple(missing) if missing else None,
            fsync=self.config["spool"]["fsync"],
        )

    def _open_core_state(self) -> None:
        # Devices, boxes and recent ids belong to the receiver; a corrupt record found
        # here is counted there, where /healthz and /metrics are served.
        self.spool.on_corrupt = lambda segment, offset, first, last, name: self._tell(
            "corrupt",
            {"segment": segment, "offset": offset, "first": first, "last": last, "name": name},
        )

    def _tell(self, kind: str, args: dict[str, Any]) -> None:
        try:
            self.channel.tell(kind, args)
        except ChannelClosed:
            log.warning("plugins: could not tell the bridge process %s %s", kind, args)

    def start(self) -> None:
        self.start_plugins()

    def stop(self) -> None:
        self.stop_plugins()
        self.spool.close()

    def record(self, model: Any) -> int:
        raise SpoolFull("plugins announce(), only the receiver records")

    def announce(self, model: Any) -> int | None:
        return self.announce_many([model])[0]

    def announce_many(self, models: Sequence[Any]) -> list[int | None]:
        records = [encode(model.record_kind, *model.to_parts()) for model in models]
        try:
            seqs, _ = self.channel.ask(
                "announce", {"sizes": [len(r) for r in records]}, b"".join(records)
            )
        except (RemoteError, ChannelClosed, TimeoutError) as err:
            # What the door plugin already handles for a spool that cannot take a record.
            raise SpoolFull(f"cannot announce: {err}") from None
        return seqs

    def known_devices(self) -> list[dict[str, Any]]:
        devices, _ = self.channel.ask("known_devices")
        return devices

    def health(self, private: bool = False) -> dict[str, Any]:
        core, _ = self.channel.ask("core_health", {"private": private})
        boxes = core.pop("boxes")
        plugins = merge_plugins(self.plugins_health(private), core.pop("other_plugins", {}))
        return {**core, "plugins": plugins, "boxes": boxes}


class PluginSide:
    """Answers the bridge process: start, health, stats, pages, stop."""

    def __init__(self, channel_sock: socket.socket, bell_sock: socket.socket):
        self.bell_sock = bell_sock
        self.channel = Channel(channel_sock, self.handle, "plugins")
        self.bridge: PluginBridge | None = None
        self.app: bottle.Bottle | None = None
        self.stopping = threading.Event()

    def run(self) -> int:
        self.channel.start()
        while not self.stopping.wait(0.5):
            if self.channel.closed.is_set():
                log.error("plugins: the bridge process is gone; stopping")
                break
        if self.bridge is not None:
            self.bridge.stop()
        self.channel.close()
        return 0

    def handle(self, kind: str, args: dict[str, Any], body: bytes) -> Any:
        if kind == "start":
            return self._start(args)
        bridge = self.bridge
        if bridge is None:
            raise RuntimeError("not started")
        if kind == "health":
            return bridge.plugins_health(bool(args.get("private")))
        if kind == "stats":
            return bridge.plugin_stats()
        if kind == "http":
            return self._page(args, body)
        if kind == "stop":
            self.stopping.set()
            return True
        raise ValueError(f"unknown request {kind!r}")

    def _start(self, args: dict[str, Any]) -> dict[str, Any]:
        logging.getLogger().setLevel(args.get("log_level") or "INFO")
        bridge = PluginBridge(args, self.channel)
        bridge.start()
        # After the start, which sets the workers' pace; rings meanwhile wait in the socket.
        quiet_s = bridge.dispatcher.quiet_s() if bridge.dispatcher else 0.0
        listen(self.bell_sock, bridge.spool, quiet_s)
        self.bridge = bridge
        routes = bridge.plugin_routes()
        self.app = _plugin_app(routes)
        workers = list(bridge.dispatcher.workers) if bridge.dispatcher else []
        log.info("plugins started: %s", ", ".join(bridge.host.names()) or "none")
        return {
            "routes": [[method, path] for method, path, _ in routes],
            "workers": workers,
            "apart": bridge.apart,
        }

    def _page(self, args: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        """A request the bridge process took on a plugin's route, already guarded there."""
        assert self.app is not None
        environ = {
            "REQUEST_METHOD": args["method"],
            "PATH_INFO": args["path"],
            "QUERY_STRING": args.get("query", ""),
            "SCRIPT_NAME": args.get("script_name", ""),
            "SERVER_NAME": "sophonfog-bridge",
            "SERVER_PORT": "0",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": args.get("remote_addr", ""),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": args.get("scheme", "http"),
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            **args.get("headers", {}),
        }
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list, exc_info: Any = None) -> None:
            started.update(status=status, headers=headers)

        try:
            chunks = self.app(environ, start_response)
        except Exception:
            log.exception("plugins: page %s failed", args["path"])
            raise
        try:
            out = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return {"status": started["status"], "headers": started["headers"]}, out


def _plugin_app(routes: list[tuple[str, str, Any]]) -> bottle.Bottle:
    # A page that raises is logged here with its traceback and answered 500 there.
    app = bottle.Bottle()
    app.config["catchall"] = False  # bottle 0.13 warns at every start of the keyword form
    for method, path, callback in routes:
        app.route(path, method, callback)
    return app


def _die_with_parent(parent: int) -> None:
    """A killed bridge process must take this one along: a plugin process left over
    would go on delivering beside the next bridge's (Linux only; elsewhere the closed
    channel stops it within half a second)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)  # the parent died before we could ask to follow it


def main(argv: list[str] | None = None) -> int:
    channel_fd, bell_fd, parent = (int(a) for a in (argv or sys.argv[1:]))
    _die_with_parent(parent)
    # Ctrl-C in a terminal reaches the whole process group: the bridge process decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    side = PluginSide(socket.socket(fileno=channel_fd), socket.socket(fileno=bell_fd))
    signal.signal(signal.SIGTERM, lambda *_: side.stopping.set())
    return side.run()


if __name__ == "__main__":
    sys.exit(main())
