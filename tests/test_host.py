"""The plugin host in-process, with explicitly registered plugins."""

from __future__ import annotations

import pytest
import voluptuous as vol

from sophonfog_bridge import hookimpl, hookspec
from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.config import ConfigError
from sophonfog_bridge.host import PluginError, build_host


class Healthy:
    @hookimpl
    def plugin_health(self):
        return {"connected": True}

    @hookimpl
    def register_routes(self):
        return [("GET", "/healthy", lambda: "ok")]


class Raising:
    @hookimpl
    def plugin_health(self):
        raise RuntimeError("sensor exploded")


class WithSchema:
    @hookimpl
    def config_schema(self):
        return vol.Schema({vol.Optional("level", default=3): vol.All(int, vol.Range(max=5))})

    @hookimpl
    def startup(self, config):
        self.config = config


def test_call_each_isolates_and_names_the_plugin():
    host = build_host({"good": Healthy(), "bad": Raising()}, entry_points=False)
    results = {r.plugin: r for r in host.call_each("plugin_health")}
    assert results["good"].value == {"connected": True}
    assert isinstance(results["bad"].error, RuntimeError)


def test_call_each_raises_in_strict_mode(monkeypatch):
    monkeypatch.setenv("SOPHONFOG_BRIDGE_STRICT_PLUGINS", "1")
    host = build_host({"bad": Raising()}, entry_points=False)
    with pytest.raises(PluginError, match="bad failed in plugin_health"):
        host.call_each("plugin_health")


def test_only_declared_arguments_are_passed():
    host = build_host({"good": Healthy()}, entry_points=False)
    # register_routes takes no argument although the hook offers `bridge`.
    [(method, path, _)] = host.call_one("good", "register_routes", bridge=object())
    assert (method, path) == ("GET", "/healthy")


def test_unimportable_spec_is_reported_not_raised():
    host = build_host(specs={"broken": "tests.broken_plugin"}, entry_points=False)
    assert host.names() == []
    assert "broken on purpose" in host.info["broken"].error


def test_explicit_plugin_shadows_an_entry_point_of_the_same_name():
    host = build_host({"mqtt": Healthy()})
    assert host.info["mqtt"].source == "explicit"
    assert {"snapshots", "syslog", "door_relay"} <= set(host.names())


def test_plugin_config_is_validated_with_enabled_added(tmp_path):
    plugin = WithSchema()
    host = build_host({"mine": plugin}, entry_points=False)
    bridge = Bridge({"spool": {"path": str(tmp_path)}, "plugins": {"mine": {"level": 4}}}, host)
    assert bridge.plugin_configs["mine"] == {"level": 4, "enabled": True}
    bridge.start()
    try:
        assert plugin.config["level"] == 4
    finally:
        bridge.stop()


@pytest.mark.parametrize(
    "section, message",
    [
        ({"level": 9}, "plugins.mine.level: value must be at most 5"),
        ({"colour": "red"}, "plugins.mine.colour: unknown key"),
        ({"enabled": "maybe"}, "plugins.mine.enabled: expected bool"),
    ],
)
def test_plugin_config_errors_name_the_key(tmp_path, section, message):
    host = build_host({"mine": WithSchema()}, entry_points=False)
    with pytest.raises(ConfigError, match=message):
        Bridge({"spool": {"path": str(tmp_path)}, "plugins": {"mine": section}}, host)


def test_disabled_plugin_is_not_called(tmp_path):
    host = build_host({"good": Healthy()}, entry_points=False)
    bridge = Bridge(
        {"spool": {"path": str(tmp_path)}, "plugins": {"good": {"enabled": False}}}, host
    )
    assert bridge.call("plugin_health") == []
    assert bridge.health()["plugins"]["good"]["enabled"] is False
    bridge.spool.close()


class ShoutSpecs:
    @hookspec
    def shout(self, text, bridge):
        """A hook a third-party plugin offers the others."""


class Offers:
    hookspecs = ShoutSpecs


class Listener:
    @hookimpl
    def shout(self, text):
        return text.upper()


