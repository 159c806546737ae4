"""The hooks a sophonfog-bridge plugin can implement.

Every hook is called for each plugin on its own, so a plugin may implement any subset
and may accept any subset of a hook's arguments.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("sophonfog_bridge")
hookimpl = pluggy.HookimplMarker("sophonfog_bridge")


@hookspec
def config_schema():
    """Return a voluptuous schema (or dict) for this plugin's `plugins.<name>` section."""


@hookspec
def startup(bridge, config):
    """Start the plugin with its validated config section and the bridge context."""


@hookspec
def handle_event(event, delivery, bridge):
    """Handle one face event; raise RetryLater to be called again with it later."""


@hookspec
def handle_box_status(status, delivery, bridge):
    """Handle one box heartbeat; raise RetryLater to be called again with it later."""


@hookspec
def handle_box_link(link, delivery, bridge):
    """Handle a change of the bridge's websocket link to a V5/V6 box (a BoxLink)."""


@hookspec
def handle_door_decision(decision, delivery, bridge):
    """Handle a door decision announced by a door plugin; raise RetryLater to retry."""


@hookspec
def register_routes(bridge):
    """Return (method, path, callback) tuples to add to the bridge's HTTP app."""


@hookspec
def plugin_health(bridge):
    """Return a small JSON-safe dict describing this plugin's health (e.g. connected)."""


@hookspec
def remote_doors(bridge):
    """Return doors that accept remote opening: dicts with `door` and `devices`."""


@hookspec
def open_door(door, source, bridge):
    """Open `door` on a remote command from `source`; return a DoorDecision or None."""


@hookspec
def mqtt_publish(topic, payload, qos, retain, bridge):
    """Publish on the bridge's MQTT connection; return True once the broker accepted it."""


@hookspec
def door_backends():
    """Return {type_name: factory} of extra door relay backends."""


@hookspec
def shutdown(bridge):
    """Stop the plugin: flush, close connections, announce offline."""
