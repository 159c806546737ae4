"""The pulse journal: every (event, door) pulse written to disk before the relay is touched.

The write-ahead line reaches the kernel before the pulse, so after a crash, a kill -9
or a duplicate delivery the journal still knows the pulse may have happened and it never
happens twice. It is fsynced too when the spool is (`spool.fsync: true`): without that a
power cut can lose the spool's copy of the event as well, and a restart never replays an
event as live anyway, so an fsync would add milliseconds for the person at the gate and
no safety. A later line records the outcome (open, error: certainly shut, or unconfirmed: the
relay's answer was lost); an intent without one means the bridge died mid-pulse, which
is reported at startup (the door may or may not have opened).
The file is JSON lines and doubles as the audit trail of every pulse. The intent carries
the decision's `decision_id`, fixed before the pulse. A last line marks the decision as
announced to the other plugins; a pulse without that line (the bridge died between relay
and report, or between report and mark) is announced at the next start under the same
decision_id, which the core spools only if it does not hold it already: no pulse is
missing from MQTT and syslog, and none is there twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from sophonfog_bridge import jsoncodec
from sophonfog_bridge.files import atomic_write

log = logging.getLogger(__name__)


class JournalError(OSError):
    """The intent could not be made durable: the pulse must not happen."""


class Journal:
    def __init__(self, path: Path, keep_s: float, fsync: bool = True):
        self.path = Path(path)
        self.keep_s = keep_s
        self.fsync = fsync
        self._lock = threading.Lock()
        self._claimed: set[tuple[str, str]] = set()
        self.unfinished: list[dict[str, Any]] = []
        self._load_and_compact()
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the plugin

    def _load_and_compact(self) -> None:
        cutoff = time.time() - self.keep_s
        kept: list[str] = []
        intents: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                key = (entry["event_id"], entry["door"])
            except (ValueError, KeyError, TypeError):
                log.warning("door journal: skipping an unreadable line in %s", self.path)
                continue
            if entry.get("t", 0) < cutoff:
                continue
            kept.append(line)
            phase = entry.get("phase")
            if phase == "intent":
                self._claimed.add(key)
                intents[key] = entry
            elif phase == "outcome" and key in intents:
                intents[key] = {**intents[key], "outcome": entry}
            elif phase == "announced":
                intents.pop(key, None)
        # Pulses whose decision never reached the other plugins, with their outcome if any.
        self.unfinished = list(intents.values())
        if len(kept) != len(lines):
            self._rewrite(kept)

    def _rewrite(self, lines: list[str]) -> None:
        # Always durable, file and folder: after a power cut the journal is the old one or
        # the new one, never an empty file that forgot which pulses were claimed.
        text = "".join(line + "\n" for line in lines)
        atomic_write(self.path, text, fsync=True, fsync_folder=True)

    def claim(self, event_id: str, door: str) -> bool:
        """Reserve the pulse in memory; False if this event already pulsed (or will pulse) it."""
        key = (event_id, door)
        with self._lock:
            if key in self._claimed:
                return False
            self._claimed.add(key)
            return True

    def seen(self, event_id: str, door: str) -> bool:
        with self._lock:
            return (event_id, door) in self._claimed

    def intent(self, event_id: str, door: str, **fields: Any) -> None:
        """Durably record the pulse about to happen; raises JournalError if it cannot."""
        self._append({"phase": "intent", "event_id": event_id, "door": door, **fields}, True)

    def outcome(self, event_id: str, door: str, **fields: Any) -> None:
        try:
            self._append({"phase": "outcome", "event_id": event_id, "door": door, **fields}, False)
        except JournalError:
            log.exception("door journal: cannot record the outcome for %s", door)

    def announced(self, event_id: str, door: str) -> None:
        try:
            self._append({"phase": "announced", "event_id": event_id, "door": door}, False)
        except JournalError:
            log.exception("door journal: cannot mark the decision for %s announced", door)
            return
        # `unfinished` feeds /healthz: a pulse reported at startup is no longer unfinished.
        with self._lock:
            self.unfinished = [
                u for u in self.unfinished if (u["event_id"], u["door"]) != (event_id, door)
            ]

    def _append(self, entry: dict[str, Any], sync: bool) -> None:
        line = jsoncodec.dumps({"t": round(time.time(), 3), **entry}).decode()
        with self._lock:
            try:
                self._handle.write(line + "\n")
                self._handle.flush()
                if sync and self.fsync:
                    os.fsync(self._handle.fileno())
            except (OSError, ValueError) as err:
                raise JournalError(f"journal write failed: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._handle.close()
