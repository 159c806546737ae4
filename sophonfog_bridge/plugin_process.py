"""The bridge process's side of the plugin processes: start each, keep it running, talk to it.

`CoreBridge` is the bridge without plugins: sources, accept path, spool, the HTTP app.
`PluginProcess` starts `plugin_main` with a socket pair for requests (`channel.py`) and
one for the spool's bell, answers what the plugins ask (spool a door decision, the known
devices, the core's health) and asks them for theirs (health, counts, their pages). If
a plugin process dies it is started again; records wait in the spool meanwhile, and the
receiver answers boxes as ever.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import bottle

from .bridge import Bridge, merge_plugins
from .channel import Channel, ChannelClosed, RemoteError
from .config import ConfigError
from .dispatcher import NoWorkers
from .event import MODELS
from .host import PluginHost
from .spool import decode
from .spoolview import Bell

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15
RESTART_MAX_S = 30
PAGE_TIMEOUT_S = 30
MAX_PAGE_BODY = 16 << 20
_CONFIG_ERRORS = ("ConfigError: ", "PluginError: ")
QUICK = frozenset({"announce", "known_devices", "corrupt"})


class PluginsDown(RuntimeError):
    """The plugin process is not running (starting again after a crash, or stopping)."""


class PluginProcess:
    def __init__(
        self,
        bridge: CoreBridge,
        specs: Mapping[str, str],
        log_level: str,
        only: list[str] | None = None,
    ):
        self.bridge = bridge
        self.specs = dict(specs)
        self.log_level = log_level
        self.only = only  # None: every plugin not running apart
        self.apart: list[str] = []  # the plugins that asked for a process of their own
        self.workers: list[str] = []
        self.routes: list[tuple[str, str]] = []
        self.down_reason: str | None = "not started"
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._channel: Channel | None = None
        self._bell: Bell | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._supervisor = threading.Thread(target=self._supervise, name="plugins", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the plugin process and wait until its plugins run; ConfigError if their
        config sections are wrong (the plugin process validates them)."""
        # Spawned from the supervisor thread, which lives as long as the bridge: the
        # plugin process follows the thread that started it when it dies (PDEATHSIG).
        self._supervisor.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError("the plugin process did not start in time")
        if self._start_error is not None:
            raise self._start_error

    def _supervise(self) -> None:
        backoff, first = 1.0, True
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self._run_once(first)
            except Exception as err:
                if first:
                    self._start_error = err
                    self._started.set()
                    return
                log.exception("plugins: %s failed to start", self.name)
            first = False
            if self._stopping.is_set():
                return
            if time.monotonic() - began > 60:
                backoff = 1.0  # it ran a good while: this is not a crash loop
            log.error("plugins: starting %s again in %.0f s", self.name, backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, RESTART_MAX_S)
            self.restarts += 1

    def _run_once(self, first: bool) -> None:
        """Start one plugin process, tell the supervisor it runs, wait until it ends."""
        proc, channel, bell = self._spawn()
        try:
            answer, _ = channel.ask("start", self._start_args(first), timeout=START_TIMEOUT_S)
        except BaseException as err:
            proc.kill()
            proc.wait()
            bell.close()
            channel.close()
            message = str(err)
            if isinstance(err, RemoteError) and message.startswith(_CONFIG_ERRORS):
                raise ConfigError(message.split(": ", 1)[1]) from None
            raise
        self.workers = list(answer["workers"])
        self.apart = list(answer.get("apart") or ())
        self.routes = [(method, path) for method, path in answer["routes"]]
        for name in self.workers:
            self.bridge.spool.watch(name)
        self._proc, self._channel, self._bell = proc, channel, bell
        self.down_reason = None
        self._started.set()
        code = proc.wait()
        self.down_reason = f"the plugin process exited ({code})"
        self._channel, self._proc = None, None
        self.bridge.ring_with(self, None)
        bell.close()
        channel.close()
        if not self._stopping.is_set():
            log.error("plugins: %s: %s", self.name, self.down_reason)

    def _spawn(self) -> tuple[subprocess.Popen, Channel, Bell]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ring, hear = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        args = [
            sys.executable,
            "-m",
            "sophonfog_bridge.plugin_main",
            str(theirs.fileno()),
            str(hear.fileno()),
            str(os.getpid()),
        ]
        try:
            proc = subprocess.Popen(
                args, pass_fds=(theirs.fileno(), hear.fileno()), stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
            hear.close()
        # What the plugins ask here is mostly quick and asks nothing back: answered as it
        # comes. Their health needs the other plugin process's: asked on a thread.
        channel = Channel(ours, self._answer, "bridge", inline=QUICK).start()
        bell = Bell(ring, self.bridge.spool)
        self.bridge.ring_with(self, bell.ring)
        return proc, channel, bell

    def _start_args(self, first: bool) -> dict[str, Any]:
        spool = self.bridge.spool
        # A plugin process started again after a crash treats what is already spooled as
        # not accepted by this run: a door never opens for a record that may have been
        # in flight when the last one died.
        boot_seq = spool.boot_seq if first else spool.last_seq
        return {
            "config": _plain(self.bridge.raw_config),
            "source": self.bridge.source,
            "specs": self.specs,
            "log_level": self.log_level,
            "pid": os.getpid(),
            "only": self.only,
            "last_seq": spool.last_seq,
            "boot_seq": boot_seq,
            "missing": list(spool.missing) if spool.missing else None,
        }

    @property
    def name(self) -> str:
        """How the logs name this process: the second one by its plugins."""
        if self.only is None:
            return "the plugin process"
        return f"the process of {', '.join(self.only)}"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def stop(self) -> None:
        self._stopping.set()
        channel, proc = self._channel, self._proc
        if channel is not None:
            try:
                channel.ask("stop", timeout=5)
            except (ChannelClosed, RemoteError, TimeoutError) as err:
                log.warning("plugins: could not ask %s to stop: %s", self.name, err)
        if proc is not None:
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("plugins: %s did not stop; killing it", self.name)
                proc.kill()
                proc.wait()
        self._supervisor.join(5)

    # ---- asking the plugins --------------------------------------------------------------

    def ask(self, kind: str, args: dict[str, Any] | None = None, body: bytes = b"", timeout=10):
        channel = self._channel
        if channel is None:
            raise PluginsDown(self.down_reason or "the plugin process is not running")
        try:
            return channel.ask(kind, args, body, timeout=timeout)
        except ChannelClosed as err:
            raise PluginsDown(str(err)) from None

    # ---- answering them ------------------------------------------------------------------

    def _answer(self, kind: str, args: dict[str, Any], body: bytes) -> Any:
        bridge = self.bridge
        if kind == "announce":
            return bridge.announce_many(list(_models(args["sizes"], body)))
        if kind == "known_devices":
            return bridge.known_devices()
        if kind == "core_health":
            others = bridge.plugins_health(bool(args.get("private")), besides=self)
            return {**bridge.core_health(), "other_plugins": others}
        if kind == "corrupt":
            bridge.spool.report_corrupt(
                int(args["segment"]),
                int(args["offset"]),
                int(args["first"]),
                int(args["last"]),
                str(args["name"]),
            )
            return None
        raise ValueError(f"unknown request {kind!r}")


def _models(sizes: list[int], body: bytes) -> Iterator[Any]:
    """The models a plugin announced, from the records laid end to end in `body`."""
    start = 0
    for size in sizes:
        record = decode(0, body[start : start + size])
        start += size
        yield MODELS[record.kind].from_parts(record.meta, record.blobs)


class CoreBridge(Bridge):
    """The bridge process when plugins run in processes of their own.

    One plugin process runs every plugin but those that ask for a process of their own
    (`own_process`); if any do, a second runs them. A burst leaves a queue for every
    plugin, and one interpreter runs one thread at a time: on two cores the plugin
    process worked through it at one core while the receiver's core idled.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        source: str = "(config)",
        specs: Mapping[str, str] | None = None,
        log_level: str = "INFO",
    ):
        self.raw_config = config
        self.source = source
        super().__init__(config, PluginHost(), source)
        self.activity = NoWorkers()
        self.specs = dict(specs or {})
        self.log_level = log_level
        self.processes = [PluginProcess(self, self.specs, log_level)]
        self._rings: dict[PluginProcess, Callable[[int], None]] = {}

    def _validate_plugins(self, source: str) -> dict[str, dict[str, Any]]:
        return {}  # the plugin process loads the plugins and checks their sections

    def start(self) -> None:
        first = self.processes[0]
        first.start()
        if first.apart:
            apart = PluginProcess(self, self.specs, self.log_level, only=first.apart)
            self.processes.append(apart)
            apart.start()
        self.start_sources()
        log.info(
            "bridge %s %s started; plugins in %s",
            self.bridge_id,
            self.version,
            "; ".join(
                f"process {p.pid or '?'}: {', '.join(p.workers) or 'none'}" for p in self.processes
            ),
        )

    def stop_plugins(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def ring_with(self, process: PluginProcess, ring: Callable[[int], None] | None) -> None:
        """Tell `process` of every append through `ring` (None: it is gone)."""
        rings = dict(self._rings)
        if ring is None:
            rings.pop(process, None)
        else:
            rings[process] = ring
        self._rings = rings
        self.spool.bell = self._ring_all if rings else None

    def _ring_all(self, last_seq: int) -> None:
        for ring in self._rings.values():
            ring(last_seq)

    def call(self, hook: str, **kwargs: Any) -> list:
        return []  # no plugin lives in this process

    def core_health(self) -> dict[str, Any]:
        health = super().core_health()
        if any(process.down_reason is not None for process in self.processes):
            health["status"] = "degraded"
        return health

    def plugins_health(
        self, private: bool = False, besides: PluginProcess | None = None
    ) -> dict[str, Any]:
        """Every plugin process's plugins (but those of `besides`, which asks)."""

        def down(reason: str) -> dict[str, Any]:
            return {"enabled": True, "state": "error", "error": f"plugins: {reason}"}

        parts = self._ask_each("health", {"private": private}, down, besides)
        return self._with_backlogs(merge_plugins(*parts))

    def plugin_stats(self) -> dict[str, dict[str, int]]:
        stats: dict[str, dict[str, int]] = {}
        for part in self._ask_each("stats", {}, lambda _reason: {}):
            stats.update(part)
        return self._with_backlogs(stats)

    def _ask_each(
        self,
        kind: str,
        args: dict[str, Any],
        down: Callable[[str], dict[str, Any]],
        besides: PluginProcess | None = None,
    ) -> list[dict[str, Any]]:
        """Each plugin process's answer; for one that cannot answer, `down(why)` a worker."""
        parts = []
        for process in self.processes:
            if process is besides:
                continue
            try:
                part, _ = process.ask(kind, args)
            except (PluginsDown, RemoteError, TimeoutError) as err:
                part = {name: down(str(err)) for name in process.workers}
            parts.append(part)
        return parts

    def _with_backlogs(self, plugins: dict[str, Any]) -> dict[str, Any]:
        # Counted here, against this process's newest seq: a plugin process hears of a
        # record only after it is spooled.
        for name, entry in plugins.items():
            cursor = self.spool.cursors.get(name)
            if cursor is not None:
                entry["backlog"] = self.spool.backlog(cursor)
        return plugins

    def plugin_routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            (method, path, functools.partial(self._forward, process))
            for process in self.processes
            for method, path in process.routes
        ]

    def _forward(self, process: PluginProcess, **_path_args: Any) -> bottle.HTTPResponse:
        """A plugin's page: the request as it came (already guarded), answered there."""
        environ = bottle.request.environ
        args = {
            "method": environ["REQUEST_METHOD"],
            # bottle decoded PATH_INFO as UTF-8 in place; the plugins' app decodes it again.
            "path": environ.get("bottle.raw_path", environ.get("PATH_INFO", "")),
            "query": environ.get("QUERY_STRING", ""),
            "script_name": environ.get("SCRIPT_NAME", ""),
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "scheme": environ.get("wsgi.url_scheme", "http"),
            "headers": {
                k: v for k, v in environ.items() if k.startswith("HTTP_") or k in ("CONTENT_TYPE",)
            },
        }
        body = bottle.request.body.read(MAX_PAGE_BODY) if environ.get("CONTENT_LENGTH") else b""
        try:
            answer, out = process.ask("http", args, body, timeout=PAGE_TIMEOUT_S)
        except (PluginsDown, TimeoutError) as err:
            return _json(503, f"plugins unavailable: {err}")
        except RemoteError as err:
            log.error("plugins: page %s failed: %s", args["path"], err)
            return _json(500, "plugin page failed")
        return bottle.HTTPResponse(out, status=answer["status"], headers=answer["headers"])


def _json(code: int, message: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps({"status": code, "message": message}),
        status=code,
        content_type="application/json",
    )


def _plain(config: Any) -> Any:
    """The config as JSON can carry it (YAML may give dates)."""
    return json.loads(json.dumps(config, default=str))