def test_core_hookspecs_are_the_core_contract_alone():
    from sophonfog_bridge.plugins.door_relay import hookspecs as door_relay
    from sophonfog_bridge.plugins.mqtt import hookspecs as mqtt

    from sophonfog_bridge import hookspecs as core

    plugin_hooks = {"mqtt_publish", "remote_doors", "open_door", "door_backends"}
    assert not plugin_hooks & set(dir(core))
    assert {"remote_doors", "open_door", "door_backends"} <= set(dir(door_relay))
    assert "mqtt_publish" in dir(mqtt)
    # Declared when their plugins load: a plugin may implement them, none is "unknown".
    host = build_host()
    assert all(getattr(host.pm.hook, hook).has_spec() for hook in plugin_hooks)


def test_a_plugin_may_implement_a_hook_declared_by_a_plugin_loaded_after_it():
    host = build_host({"listener": Listener(), "offers": Offers()}, entry_points=False)
    assert set(host.names()) == {"listener", "offers"}
    assert [r.value for r in host.call_each("shout", text="hi", bridge=None)] == ["HI"]


def test_a_hook_nobody_declares_is_refused_naming_plugin_and_hook(monkeypatch):
    class Typo:
        @hookimpl
        def handle_evnt(self, event):
            pass

    # Without the door_relay plugin nobody declares door_backends either.
    class Backends:
        @hookimpl
        def door_backends(self):
            return {}

    host = build_host({"typo": Typo(), "backends": Backends()}, entry_points=False)
    assert host.names() == []
    assert host.info["typo"].error.startswith("unknown hook handle_evnt")
    assert host.info["backends"].error.startswith("unknown hook door_backends")
    assert host.call_each("door_backends") == []
    monkeypatch.setenv("SOPHONFOG_BRIDGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin typo \(explicit\).*unknown hook handle_evnt"):
        build_host({"typo": Typo()}, entry_points=False)


@pytest.mark.parametrize("marker", ["hookwrapper", "wrapper", "tryfirst", "trylast"])
def test_markers_the_host_cannot_honour_are_refused_at_load(monkeypatch, marker):
    class Marked:
        @hookimpl(**{marker: True})
        def plugin_health(self):
            yield

    host = build_host({"marked": Marked(), "good": Healthy()}, entry_points=False)
    assert host.names() == ["good"]
    assert f"hook plugin_health: @hookimpl({marker}=True) is not supported" in (
        host.info["marked"].error
    )
    monkeypatch.setenv("SOPHONFOG_BRIDGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=rf"plugin marked .*{marker}=True"):
        build_host({"marked": Marked()}, entry_points=False)


def test_hookspecs_whose_options_the_host_cannot_honour_are_refused():
    class FirstResultSpecs:
        @hookspec(firstresult=True)
        def pick(self):
            """Only the first answer."""

    class Picky:
        hookspecs = FirstResultSpecs

    host = build_host({"picky": Picky()}, entry_points=False)
    assert host.names() == []
    assert "hookspec pick: firstresult=True is not supported" in host.info["picky"].error


def test_specname_and_optionalhook_are_honoured():
    class Renamed:
        @hookimpl(specname="plugin_health")
        def health(self):
            return {"renamed": True}

        @hookimpl(optionalhook=True)
        def a_hook_of_a_plugin_not_installed(self):
            pass

    host = build_host({"renamed": Renamed()}, entry_points=False)
    assert [r.value for r in host.call_each("plugin_health")] == [{"renamed": True}]


def test_workers_wait_while_the_receiver_is_busy_but_never_for_long():
    import threading
    import time

    from sophonfog_bridge.dispatcher import ReceiverActivity

    activity = ReceiverActivity()
    activity.begin()
    released = threading.Event()
    waiter = threading.Thread(target=lambda: (activity.wait_idle(5), released.set()))
    waiter.start()
    assert not released.wait(0.2), "a worker ran while a request was in flight"
    activity.end()
    assert released.wait(2), "the worker did not resume once the receiver was idle"
    activity.begin()
    started = time.monotonic()
    activity.wait_idle(0.3)  # a receiver that is never idle delays a worker, never starves it
    assert 0.25 <= time.monotonic() - started < 2
    activity.end()
