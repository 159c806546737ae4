"""What the mqtt plugin must remember across a restart, in its own state files.

The newest live event per device (a completion's photos go out only for it) and each
box's last status (a push of only its devices keeps the health another push gave). Both
are small: one entry per device and per box.

Every change is appended to a journal (`memory.journal`: one JSON line, one write) before
the record is done with, so a crash of the bridge loses none of it; rewriting the whole
file for every event cost ~0.4 ms of CPU an event. The journal is folded into the
snapshot (`memory.json`, replaced whole, atomically) at start, at shutdown and every
`COMPACT_EVERY` changes. Neither is fsynced: like the rest of the plugin's state, a power
cut can lose what the kernel had not written yet.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sophonfog_bridge import BoxStatus
from sophonfog_bridge.files import atomic_write

log = logging.getLogger(__name__)

# Anyone who may post can name devices and boxes: the memory is bounded.
MAX_ENTRIES = 1024
# Journal lines between two snapshots: ~100 bytes an event, a few KB a box status.
COMPACT_EVERY = 1000


class Memory:
    def __init__(self, path: Path | None):
        """`path` is the snapshot file; None remembers nothing across a restart."""
        self.path = path
        self.journal = None if path is None else path.with_suffix(".journal")
        self.latest: dict[str, str] = {}
        self.boxes: dict[str, BoxStatus] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._changes = 0
        self._broken = False

    # ---- start and stop ----------------------------------------------------------------

    def load(self) -> None:
        """The snapshot, then every change the journal holds after it; then a fresh start."""
        if self.path is None or self.journal is None:
            return
        with self._lock:
            self._read_snapshot(self.path)
            self._replay(self.journal)
            self._compact()

    def close(self) -> None:
        with self._lock:
            if self.path is not None and (self._changes or self._broken):
                self._compact()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # ---- changes -----------------------------------------------------------------------

    def note_event(self, device: str, event_id: str) -> None:
        if self.latest.get(device) == event_id:
            return
        with self._lock:
            self._set_latest(device, event_id)
            self._record(["e", device, event_id])

    def note_box(self, status: BoxStatus) -> None:
        # The raw push is not needed to merge the next one, and may be large.
        status = dataclasses.replace(status, raw={})
        with self._lock:
            self._set_box(status)
            self._record(["b", status.box, status.to_parts()[0]])

    def _set_latest(self, device: str, event_id: str) -> None:
        self.latest.pop(device, None)
        self.latest[device] = event_id
        _bound(self.latest)

    def _set_box(self, status: BoxStatus) -> None:
        self.boxes.pop(status.box, None)
        self.boxes[status.box] = status
        _bound(self.boxes)

    # ---- files -------------------------------------------------------------------------

    def _record(self, change: list[Any]) -> None:
        if self.journal is None:
            return
        if self._broken or self._changes >= COMPACT_EVERY:
            # After a failed append the journal may end in a torn line: write it all anew.
            self._compact()
            return
        line = json.dumps(change, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        try:
            if os.write(self._journal_fd(), data) != len(data):
                raise OSError("short write (disk full?)")
        except OSError as err:
            self._broken = True
            log.warning("mqtt: cannot append to %s: %s", self.journal, err)
            return
        self._changes += 1

    def _compact(self) -> None:
        """The whole memory into the snapshot, then an empty journal."""
        assert self.path is not None and self.journal is not None
        data = {
            "latest": self.latest,
            "boxes": {k: v.to_parts()[0] for k, v in self.boxes.items()},
        }
        try:
            atomic_write(self.path, json.dumps(data, ensure_ascii=False), fsync=False)
            # A crash before this truncation replays changes the snapshot already holds,
            # in their order: the result is the same.
            os.ftruncate(self._journal_fd(), 0)
        except OSError as err:
            self._broken = True
            log.warning("mqtt: cannot save %s: %s", self.path, err)
            return
        self._changes, self._broken = 0, False

    def _journal_fd(self) -> int:
        if self._fd is None:
            assert self.journal is not None
            self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        return self._fd

    def _read_snapshot(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("mqtt: cannot read %s (%s); starting empty", path, err)
            return
        try:
            self.latest = {str(k): str(v) for k, v in dict(data.get("latest", {})).items()}
            self.boxes = {
                str(k): BoxStatus.from_parts(v, {}) for k, v in dict(data.get("boxes", {})).items()
            }
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            log.warning("mqtt: %s is not what it should be (%s); starting empty", path, err)
            self.latest, self.boxes = {}, {}

    def _replay(self, journal: Path) -> None:
        try:
            lines = journal.read_bytes().splitlines()
        except FileNotFoundError:
            return
        except OSError as err:
            log.warning("mqtt: cannot read %s (%s); its changes are lost", journal, err)
            return
        skipped = 0
        for line in lines:
            try:
                self._apply(json.loads(line))
            except (AttributeError, KeyError, TypeError, ValueError):
                # A line torn by a crash or a full disk: the others still count.
                skipped += 1
        if skipped:
            log.warning("mqtt: skipped %d unreadable line(s) of %s", skipped, journal)

    def _apply(self, change: list[Any]) -> None:
        kind, key, value = change
        if kind == "e":
            self._set_latest(str(key), str(value))
        elif kind == "b":
            self._set_box(BoxStatus.from_parts(value, {}))
        else:
            raise ValueError(f"unknown change {kind!r}")


def _bound(table: dict[str, Any]) -> None:
    while len(table) > MAX_ENTRIES:
        table.pop(next(iter(table)))
