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

A bridge runs for months between restarts: the file is closed off once a day (a thirtieth of
the keeping time when that is shorter) as `journal-until-<UTC time>.jsonl` beside it, a
closed-off file is deleted once everything in it is older than the keeping time, and the
claims in memory are forgotten at the same age. Both stay the size of the keeping time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from sophonfog_bridge import jsoncodec
from sophonfog_bridge.files import atomic_write, fsync_dir

log = logging.getLogger(__name__)

CLOSE_OFF_MAX_S = 86400.0
_CLOSED_PREFIX = "journal-until-"
_STAMP = "%Y%m%dT%H%M%SZ"


class JournalError(OSError):
    """The intent could not be made durable: the pulse must not happen."""


class Journal:
    def __init__(self, path: Path, keep_s: float, fsync: bool = True):
        self.path = Path(path)
        self.keep_s = keep_s
        self.fsync = fsync
        self._lock = threading.Lock()
        # Claim times (wall clock), oldest first: dicts keep the order claims came in.
        self._claimed: dict[tuple[str, str], float] = {}
        self.unfinished: list[dict[str, Any]] = []
        self._close_off_every = min(CLOSE_OFF_MAX_S, max(1.0, keep_s / 30))
        intents: dict[tuple[str, str], dict[str, Any]] = {}
        cutoff = time.time() - keep_s
        for closed in self._closed_files(cutoff):
            self._load(closed.read_text(encoding="utf-8").splitlines(), cutoff, intents)
        self._load_and_compact(cutoff, intents)
        # Pulses whose decision never reached the other plugins, with their outcome if any.
        self.unfinished = list(intents.values())
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the plugin
        self._close_off_at = time.time() + self._close_off_every

    def _closed_files(self, cutoff: float) -> list[Path]:
        """The closed-off files still within the keeping time, oldest first; older ones go."""
        kept = []
        for closed in sorted(self.path.parent.glob(f"{_CLOSED_PREFIX}*.jsonl")):
            try:
                # Its last write, not its name: whatever went wrong, nothing younger goes.
                old = closed.stat().st_mtime < cutoff
            except OSError:
                continue
            if old:
                _remove(closed)
            else:
                kept.append(closed)
        return kept

    def _load_and_compact(
        self, cutoff: float, intents: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            lines = []
        kept = self._load(lines, cutoff, intents)
        if len(kept) != len(lines):
            self._rewrite(kept)

    def _load(
        self, lines: list[str], cutoff: float, intents: dict[tuple[str, str], dict[str, Any]]
    ) -> list[str]:
        """Take in the claims and unfinished pulses of `lines`; the lines worth keeping."""
        kept: list[str] = []
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
                self._claimed.setdefault(key, entry["t"])
                intents[key] = entry
            elif phase == "outcome" and key in intents:
                intents[key] = {**intents[key], "outcome": entry}
            elif phase == "announced":
                intents.pop(key, None)
        return kept

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
            self._claimed[key] = time.time()
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
        now = time.time()
        line = jsoncodec.dumps({"t": round(now, 3), **entry}).decode()
        with self._lock:
            try:
                self._handle.write(line + "\n")
                self._handle.flush()
                if sync and self.fsync:
                    os.fsync(self._handle.fileno())
            except (OSError, ValueError) as err:
                raise JournalError(f"journal write failed: {err}") from err
            # Never on an intent: that is a person waiting for the door.
            if not sync and now >= self._close_off_at:
                self._close_off(now)

    def _close_off(self, now: float) -> None:
        """Under the lock: the file so far becomes a closed-off one, a new one is begun,
        and what is older than the keeping time goes, from disk and from memory."""
        self._close_off_at = now + self._close_off_every
        # Rounded up: the name is a moment no line in the file is younger than.
        stamp = time.strftime(_STAMP, time.gmtime(math.ceil(now)))
        target = self.path.with_name(f"{_CLOSED_PREFIX}{stamp}")
        closed = target.with_suffix(".jsonl")
        for n in range(1, 100):
            if not closed.exists():
                break
            closed = target.with_name(f"{target.name}-{n}.jsonl")  # the clock went back
        try:
            os.rename(self.path, closed)
        except OSError as err:
            log.warning("door journal: cannot close off %s: %s", self.path, err)
            return  # lines keep going to it: none lost, tried again tomorrow
        try:
            handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - replaces the old
        except OSError as err:
            log.warning("door journal: cannot begin a new %s: %s", self.path, err)
            with contextlib.suppress(OSError):
                os.rename(closed, self.path)  # back under its own name, and written on
            return
        self._handle.close()
        self._handle = handle
        if self.fsync:
            # The new file's name must outlive a power cut as its fsynced intents do.
            fsync_dir(self.path.parent)
        cutoff = now - self.keep_s
        self._closed_files(cutoff)
        while self._claimed:
            key, claimed_at = next(iter(self._claimed.items()))
            if claimed_at >= cutoff:
                break
            del self._claimed[key]

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def _remove(closed: Path) -> None:
    try:
        closed.unlink()
    except OSError as err:
        log.warning("door journal: cannot remove %s: %s", closed, err)
