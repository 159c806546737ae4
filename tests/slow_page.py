"""A plugin for tests: a page that holds its request until a file appears.

`GET /slow` notes each request it holds in `entered` (a line each), then answers once
`release` exists (or after 20 s): people on a slow page, as many as the test opens.
`GET /broken` raises.
"""

from __future__ import annotations

import time
from pathlib import Path

import voluptuous as vol

from sophonfog_bridge import hookimpl


class SlowPage:
    def __init__(self) -> None:
        self.config: dict = {}

    @hookimpl
    def config_schema(self):
        return {vol.Required("entered"): str, vol.Required("release"): str}

    @hookimpl
    def startup(self, config):
        self.config = config

    @hookimpl
    def register_routes(self):
        return [("GET", "/slow", self.slow), ("GET", "/broken", self.broken)]

    def slow(self) -> str:
        with open(self.config["entered"], "a", encoding="utf-8") as handle:
            handle.write("in\n")
        deadline = time.monotonic() + 20
        while not Path(self.config["release"]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return "done"

    def broken(self) -> str:
        raise RuntimeError("page broke on purpose")
