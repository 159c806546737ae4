"""Bundled plugin `door_relay` (being written)."""

from sophonfog_bridge import hookimpl


class DoorRelayPlugin:
    @hookimpl
    def config_schema(self):
        return {}
