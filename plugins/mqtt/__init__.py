"""Bundled plugin `mqtt` (being written)."""

from sophonfog_bridge import hookimpl


class MqttPlugin:
    @hookimpl
    def config_schema(self):
        return {}
