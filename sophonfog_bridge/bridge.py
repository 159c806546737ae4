"""The running bridge: config, plugins, spool, dispatcher, and the context plugins get.

Plugins receive this object as `bridge` in every hook. What they may use:
`bridge_id`, `version`, `config`, `call(hook, **kw)`, `announce(model)`,
`known_devices()`, `state_dir(name)`, `position`, `records(kind, after_seq)`,
`metrics`, `health()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .config import ConfigError, validate_core, validate_plugin
from .dedup import RecentIds
from .devices import KnownDevices
from .dispatcher import Dispatcher, ReceiverActivity
from .event import MODELS, BoxStatus, Event
from .host import HookResult, PluginError, PluginHost, build_host, strict_mode
from .metrics import Metrics
from .spool import Spool

log = logging.getLogger(__name__)


class Bridge:
    def __init__(
        self,
        config: Mapping[str, Any],
        host: PluginHost | None = None,
        source: str = "(config)",
    ):
        self.version = __version__
        self.started_at = time.time()
        self.host = host or build_host()
        self.config = validate_core(config, source)
        self.startup_errors: dict[str, str] = {}
        self.plugin_configs = self._validate_plugins(source)
        self.bridge_id: str = self.config["bridge_id"]
        spool_cfg = self.config["spool"]
        self.data_dir = Path(spool_cfg["path"])
        self.spool = Spool(
            self.data_dir,
            fsync=spool_cfg["fsync"],
            segment_bytes=int(spool_cfg["segment_mb"] * (1 << 20)),
            max_bytes=int(spool_cfg["max_mb"] * (1 << 20)),
            max_age_s=spool_cfg["max_age_h"] * 3600,
        )
        self.devices = KnownDevices(self.data_dir / "devices.json")
        self.recent_ids = RecentIds(spool_cfg["dedup_window_s"], spool_cfg["dedup_max"])
        self._rebuild_recent_ids()
        self.metrics = Metrics()
        self.activity = ReceiverActivity()
        self.dispatcher: Dispatcher | None = None
        # Per-box back-fill (sources/backfill.py), started by the `run` command only.
        self.backfills: dict[str, Any] = {}

    # ---- setup -------------------------------------------------------------------------

    def _validate_plugins(self, source: str) -> dict[str, dict[str, Any]]:
        sections = dict(self.config["plugins"])
        configs: dict[str, dict[str, Any]] = {}
        for name in self.host.names():
            try:
                schema = self.host.call_one(name, "config_schema")
            except Exception as err:
                self._plugin_failed(name, "config_schema", err)
                sections.pop(name, None)
                continue
            configs[name] = validate_plugin(name, schema, sections.pop(name, None), source)
            if not configs[name]["enabled"]:
                self.host.disable(name)
        for name in sections:
            failed = self.host.info.get(name)
            if failed is not None and failed.error:
                continue  # already reported: it failed to load
            raise ConfigError(f"{source}: plugins.{name}: no plugin of that name is installed")
        return configs

    def _rebuild_recent_ids(self) -> None:
        """Remember event ids accepted before a restart, so a re-sent one stays a duplicate."""
        window = self.config["spool"]["dedup_window_s"]
        if not window:
            return
        start = max(0, self.spool.last_seq - self.recent_ids.max_entries)
        cutoff = time.time() - window
        for record in self.spool.scan(start):
            event_id = record.meta.get("event_id")
            received = record.meta.get("received_at")
            if event_id and record.kind == "event" and received:
                age = _iso_age(received, cutoff)
                if age is not None:
                    self.recent_ids.claim(event_id, time.monotonic() - age)

    def _plugin_failed(self, name: str, hook: str, err: Exception) -> None:
        """A plugin that cannot set itself up is disabled (an error in strict mode)."""
        if strict_mode():
            raise PluginError(f"plugin {name}: {hook} failed: {err}") from err
        log.exception("plugin %s: %s failed; plugin disabled", name, hook)
        self.startup_errors[name] = f"{hook}: {type(err).__name__}: {err}"
        self.host.disable(name)

    def start(self) -> None:
        """Start every enabled plugin, then the workers that feed them."""
        for name in list(self.host.names()):
            try:
                self.host.call_one(name, "startup", bridge=self, config=self.plugin_configs[name])
            except Exception as err:
                self._plugin_failed(name, "startup", err)
        self.dispatcher = Dispatcher(self.host, self.spool, self, self.metrics, self.activity)
        self.dispatcher.start()
        log.info(
            "bridge %s %s started with plugins: %s",
            self.bridge_id,
            self.version,
            ", ".join(self.host.names()) or "none",
        )

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.call("shutdown", bridge=self)
        self.devices.close()
        self.spool.close()

    # ---- what plugins use --------------------------------------------------------------

    def call(self, hook: str, **kwargs: Any) -> list[HookResult]:
        """Call `hook` on every enabled plugin, each isolated from the others."""
        kwargs.setdefault("bridge", self)
        return self.host.call_each(hook, **kwargs)

    def record(self, model: Event | BoxStatus | Any) -> int:
        """Append a model to the spool; every plugin gets it through its own worker."""
        meta, blobs = model.to_parts()
        seq = self.spool.append(model.record_kind, meta, blobs)
        self.metrics.accepted.labels(model.record_kind).inc()
        return seq

    def announce(self, model: Any) -> int:
        """For plugins: publish a model (a DoorDecision) to every other plugin, durably."""
        if model.record_kind == "door_decision":
            self.metrics.door_decisions.labels(model.door, model.decision.value).inc()
        return self.record(model)

    @property
    def position(self) -> int:
        """The seq of the newest spooled record: a bookmark for `records()`."""
        return self.spool.last_seq

    def records(self, kind: str, after_seq: int) -> Iterator[Any]:
        """Models of one kind spooled after `after_seq` and still on disk.

        For plugins that must know whether something they announced reached the log
        before a crash (the door journal), not for reading events: use the hooks.
        """
        model = MODELS[kind]
        for record in self.spool.scan(after_seq):
            if record.kind == kind:
                yield model.from_parts(record.meta, record.blobs)

    def known_devices(self) -> list[dict[str, Any]]:
        return self.devices.all()

    def state_dir(self, plugin: str) -> Path:
        path = self.data_dir / "state" / plugin
        path.mkdir(parents=True, exist_ok=True)
        return path

    def health(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {}
        workers = self.dispatcher.workers if self.dispatcher else {}
        for name, info in self.host.info.items():
            entry: dict[str, Any] = {"enabled": self.host.pm.has_plugin(name)}
            if info.error or name in self.startup_errors:
                entry.update(state="error", error=info.error or self.startup_errors[name])
            worker = workers.get(name)
            if worker is not None:
                entry.update(
                    state=worker.stats.state,
                    backlog=self.spool.last_seq - worker.cursor.value,
                    delivered=worker.stats.delivered,
                    failed=worker.stats.failed,
                    retries=worker.stats.retries,
                    last_error=worker.stats.last_error,
                )
            plugins[name] = entry
        for result in self.call("plugin_health"):
            if result.plugin in plugins and isinstance(result.value, dict):
                plugins[result.plugin].update(result.value)
        return {
            "status": "ok",
            "bridge_id": self.bridge_id,
            "version": self.version,
            "uptime_s": round(time.time() - self.started_at, 1),
            "spool_depth": self.spool.depth(),
            "spool_last_seq": self.spool.last_seq,
            "plugins": plugins,
            **({"boxes": self._box_health()} if self.backfills else {}),
        }

    def _box_health(self) -> dict[str, Any]:
        return {name: {"backfill": b.state()} for name, b in self.backfills.items()}


def _iso_age(text: str, cutoff: float) -> float | None:
    """Seconds since an ISO timestamp, or None if it is older than `cutoff`."""
    try:
        at = datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
    return None if at < cutoff else max(0.0, time.time() - at)
