"""The plugin host in-process, with explicitly registered plugins."""

from __future__ import annotations

import pytest
import voluptuous as vol

from sophonfog_bridge import hookimpl
from sophonfog_bridge.bridge import Bridge
from sophonfog_bridge.config import ConfigError
from sophonfog_bridge.host import PluginError, build_host


class Healthy:
    @hookimpl
    def plugin_health(self):
        return {"connected": True}

    @hookimpl
    def remote_doors(self):
        return [{"door": "front", "devices": ["gate-1"]}]


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
    # remote_doors takes no argument although the hook offers `bridge`.
    assert host.call_one("good", "remote_doors", bridge=object()) == [
        {"door": "front", "devices": ["gate-1"]}
    ]


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
