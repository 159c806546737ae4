"""A plugin that takes one second per event: the bridge must answer the box regardless."""

from __future__ import annotations

import time

from sophonfog_bridge import hookimpl


class Sleepy:
    @hookimpl
    def handle_event(self, event) -> None:
        time.sleep(1.0)
