"""The hooks the door_relay plugin offers: remote opening, and relay backends of your own.

The host adds these specs when the plugin loads (its `hookspecs` attribute), before any
plugin registers, so a plugin may implement or call them whatever the loading order.

A backend factory (`door_backends`) is called with the door's `backend` mapping and returns
an object with `pulse(pulse) -> str`, optionally `describe()` and `close()`. If the factory
has a `config_schema` attribute (a voluptuous schema for the keys other than `type`), the
mapping is validated with it at startup first.
"""

from __future__ import annotations

from sophonfog_bridge import hookspec


@hookspec
def remote_doors(bridge):
    """Return doors that accept remote opening: dicts with `door` and `devices`."""


@hookspec
def open_door(door, source, bridge):
    """Open `door` on a remote command from `source`; return a DoorDecision or None."""


@hookspec
def door_backends():
    """Return {type_name: factory} of extra door relay backends."""
