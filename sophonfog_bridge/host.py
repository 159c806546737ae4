"""The plugin host: pluggy, the `sophonfog_bridge` entry points, and per-plugin isolation.

Bundled plugins register through the same entry-point group as third-party ones. An
entry point may name a module of hook functions or a class, which is instantiated so
each bridge gets a plugin with its own state. pluggy stops at the first hook that
raises, so hooks are called one plugin at a time here, and a broken plugin costs only
itself. pluggy is the registry: the markers that change how pluggy would call (wrappers,
ordering) mean nothing here, so a plugin that uses them is refused at load, by name.

Plugins load as one set: each one's own hookspecs (its `hookspecs` attribute) are added
before any plugin registers, so a plugin may implement a hook another one declares,
whatever the order; then a hook that neither the core nor a loaded plugin declares (a
misspelling) refuses its plugin.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
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


# pluggy's hookimpl options that change how pluggy would call a hook. The host calls each
# plugin on its own, in no promised order, so it could honour none of them.
REFUSED_MARKERS = ("hookwrapper", "wrapper", "tryfirst", "trylast")
# And the hookspec options that change what a call returns or when it happens.
REFUSED_SPEC_OPTIONS = ("firstresult", "historic")


@dataclass(frozen=True)
class Candidate:
    """A plugin about to load: its name, where it comes from, and how to get the object."""

    name: str
    source: str
    version: str | None
    load: Callable[[], Any]


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
        self._spec_sources: list[Any] = [hookspecs]
        self._declared: dict[str, str] = {}  # hook -> the plugin whose hookspecs declare it

    # ---- loading -----------------------------------------------------------------------

    def load_entry_points(self, skip: Iterable[str] = ()) -> None:
        self.load(entry_point_candidates(skip))

    def register(self, name: str, plugin: Any, source: str = "explicit") -> None:
        """Register a plugin object (module or instance) under `name`."""
        self.load([Candidate(name, source, None, lambda: plugin)])

    def register_spec(self, name: str, spec: str) -> None:
        """Register `module:attr` under `name` (the --plugin option)."""
        self.load([Candidate(name, spec, None, lambda: load_object(spec))])

    def load(self, candidates: Iterable[Candidate]) -> None:
        """Load plugins as one set: all their hookspecs, then each plugin, then check_pending.

        A name already loaded (or tried) keeps its first plugin: an explicit plugin shadows
        an entry point of the same name.
        """
        loaded: list[tuple[Candidate, Any]] = []
        for cand in candidates:
            if cand.name in self.info or any(cand.name == c.name for c, _ in loaded):
                continue
            try:
                plugin = cand.load()
                self._add_hookspecs(cand.name, plugin)
            except Exception as err:
                self._refuse(cand, err)
                continue
            loaded.append((cand, plugin))
        for cand, plugin in loaded:
            try:
                self.pm.register(plugin, name=cand.name)
                self._refuse_markers(plugin)
            except Exception as err:
                self._refuse(cand, err)
                continue
            self.info[cand.name] = PluginInfo(cand.name, cand.source, cand.version)
        self.check_pending()

    def check_pending(self) -> None:
        """Refuse every plugin with a hook that neither the core nor a plugin declares."""
        for name, plugin in self.pm.list_name_plugin():
            unknown = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(plugin) or ()
                if not caller.has_spec()
                and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
            )
            if unknown:
                info = self.info[name]
                problem = (
                    f"unknown hook {', '.join(unknown)}: neither the core nor a loaded plugin "
                    "declares it (misspelled, or the plugin that offers it is missing?)"
                )
                self._refuse(Candidate(name, info.source, info.version, lambda: None), problem)

    def _add_hookspecs(self, name: str, plugin: Any) -> None:
        """Add the hooks the plugin declares (its `hookspecs` module or class), all or none."""
        specs = getattr(plugin, "hookspecs", None)
        if specs is None or any(specs is added for added in self._spec_sources):
            return  # none, or the core's own, or the same plugin class under another name
        hooks = {h: o for h in dir(specs) if (o := self.pm.parse_hookspec_opts(specs, h))}
        for hook, opts in hooks.items():
            caller = getattr(self.pm.hook, hook, None)
            if caller is not None and caller.has_spec():
                owner = self._declared.get(hook, "the core")
                raise ValueError(f"hookspec {hook} is already declared by {owner}")
            refused = [o for o in REFUSED_SPEC_OPTIONS if opts.get(o)]
            if refused:
                raise ValueError(f"hookspec {hook}: {refused[0]}=True is not supported")
        self.pm.add_hookspecs(specs)
        self._spec_sources.append(specs)
        self._declared.update(dict.fromkeys(hooks, name))

    def _refuse_markers(self, plugin: Any) -> None:
        for caller in self.pm.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                used = [m for m in REFUSED_MARKERS if impl.plugin is plugin and getattr(impl, m)]
                if used:
                    raise ValueError(
                        f"hook {caller.name}: @hookimpl({used[0]}=True) is not supported: the "
                        "bridge calls each plugin's hooks on their own, in no promised order"
                    )

    def _refuse(self, cand: Candidate, err: Exception | str) -> None:
        """Leave the plugin out, say why once; strict mode makes it a hard error."""
        if self.pm.has_plugin(cand.name):
            self.pm.unregister(name=cand.name)
        if strict_mode():
            raise PluginError(f"plugin {cand.name} ({cand.source}) failed to load: {err}") from (
                err if isinstance(err, Exception) else None
            )
        log.error("plugin %s (%s) failed to load and is skipped: %s", cand.name, cand.source, err)
        text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        self.info[cand.name] = PluginInfo(cand.name, cand.source, cand.version, error=text)

    def disable(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    # ---- calling -----------------------------------------------------------------------

    def names(self) -> list[str]:
        return [name for name, _ in self.pm.list_name_plugin()]

    def impl(self, plugin: str, hook: str) -> Any:
        """The plugin's implementation of `hook`, or None."""
        for impl in self._impls(hook):
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
        for impl in reversed(self._impls(hook)):
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

    def _impls(self, hook: str) -> list[Any]:
        # A plugin's hook whose plugin is not loaded (mqtt_publish without mqtt) has no
        # caller at all: nobody implements it.
        caller = getattr(self.pm.hook, hook, None)
        return caller.get_hookimpls() if caller is not None else []

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
    candidates = [
        Candidate(n, "explicit", None, lambda p=p: p) for n, p in (explicit or {}).items()
    ]
    candidates += [
        Candidate(n, s, None, lambda s=s: load_object(s)) for n, s in (specs or {}).items()
    ]
    if entry_points:
        candidates += entry_point_candidates()
    host.load(candidates)
    return host


def entry_point_candidates(skip: Iterable[str] = ()) -> list[Candidate]:
    """Every plugin installed under the `sophonfog_bridge` entry-point group."""
    found = []
    for ep in entry_points(group=GROUP):
        if ep.name in skip:
            continue
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} ({ep.value})" if dist else ep.value
        version = dist.version if dist else None
        found.append(Candidate(ep.name, source, version, lambda ep=ep: _instantiate(ep.load())))
    return found
