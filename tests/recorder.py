"""A plugin for tests: records what it receives as JSON lines, and misbehaves on request.

Loaded into a real bridge process with `--plugin recorder=tests.recorder:Recorder`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import voluptuous as vol

from sophonfog_bridge import RetryLater, hookimpl


class Recorder:
    @hookimpl
    def config_schema(self):
        return {
            vol.Required("path"): str,
            vol.Optional("slow_s", default=0.0): vol.Coerce(float),
            vol.Optional("raise_on"): str,
            vol.Optional("retry_while_exists"): str,
        }

    @hookimpl
    def startup(self, config):
        self.config = config
        self.path = Path(config["path"])
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, kind, model, delivery):
        line = {
            "record": kind,
            "delivery": {
                "seq": delivery.seq,
                "accepted_this_run": delivery.accepted_this_run,
                "attempt": delivery.attempt,
            },
            **model.to_dict(),
        }
        for name in ("reg_pic", "spot_pic", "face_pic", "ir_pic"):
            blob = getattr(model, name, None)
            line[name] = None if blob is None else {"len": len(blob), "head": blob[:4].hex()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _misbehave(self, identity):
        flag = self.config.get("retry_while_exists")
        if flag and os.path.exists(flag):
            raise RetryLater("flag file present", after=0.05)
        if self.config["slow_s"]:
            time.sleep(self.config["slow_s"])
        if self.config.get("raise_on") and identity == self.config["raise_on"]:
            raise RuntimeError(f"recorder told to fail on {identity}")

    @hookimpl
    def handle_event(self, event, delivery):
        self._misbehave(event.identity_id)
        self._write("event", event, delivery)

    @hookimpl
    def handle_box_status(self, status, delivery):
        self._write("box_status", status, delivery)

    @hookimpl
    def handle_door_decision(self, decision, delivery):
        self._write("door_decision", decision, delivery)

    @hookimpl
    def handle_box_link(self, link, delivery):
        self._write("box_link", link, delivery)


class Exploder:
    """Raises in every hook it has."""

    @hookimpl
    def handle_event(self, event):
        raise ValueError("boom")


def read_lines(path) -> list[dict]:
    """The lines written so far; a last one without its newline is still being written
    (a long line reaches the file in pieces) and is left for the next look."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.endswith("\n") and line.strip()]
    except FileNotFoundError:
        return []
