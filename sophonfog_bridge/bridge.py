"""The running bridge: config, plugins, spool, dispatcher, and the context plugins get.

Plugins receive this object as `bridge` in every hook. What they may use:
`bridge_id`, `version`, `pid`, `config`, `call(hook, **kw)`, `announce(model)`,
`announce_many(models)`, `known_devices()`, `state_dir(name)`, `metrics`, `health()`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .boxnames import BoxNames
from .config import ConfigError, validate_core, validate_plugin
from .dedup import RecentIds
from .devices import KnownDevices
from .dispatcher import Dispatcher, ReceiverActivity
from .event import IMAGE_FIELDS, BoxStatus, Event
from .host import HookResult, PluginError, PluginHost, build_host, strict_mode
from .metrics import Metrics
from .panelboxes import FILE_NAME, PanelBoxes, merged
from .sources.box import BoxSources
from .spool import Spool

log = logging.getLogger(__name__)

# Decision ids remembered so a re-announced decision is spooled once: the ones announced
# since startup and those in the spool's tail, where a crash leaves an unmarked one.
DECISION_IDS_MAX = 10_000


class Bridge:
    def __init__(
        self,
        config: Mapping[str, Any],
        host: PluginHost | None = None,
        source: str = "(config)",
    ):
        self.version = __version__
        # The bridge's own process (the service), also seen from its plugin process.
        self.pid = os.getpid()
        self.started_at = time.time()
        self.host = host or build_host()
        self.config = validate_core(config, source)
        self.startup_errors: dict[str, str] = {}
        self.plugin_configs = self._validate_plugins(source)
        self.bridge_id: str = self.config["bridge_id"]
        self.data_dir = Path(self.config["spool"]["path"])
        self.metrics = Metrics()
        self.spool = self._open_spool()
        self._open_core_state()
        self.metrics.watch_plugins(self.plugin_stats)
        self.activity = ReceiverActivity()
        self.dispatcher: Dispatcher | None = None
        self.box_sources: BoxSources | None = None

    # ---- setup -------------------------------------------------------------------------

    def _validate_plugins(self, source: str) -> dict[str, dict[str, Any]]:
        return validate_plugins(self.host, self.config, source, self._plugin_failed)

    def _open_spool(self) -> Spool:
        spool_cfg = self.config["spool"]
        return Spool(
            self.data_dir,
            fsync=spool_cfg["fsync"],
            segment_bytes=int(spool_cfg["segment_mb"] * (1 << 20)),
            max_bytes=int(spool_cfg["max_mb"] * (1 << 20)),
            max_age_s=spool_cfg["max_age_h"] * 3600,
        )

    def _open_core_state(self) -> None:
        """What the sources and the accept path keep: devices, boxes, recent ids."""
        spool_cfg = self.config["spool"]
        self.devices = KnownDevices(self.data_dir / "devices.json")
        # Boxes added from the status page join those of the config file (which win).
        self.configured_boxes: list[dict[str, Any]] = list(self.config["boxes"])
        self.panel_boxes = PanelBoxes(self.data_dir / "state" / FILE_NAME)
        self.config["boxes"] = merged(self.configured_boxes, self.panel_boxes.all())
        self.box_names = BoxNames(box["name"] for box in self.config["boxes"])
        for known in self.devices.all():
            # The capture devices a box listed before a restart still name it at once.
            self.box_names.learn(known.get("box") or "", devices=[known.get("device") or ""])
        self.recent_ids = RecentIds(spool_cfg["dedup_window_s"], spool_cfg["dedup_max"])
        self._rebuild_recent_ids()
        self.decision_ids = RecentIds(float("inf"), DECISION_IDS_MAX)
        self._announcing = threading.Lock()
        self._rebuild_decision_ids()
        self._count_corruption()

    def _count_corruption(self) -> None:
        """Corrupt records found by recovery, and from now on by every reader, are counted."""
        counter = self.metrics.spool_corrupt
        if self.spool.corrupt_records:
            counter.inc(self.spool.corrupt_records)
        self.spool.on_corrupt = counter.inc

    def _rebuild_recent_ids(self) -> None:
        """Remember event ids (and their photos) accepted before a restart, so a re-sent
        copy stays a duplicate and a completing one a completion."""
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
                    # The photos too: a copy that completes an event stays a completion.
                    photos = set(record.blobs) & set(IMAGE_FIELDS)
                    device = str(record.meta.get("device") or "")
                    self.recent_ids.admit(event_id, photos, device, time.monotonic() - age)

    def _rebuild_decision_ids(self) -> None:
        """Remember the decisions already spooled, so a re-announced one stays out."""
        start = max(0, self.spool.last_seq - DECISION_IDS_MAX)
        for record in self.spool.scan(start):
            decision_id = record.meta.get("decision_id")
            if record.kind == "door_decision" and decision_id:
                self.decision_ids.claim(decision_id)

    def _plugin_failed(self, name: str, hook: str, err: Exception) -> None:
        """A plugin that cannot set itself up is disabled (an error in strict mode)."""
        if strict_mode():
            raise PluginError(f"plugin {name}: {hook} failed: {err}") from err
        log.exception("plugin %s: %s failed; plugin disabled", name, hook)
        self.startup_errors[name] = f"{hook}: {type(err).__name__}: {err}"
        self.host.disable(name)

    def start(self) -> None:
        """Start every enabled plugin and the workers that feed them, then the sources."""
        self.start_plugins()
        self.start_sources()
        log.info(
            "bridge %s %s started with plugins: %s",
            self.bridge_id,
            self.version,
            ", ".join(self.host.names()) or "none",
        )

    def start_plugins(self) -> None:
        for name in list(self.host.names()):
            try:
                self.host.call_one(name, "startup", bridge=self, config=self.plugin_configs[name])
            except Exception as err:
                self._plugin_failed(name, "startup", err)
        self.dispatcher = Dispatcher(self.host, self.spool, self, self.activity)
        self.dispatcher.start()

    def start_sources(self) -> None:
        self.box_sources = BoxSources(self)
        self.box_sources.start()

    def stop(self) -> None:
        if self.box_sources is not None:
            self.box_sources.stop()
        self.stop_plugins()
        self.devices.close()
        self.spool.close()

    def stop_plugins(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.call("shutdown", bridge=self)

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

    def announce(self, model: Any) -> int | None:
        """For plugins: publish a model (a DoorDecision) to every other plugin, durably.

        A decision whose `decision_id` is already in the spool is dropped (None): a plugin
        re-announcing what it could not be sure reached the spool (after a crash) gets it
        delivered once.
        """
        decision_id = getattr(model, "decision_id", None)
        if not decision_id:
            return self.record(model)
        with self._announcing:
            if not self.decision_ids.claim(decision_id):
                log.debug("decision %s is in the spool already: not announced again", decision_id)
                return None
            try:
                seq = self.record(model)
            except BaseException:
                self.decision_ids.release(decision_id)
                raise
        if model.record_kind == "door_decision":
            self.metrics.door_decisions.labels(model.door, model.decision.value).inc()
        return seq

    def announce_many(self, models: Sequence[Any]) -> list[int | None]:
        """For plugins: `announce` each model, in order; from the plugin process, in one
        trip to the receiver's. Raises if one could not be spooled (those before it are)."""
        return [self.announce(model) for model in models]

    def known_devices(self) -> list[dict[str, Any]]:
        return self.devices.all()

    def state_dir(self, plugin: str) -> Path:
        path = self.data_dir / "state" / plugin
        path.mkdir(parents=True, exist_ok=True)
        return path

    def health(self, private: bool = False) -> dict[str, Any]:
        """What /healthz shows; `private` adds the plugins' whole error messages, which may
        quote an event (a name, a file named after a person): for guarded pages only."""
        core = self.core_health()
        boxes = core.pop("boxes")
        return {**core, "plugins": self.plugins_health(private), "boxes": boxes}

    def core_health(self) -> dict[str, Any]:
        """Everything /healthz shows but the plugins."""
        corrupt = self.spool.corrupt_records
        return {
            # Records were lost to corruption since this start: someone should look.
            "status": "degraded" if corrupt else "ok",
            "spool_corrupt_records": corrupt,
            "bridge_id": self.bridge_id,
            "version": self.version,
            "uptime_s": round(time.time() - self.started_at, 1),
            "spool_depth": self.spool.depth(),
            "spool_last_seq": self.spool.last_seq,
            "boxes": self.box_sources.health() if self.box_sources else {},
        }

    def plugins_health(self, private: bool = False) -> dict[str, Any]:
        """Each plugin's entry in /healthz: its worker's state and backlog, its own health."""
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
                    backlog=self.spool.backlog(worker.cursor),
                    delivered=worker.stats.delivered,
                    failed=worker.stats.failed,
                    retries=worker.stats.retries,
                    last_error=_error_for(worker.stats.last_error, private),
                )
            plugins[name] = entry
        for result in self.call("plugin_health"):
            if result.plugin in plugins and isinstance(result.value, dict):
                plugins[result.plugin].update(result.value)
        return plugins

    def plugin_stats(self) -> dict[str, dict[str, int]]:
        """Each worker's counts and backlog, for /metrics."""
        workers = self.dispatcher.workers if self.dispatcher else {}
        return {
            name: {
                "delivered": worker.stats.delivered,
                "failed": worker.stats.failed,
                "retries": worker.stats.retries,
                "backlog": self.spool.backlog(worker.cursor),
            }
            for name, worker in workers.items()
        }

    def plugin_routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """(method, path, callback) of every route a plugin adds to the HTTP app."""
        return [route for result in self.call("register_routes") for route in result.value or ()]


