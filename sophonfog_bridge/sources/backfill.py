"""Back-fill: after an outage, ask a V5R7/V6 box for the events the bridge missed.

Per box the bridge keeps the time of the newest event it saw (any copy) in
`<spool.path>/state/boxes/<name>.json`. When the box's socket comes back, or the bridge
starts, the box's event query is asked for the gap, and what the bridge does not have yet
goes through the one accept path as history (never a door, never the HA event). A run
that fails half-way leaves `owed_from` in the file, so the next run starts there again.

Bounded: at most `backfill_max_h` hours back, pages and photo fetches paced so the box is
not loaded, one progress line per page in the log.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..boxapi import BoxApiError, login, probe_firmware
from ..files import atomic_write
from ..wire import WireError, parse_event
from .boxquery import Found, QueryClient, pages, query_client

if TYPE_CHECKING:
    from ..accept import AcceptPath

log = logging.getLogger(__name__)

OVERLAP_MS = 2000  # re-ask the last seconds: filters may be whole seconds, clocks drift
SETTLE_MS = 10_000  # a box stores an event when the person has left; newer may be missing


class Pacer:
    """At most `rate` calls per second for each kind of request."""

    def __init__(self, rates: dict[str, float], sleep: Callable[[float], None] = time.sleep):
        self.intervals = {kind: 1.0 / rate for kind, rate in rates.items()}
        self.last: dict[str, float] = {}
        self.sleep = sleep

    def __call__(self, kind: str) -> None:
        interval = self.intervals.get(kind, 0.0)
        wait = self.last.get(kind, -interval) + interval - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self.last[kind] = time.monotonic()


class Mark:
    """The persisted per-box times: newest event seen, and where an unfinished run began."""

    def __init__(self, path: Path):
        self.path = path
        self.newest_ms: int | None = None
        self.owed_from_ms: int | None = None
        self.dirty = False
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.newest_ms = _int_or_none(data.get("newest_ms"))
            self.owed_from_ms = _int_or_none(data.get("owed_from_ms"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError) as err:
            log.warning("back-fill: %s unreadable (%s); starting afresh", self.path, err)

    def see(self, millis: int) -> None:
        with self._lock:
            if self.newest_ms is None or millis > self.newest_ms:
                self.newest_ms = millis
                self.dirty = True

    def owe(self, millis: int | None) -> None:
        with self._lock:
            self.owed_from_ms = millis
            self.dirty = True

    def flush(self) -> None:
        """Write atomically (temp file, fsync, rename) if anything changed."""
        with self._lock:
            if not self.dirty:
                return
            data = {"newest_ms": self.newest_ms, "owed_from_ms": self.owed_from_ms}
            self.dirty = False
        try:
            atomic_write(self.path, json.dumps(data), fsync=True)
        except OSError:
            self.dirty = True
            raise


class Backfill:
    """One box's back-fill. The box client calls `note_event` for each live event and
    `on_connected` when its socket opens; `start()` runs a first gap query (the bridge was
    down) and the thread that does every later one."""

    def __init__(
        self,
        box: dict[str, Any],
        accept: AcceptPath,
        state_dir: Path,
        *,
        page_size: int = 50,
        rates: dict[str, float] | None = None,
        retry_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self.box = box
        self.name: str = box.get("name") or box["host"]
        self.accept = accept
        self.mark = Mark(Path(state_dir) / f"{_file_name(self.name)}.json")
        self.page_size = page_size
        self.pacer = Pacer(rates or {"page": 2.0, "image": 20.0})
        self.retry_s = retry_s
        self.clock = clock
        self.firmware: str | None = box.get("firmware") if box.get("firmware") != "auto" else None
        self._state: dict[str, Any] = {"state": "idle"}
        self._wake = threading.Event()
        self._wanted = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---- what the box client and the bridge call ----------------------------------------

    def note_event(self, timestamp: datetime | float | int) -> None:
        """An event of this box was seen (any copy): cheap, no I/O on the caller's path."""
        if isinstance(timestamp, datetime):
            millis = round(timestamp.timestamp() * 1000)
        else:
            millis = int(timestamp)
        self.mark.see(millis)

    def on_connected(self) -> None:
        """The box's socket is open again: query the gap in the background."""
        self._wanted = True
        self._wake.set()

    def state(self) -> dict[str, Any]:
        """For /healthz: state (idle, running, done, failed, off) and the last run's counts."""
        out = dict(self._state)
        out["newest"] = _iso(self.mark.newest_ms)
        if self.mark.owed_from_ms is not None:
            out["owed_from"] = _iso(self.mark.owed_from_ms)
        return out

    def start(self) -> None:
        self._wanted = True
        self._thread = threading.Thread(target=self._loop, name=f"backfill-{self.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._flush()

    # ---- the thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        retry_at: float | None = None
        while not self._stopping:
            self._wake.wait(1.0)
            self._wake.clear()
            self._flush()
            if retry_at is not None and time.monotonic() >= retry_at:
                self._wanted, retry_at = True, None
            if not self._wanted or self._stopping:
                continue
            self._wanted = False
            try:
                self.run_once()
            except Exception as err:  # a box answering garbage must not end back-fill
                log.warning(
                    "back-fill %s failed: %s; retrying in %.0f s", self.name, err, self.retry_s
                )
                self._state = {**self._state, "state": "failed", "error": str(err)}
                retry_at = time.monotonic() + self.retry_s
            self._flush()

    def _flush(self) -> None:
        try:
            self.mark.flush()
        except OSError as err:
            log.warning("back-fill %s: cannot save %s: %s", self.name, self.mark.path, err)

    # ---- one run -------------------------------------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """Query the gap now and record what is missing; the run's counts."""
        now_ms = round(self.clock() * 1000)
        newest, owed = self.mark.newest_ms, self.mark.owed_from_ms
        if newest is None and owed is None:
            # First run: nothing is known to be missing (the box may hold months of events).
            self.mark.see(now_ms)
            self._state = {"state": "done", "last_run": {"note": "first run: nothing owed"}}
            return self._state["last_run"]
        start = min(t for t in (owed, None if newest is None else newest - OVERLAP_MS) if t)
        # SpoolFull and box errors end the run here; `owed_from` keeps the gap for the retry.
        floor = now_ms - round(self.box.get("backfill_max_h", 24) * 3_600_000)
        if start < floor:
            log.warning(
                "back-fill %s: the gap starts %s, more than backfill_max_h ago; "
                "asking only from %s",
                self.name,
                _iso(start),
                _iso(floor),
            )
            start = floor
        self.mark.owe(start)
        self._flush()
        client = self._client()
        counts = self._query(client, start, now_ms)
        self.mark.see(now_ms - SETTLE_MS)
        self.mark.owe(None)
        self._state = {"state": "done", "last_run": counts}
        return counts

    def _client(self) -> QueryClient:
        if self.firmware is None:
            base = f"http://{self.box['host']}:{self.box['api_port']}"
            self.firmware = probe_firmware(base)
            log.info("back-fill %s: firmware %s", self.name, self.firmware)
        if self.firmware == "v2":
            raise BoxApiError("a V2 box has no event query; back-fill needs V5R7 or V6")
        login(self.box, self.firmware)
        client = query_client(self.box, self.firmware, self.page_size)
        client.pace = self.pacer
        return client

    def _query(self, client: QueryClient, start: int, end: int) -> dict[str, Any]:
        counts = {"from": _iso(start), "to": _iso(end), "pages": 0, "recorded": 0, "present": 0}
        counts["skipped"] = 0
        self._state = {"state": "running", "run": counts}
        known = self._known_ids(start)
        for index, count, page in pages(client, start, end):
            for record in page.records:
                counts[self._take(client, record, known)] += 1
            counts["pages"] = index + 1
            log.info(
                "back-fill %s: page %d/%d, %d recorded, %d already there, %d unusable",
                self.name,
                index + 1,
                count,
                counts["recorded"],
                counts["present"],
                counts["skipped"],
            )
            if self._stopping:
                raise BoxApiError("bridge stopping; the rest of the gap is owed")
        return counts

    def _take(self, client: QueryClient, record: dict[str, Any], known: set[str]) -> str:
        """Record one query result unless the bridge has it: recorded, present or skipped."""
        found = client.payload(record)
        if found is None:
            return "skipped"
        try:
            event_id = self._event_id(found)
            if event_id in known or event_id in self.accept.bridge.recent_ids:
                return "present"
            payload = client.with_images(found)
            outcome = self.accept.event(
                payload, history=True, transport="query", context={"box": self.name}
            )
        except WireError as err:
            log.warning("back-fill %s: a query result is unusable: %s", self.name, err)
            return "skipped"
        self.note_event(found.payload["timestamp"])
        return "recorded" if outcome.recorded else "present"

    def _event_id(self, found: Found) -> str:
        bridge = self.accept.bridge
        event = parse_event(found.payload, history=True, ep_id_for_ip=bridge.devices.ep_id_for_ip)
        return event.event_id

    def _known_ids(self, start_ms: int) -> set[str]:
        """Ids of events from `start_ms` on already in the spool, when the gap reaches past
        what the dedup window remembers (it counts from arrival, and events arrive after
        they happen, so a window-young gap is covered by it)."""
        bridge = self.accept.bridge
        window_ms = bridge.config["spool"]["dedup_window_s"] * 1000
        if start_ms >= self.clock() * 1000 - window_ms:
            return set()
        since = datetime.fromtimestamp(start_ms / 1000 - 60, timezone.utc)
        return set(_event_ids_since(bridge.spool.scan(0), since))


def _event_ids_since(records: Iterable[Any], since: datetime) -> Iterable[str]:
    for record in records:
        meta = record.meta
        if record.kind != "event" or not meta.get("event_id"):
            continue
        try:
            if datetime.fromisoformat(meta["timestamp"]) >= since:
                yield meta["event_id"]
        except (KeyError, TypeError, ValueError):
            continue


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "box"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, timezone.utc).isoformat(timespec="milliseconds")
