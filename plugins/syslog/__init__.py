"""Bundled plugin `syslog` (being written)."""

from sophonfog_bridge import hookimpl


class SyslogPlugin:
    @hookimpl
    def config_schema(self):
        return {}
