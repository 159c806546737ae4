"""Bundled plugin `snapshots` (being written)."""

from sophonfog_bridge import hookimpl


class SnapshotsPlugin:
    @hookimpl
    def config_schema(self):
        return {}
