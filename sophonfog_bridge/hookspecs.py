"""The core's hooks: what the bridge calls on a sophonfog-bridge plugin.

Every hook is called for each plugin on its own, so a plugin may implement any subset
and may accept any subset of a hook's arguments. Hooks one plugin offers another (the
mqtt plugin's `mqtt_publish`, door_relay's `open_door`) are declared by that plugin: a
plugin's `hookspecs` attribute names a module or class of `@hookspec` functions, added
when it loads (see docs/plugins.md).

Beside the hooks, the bridge reads one plugin attribute: `realtime = True` says a person
waits on the plugin (a door), so its worker is never deprioritised behind the receiver.
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
def handle_caught_up(bridge):
    """Called once the plugin's worker has delivered every record so far: finish batched work."""


@hookspec
def register_routes(bridge):
    """Return (method, path, callback) tuples to add to the bridge's HTTP app."""


@hookspec
def plugin_health(bridge):
    """Return a small JSON-safe dict describing this plugin's health (e.g. connected)."""


@hookspec
def shutdown(bridge):
    """Stop the plugin: flush, close connections, announce offline."""
