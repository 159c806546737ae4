"""Boxes added from the status page, kept in the data folder (`state/boxes.json`).

The bridge cannot rewrite the user's YAML (in the add-on it is generated from options), so
these live beside the spool, checked with the same schema as `boxes:` and merged with it at
start: a box in the config file wins over one of the same name or address from the panel.
The file holds box passwords, so it is written owner-only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import voluptuous as vol

from .config import BOX_SCHEMA

log = logging.getLogger(__name__)

FILE_NAME = "boxes.json"


def same_box(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["name"] == b["name"] or (a["host"], a["api_port"]) == (b["host"], b["api_port"])


class PanelBoxes:
    """The panel's boxes: read at start, rewritten whole (atomically) on every change."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._boxes = self._load()

    def _load(self) -> list[dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            log.error("%s: cannot read the boxes added from the panel: %s", self.path, err)
            return []
        entries = raw.get("boxes") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            log.error("%s: no `boxes` list; the boxes added from the panel are ignored", self.path)
            return []
        boxes: list[dict[str, Any]] = []
        for index, entry in enumerate(entries):
            try:
                box = BOX_SCHEMA(entry)
            except vol.Invalid as err:
                log.error("%s: box %d ignored: %s", self.path, index + 1, err)
                continue
            box.setdefault("name", box["host"])
            if any(same_box(box, b) for b in boxes):
                log.error("%s: box %s ignored: listed twice", self.path, box["name"])
                continue
            boxes.append(box)
        return boxes

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(b) for b in self._boxes]

    def put(self, box: dict[str, Any]) -> None:
        """Add the box, or replace the one of its name or address."""
        with self._lock:
            boxes = [b for b in self._boxes if not same_box(b, box)] + [dict(box)]
            self._write(boxes)
            self._boxes = boxes

    def remove(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = next((b for b in self._boxes if b["name"] == name), None)
            if found is not None:
                boxes = [b for b in self._boxes if b is not found]
                self._write(boxes)
                self._boxes = boxes
            return found

    def _write(self, boxes: list[dict[str, Any]]) -> None:
        # A crash mid-write leaves the old file or the new one, never half of one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".boxes.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"boxes": boxes}, handle, indent=2, ensure_ascii=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def merged(configured: Sequence[dict[str, Any]], panel: Sequence[dict[str, Any]]) -> list:
    """The config's boxes, then the panel's that clash with none of them (said in the log)."""
    boxes = list(configured)
    for box in panel:
        clash = next((b for b in configured if same_box(b, box)), None)
        if clash is not None:
            log.warning(
                "box %s added from the panel is not used: the config file has box %s "
                "(%s:%s); the config wins",
                box["name"],
                clash["name"],
                clash["host"],
                clash["api_port"],
            )
            continue
        boxes.append(box)
    return boxes