def merge_plugins(*parts: dict[str, Any]) -> dict[str, Any]:
    """Plugin health from several plugin processes: each plugin as the one running it says."""
    merged: dict[str, Any] = {}
    for part in parts:
        for name, entry in part.items():
            if name not in merged or entry.get("enabled"):
                merged[name] = entry
    return merged


def _error_for(message: str | None, private: bool) -> str | None:
    """A plugin's last error, or on public pages only its kind (`OSError`, `retry later`)."""
    if message is None or private:
        return message
    return message.split(":", 1)[0]


def validate_plugins(
    host: PluginHost,
    core: Mapping[str, Any],
    source: str,
    on_failure: Callable[[str, str, Exception], None],
) -> dict[str, dict[str, Any]]:
    """Each enabled plugin's section checked against its schema; unknown sections refused."""
    sections = dict(core["plugins"])
    configs: dict[str, dict[str, Any]] = {}
    for name in host.names():
        try:
            schema = host.call_one(name, "config_schema")
        except Exception as err:
            on_failure(name, "config_schema", err)
            sections.pop(name, None)
            continue
        configs[name] = validate_plugin(name, schema, sections.pop(name, None), source)
        if not configs[name]["enabled"]:
            host.disable(name)
    for name in sections:
        failed = host.info.get(name)
        if failed is not None and failed.error:
            continue  # already reported: it failed to load
        raise ConfigError(f"{source}: plugins.{name}: no plugin of that name is installed")
    return configs


def resolved_config(
    config: Mapping[str, Any], host: PluginHost, source: str = "(config)"
) -> dict[str, Any]:
    """The config as `run` would use it, without opening anything in the data folder.

    For check-config: building a Bridge would lock and recover the spool (cutting a torn
    tail) and create state folders, beside a running bridge too.
    """
    core = validate_core(config, source)

    def failed(name: str, hook: str, err: Exception) -> None:
        if strict_mode():
            raise PluginError(f"plugin {name}: {hook} failed: {err}") from err
        log.error("plugin %s: %s failed: %s", name, hook, err)
        host.disable(name)

    return {**core, "plugins": validate_plugins(host, core, source, failed)}


def _iso_age(text: str, cutoff: float) -> float | None:
    """Seconds since an ISO timestamp, or None if it is older than `cutoff`."""
    try:
        at = datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
    return None if at < cutoff else max(0.0, time.time() - at)
