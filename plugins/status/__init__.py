"""Bundled plugin `status` (being written)."""

from sophonfog_bridge import hookimpl


class StatusPlugin:
    @hookimpl
    def config_schema(self):
        return {}
