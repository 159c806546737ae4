"""What the mqtt plugin must remember across a restart, in its own state file.

The newest live event per device (a completion's photos go out only for it) and each
box's last status (a push of only its devices keeps the health another push gave). Both
are small: one entry per device and per box. The file is replaced whole, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sophonfog_bridge import BoxStatus

log = logging.getLogger(__name__)

# Anyone who may post can name devices and boxes: the memory is bounded.
MAX_ENTRIES = 1024


class Memory:
    def __init__(self, path: Path):
        self.path = path
        self.latest: dict[str, str] = {}
        self.boxes: dict[str, BoxStatus] = {}

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("mqtt: cannot read %s (%s); starting empty", self.path, err)
            return
        try:
            self.latest = {str(k): str(v) for k, v in dict(data.get("latest", {})).items()}
            self.boxes = {
                str(k): BoxStatus.from_parts(v, {}) for k, v in dict(data.get("boxes", {})).items()
            }
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            log.warning("mqtt: %s is not what it should be (%s); starting empty", self.path, err)
            self.latest, self.boxes = {}, {}

    def note_event(self, device: str, event_id: str) -> None:
        if self.latest.get(device) == event_id:
            return
        self.latest.pop(device, None)
        self.latest[device] = event_id
        self._save()

    def note_box(self, status: BoxStatus) -> None:
        # The raw push is not needed to merge the next one, and may be large.
        self.boxes.pop(status.box, None)
        self.boxes[status.box] = dataclasses.replace(status, raw={})
        self._save()

    def _save(self) -> None:
        for table in (self.latest, self.boxes):
            while len(table) > MAX_ENTRIES:
                table.pop(next(iter(table)))
        data: dict[str, Any] = {
            "latest": self.latest,
            "boxes": {k: v.to_parts()[0] for k, v in self.boxes.items()},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".memory-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False)
            os.replace(tmp, self.path)
        except OSError as err:
            log.warning("mqtt: cannot save %s: %s", self.path, err)
