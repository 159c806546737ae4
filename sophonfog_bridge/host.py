"""The plugin host: pluggy, the `sophonfog_bridge` entry points, and per-plugin isolation.

Bundled plugins register through the same entry-point group as third-party ones. An
entry point may name a module of hook functions or a class, which is instantiated so
each bridge gets a plugin with its own state. pluggy stops at the first hook that
raises, so hooks are called one plugin at a time here, and a broken plugin costs only
itself.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs

log = logging.getLogger(__name__)

GROUP = "sophonfog_bridge"


def strict_mode() -> bool:
    return os.environ.get("SOPHONFOG_BRIDGE_STRICT_PLUGINS", "") not in ("", "0", "false")


@dataclass(frozen=True)
class HookResult:
    """One plugin's answer to a hook call: its value or the exception it raised."""

    plugin: str
    value: Any = None
    error: BaseException | None = None


@dataclass
class PluginInfo:
    name: str
    source: str
    version: str | None = None
    error: str | None = None


class PluginError(RuntimeError):
    """A plugin failed in strict mode."""


def load_object(spec: str) -> Any:
    """`package.module` or `package.module:attr` -> the object, instantiated if a class."""
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return _instantiate(obj)


class PluginHost:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}

    # ---- loading -----------------------------------------------------------------------

    def load_entry_points(self, skip: Iterable[str] = ()) -> None:
        for ep in entry_points(group=GROUP):
            if ep.name in skip or ep.name in self.info:
                continue
            dist = getattr(ep, "dist", None)
            source = f"{dist.name} ({ep.value})" if dist else ep.value
            version = dist.version if dist else None
            self._guarded_register(ep.name, source, version, lambda ep=ep: _instantiate(ep.load()))

    def register(self, name: str, plugin: Any, source: str = "explicit") -> None:
        """Register a plugin object (module or instance) under `name`."""
        self._guarded_register(name, source, None, lambda: plugin)

    def register_spec(self, name: str, spec: str) -> None:
        """Register `module:attr` under `name` (the --plugin option)."""
        self._guarded_register(name, spec, None, lambda: load_object(spec))

    def _guarded_register(self, name: str, source: str, version: str | None, load) -> None:
        try:
            plugin = load()
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as err:
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            if strict_mode():
                raise PluginError(f"plugin {name} ({source}) failed to load: {err}") from err
            log.error("plugin %s (%s) failed to load and is skipped: %s", name, source, err)
            self.info[name] = PluginInfo(
                name, source, version, error=f"{type(err).__name__}: {err}"
            )
            return
        self.info[name] = PluginInfo(name, source, version)

    def disable(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    # ---- calling -----------------------------------------------------------------------

    def names(self) -> list[str]:
        return [name for name, _ in self.pm.list_name_plugin()]

    def impl(self, plugin: str, hook: str) -> Any:
        """The plugin's implementation of `hook`, or None."""
        caller = getattr(self.pm.hook, hook)
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin:
                return impl
        return None

    def call_one(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Call one plugin's hook (raises what it raises); None if it has no such hook."""
        impl = self.impl(plugin, hook)
        if impl is None:
            return None
        return impl.function(*[kwargs[a] for a in impl.argnames])

    def call_each(self, hook: str, **kwargs: Any) -> list[HookResult]:
        """Call every plugin's `hook`, isolated: a raising plugin is logged and reported."""
        results = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                value = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as err:
                if strict_mode():
                    raise PluginError(f"plugin {impl.plugin_name} failed in {hook}: {err}") from err
                log.exception("plugin %s failed in %s", impl.plugin_name, hook)
                results.append(HookResult(impl.plugin_name, error=err))
                continue
            if value is not None:
                results.append(HookResult(impl.plugin_name, value))
        return results

    def describe(self) -> list[dict[str, Any]]:
        """For `sophonfog-bridge plugins`: every discovered plugin and its hooks."""
        rows = []
        for name, info in sorted(self.info.items()):
            plugin = self.pm.get_plugin(name)
            hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or ()) if plugin else []
            rows.append(
                {
                    "name": name,
                    "version": info.version,
                    "source": info.source,
                    "loaded": info.error is None,
                    "error": info.error,
                    "hooks": hooks,
                }
            )
        return rows


def _instantiate(obj: Any) -> Any:
    return obj() if inspect.isclass(obj) else obj


def build_host(
    explicit: Mapping[str, Any] | None = None,
    specs: Mapping[str, str] | None = None,
    entry_points: bool = True,
) -> PluginHost:
    """A host with explicit plugins (tests), `name=module:attr` specs, and entry points."""
    host = PluginHost()
    for name, plugin in (explicit or {}).items():
        host.register(name, plugin)
    for name, spec in (specs or {}).items():
        host.register_spec(name, spec)
    if entry_points:
        host.load_entry_points()
    return host
