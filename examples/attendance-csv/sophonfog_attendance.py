"""Example sophonfog-bridge plugin: one attendance CSV per day, one row per person.

Each row holds when a person was first and last seen that day and at which device. A row
is the earliest and the latest sighting of the person, so folding the same event in twice
changes nothing: a record delivered again after a crash (delivery is at-least-once) and a
history event that is a late copy of a real-time one are harmless. History events are
used only to fill gaps, which is exactly what they do under that rule: a sighting the
bridge missed while it was down moves first/last seen, a copy of one it saw does not.

The day file is rewritten whole into a temporary file and renamed over the old one, so a
reader (a spreadsheet, a backup job) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections import OrderedDict
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import voluptuous as vol

from sophonfog_bridge import Event, EventKind, PersonType, hookimpl
from sophonfog_bridge.files import atomic_write

log = logging.getLogger(__name__)

COLUMNS = (
    "date",
    "identity_id",
    "identity_name",
    "group_name",
    "first_seen",
    "first_device",
    "last_seen",
    "last_device",
)
SEEN_IDS_KEPT = 10_000


def TimeZone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise vol.Invalid(f"unknown time zone: {value!r} (use e.g. Europe/Berlin)") from None
    return str(value)


CONFIG_SCHEMA = vol.Schema(
    {
        # Where the day files go. Without it the plugin stays idle, so that merely
        # installing the package never starts writing files.
        vol.Optional("path", default=None): vol.Any(None, str),
        # Days start at midnight in this zone; default: the machine's local time.
        vol.Optional("timezone", default=None): vol.Any(None, TimeZone),
        vol.Optional("person_types", default=["employee"]): [vol.Coerce(PersonType)],
        vol.Optional("use_history", default=True): bool,
        vol.Optional("file_prefix", default="attendance-"): vol.All(
            str, vol.Match(r"^[\w.-]*$", msg="letters, digits, . _ - only")
        ),
    }
)


class DayFile:
    """One day's rows, kept in memory and written atomically after each change."""

    def __init__(self, path: Path, day: date):
        self.path = path
        self.day = day
        self.rows: dict[str, dict[str, str]] = {}
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    self.rows[row["identity_id"]] = {c: row.get(c, "") for c in COLUMNS}
        except FileNotFoundError:
            pass

    def merge(self, event: Event, seen: datetime) -> bool:
        """Fold one sighting in; True if the row changed."""
        stamp = seen.isoformat(timespec="seconds")
        row = self.rows.get(event.identity_id)
        if row is None:
            self.rows[event.identity_id] = {
                "date": self.day.isoformat(),
                "identity_id": event.identity_id,
                "identity_name": event.identity_name,
                "group_name": event.group_name,
                "first_seen": stamp,
                "first_device": event.device,
                "last_seen": stamp,
                "last_device": event.device,
            }
            return True
        before = dict(row)
        # ISO stamps in one zone and one format sort as text.
        if stamp < row["first_seen"]:
            row.update(first_seen=stamp, first_device=event.device)
        if stamp > row["last_seen"]:
            row.update(last_seen=stamp, last_device=event.device)
        if event.identity_name and event.kind is EventKind.REALTIME:
            row["identity_name"] = event.identity_name
        return row != before

    def save(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in sorted(self.rows.values(), key=lambda r: (r["first_seen"], r["identity_id"])):
            writer.writerow(row)
        atomic_write(self.path, out.getvalue(), fsync=True)


class AttendancePlugin:
    """Entry point `attendance_csv`: keeps `<path>/<prefix>YYYY-MM-DD.csv`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: OrderedDict[date, DayFile] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, config: dict[str, Any]) -> None:
        self.folder = Path(config["path"]) if config["path"] else None
        if self.folder is None:
            log.info("attendance: no plugins.attendance_csv.path configured; writing nothing")
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            log.info("attendance: writing daily CSV files to %s", self.folder)
        self.zone: tzinfo | None = ZoneInfo(config["timezone"]) if config["timezone"] else None
        self.person_types = set(config["person_types"])
        self.use_history = config["use_history"]
        self.prefix = config["file_prefix"]

    @hookimpl
    def handle_event(self, event: Event) -> None:
        if self.folder is None or event.person_type not in self.person_types:
            return
        if event.kind is EventKind.HISTORY and not self.use_history:
            return
        with self._lock:
            if event.event_id in self._seen:
                return  # delivered again: the row already holds it
            seen = event.timestamp.astimezone(self.zone)
            day = self._day(seen.date())
            if day.merge(event, seen):
                day.save()
            self._remember(event.event_id)

    def _day(self, day: date) -> DayFile:
        found = self._days.get(day)
        if found is None:
            found = DayFile(self.folder / f"{self.prefix}{day.isoformat()}.csv", day)
            self._days[day] = found
            # Late history may touch older days; keep a few, reload the rest from disk.
            while len(self._days) > 7:
                self._days.popitem(last=False)
        self._days.move_to_end(day)
        return found

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        while len(self._seen) > SEEN_IDS_KEPT:
            self._seen.popitem(last=False)
