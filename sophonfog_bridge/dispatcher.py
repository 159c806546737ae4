"""One worker per plugin: read the spool from the plugin's cursor, deliver, retry, back off.

A plugin that raises RetryLater (its broker is down) is called again with the same record
after a backoff, for as long as it takes; records behind it wait, so order is kept. Any
other exception is a failed delivery: retried a few times, then logged and skipped. The
cursor moves only after the plugin returns, so at most the one record in flight is
delivered twice after a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .event import MODELS
from .sharedcache import SharedCache
from .spool import Record, Spool

if TYPE_CHECKING:
    from .host import PluginHost

log = logging.getLogger(__name__)

HOOK_FOR_KIND = {
    "event": "handle_event",
    "box_status": "handle_box_status",
    "box_link": "handle_box_link",
    "door_decision": "handle_door_decision",
}
ARGUMENT_FOR_KIND = {
    "event": "event",
    "box_status": "status",
    "box_link": "link",
    "door_decision": "decision",
}
FAILED_ATTEMPTS = 3
PLUGIN_NICENESS = 10
MAX_DEFER_S = 0.5
MAX_GATHER_S = 5.0


class RetryLater(Exception):
    """Raised by a plugin that cannot take the record now; it gets the same record again."""

    def __init__(self, reason: str = "", after: float | None = None):
        super().__init__(reason)
        self.after = after


@dataclass(frozen=True)
class Delivery:
    """How this record reaches the plugin.

    `accepted_this_run` is true for a record this run of the bridge accepted, false for
    one left in the spool by an earlier run (a replay after a restart); `attempt` counts
    from 1. Doors act only on the first attempt of a record accepted by this run.
    """

    seq: int
    attempt: int
    accepted_this_run: bool
    plugin: str

    @property
    def live(self) -> bool:
        """Deprecated: `accepted_this_run and attempt == 1`, which is all it ever meant."""
        warnings.warn(
            "Delivery.live is deprecated: use accepted_this_run and attempt",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.accepted_this_run and self.attempt == 1


@dataclass
class PluginStats:
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    state: str = "ok"
    last_error: str | None = None
    cursor: int = 0


class ReceiverActivity:
    """Requests in flight at the receiver, so that plugin workers can step aside.

    The box waits at most 0.5 s and then delays every later event, and on two cores a
    plugin's Python work competes with the receiver for the interpreter lock. So in a
    burst the workers of ordinary plugins wait until no request is in flight (at most
    `MAX_DEFER_S` per record, so they never starve) and catch up afterwards from the
    spool. Doors (`realtime = True`) never wait.
    """

    def __init__(self) -> None:
        self._in_flight = 0
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)


class NoWorkers(ReceiverActivity):
    """Where no plugin worker runs beside the receiver (they are in the plugin process):
    nobody waits for the receiver to be idle, so a request counts nothing."""

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass


class ModelCache:
    """Models built once for the workers that take a record together: they are immutable,
    so they share them (in a burst the workers are far apart, and each builds its own)."""

    def __init__(self, size: int = 32):
        self._models: SharedCache[int, Any] = SharedCache(size)

    def get(self, record: Record) -> Any:
        return self._models.get(record.seq, lambda: _model(record))


def _model(record: Record) -> Any:
    model = MODELS[record.kind].from_parts(record.meta, record.blobs)
    for warning in getattr(model, "warnings", ())[len(record.meta.get("warnings", ())) :]:
        log.warning("%s %s: %s", record.kind, _record_name(record), warning)
    return model


class Worker(threading.Thread):
    """Delivers spool records to one plugin, in order, at that plugin's pace."""

    def __init__(
        self,
        name: str,
        host: PluginHost,
        spool: Spool,
        bridge: Any,
        models: ModelCache | None = None,
        activity: ReceiverActivity | None = None,
    ):
        super().__init__(name=f"plugin-{name}", daemon=True)
        self.models = models or ModelCache()
        self.activity = activity
        plugin = host.pm.get_plugin(name)
        self.realtime = bool(getattr(plugin, "realtime", False))
        self.gather_s = 0.0 if self.realtime else _gather_s(plugin)
        self.plugin = name
        self.host = host
        self.spool = spool
        self.bridge = bridge
        self.cursor = spool.cursor(name)
        self.stats = PluginStats(cursor=self.cursor.value)
        self._owed = False  # a record went to the plugin since it last heard it caught up
        self.backoff_max = 30.0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        self._lower_priority()
        reader = self.spool.reader(self.cursor.value)
        try:
            while not self._stop_event.is_set():
                record = reader.next(timeout=0)
                if record is None:
                    self._tell_caught_up()
                    # Caught up: let records gather, so one wake-up serves several.
                    if self.gather_s and self._stop_event.wait(self.gather_s):
                        break  # told to stop meanwhile: not another wait for a record
                    record = reader.next(timeout=0.5)
                if record is not None:
                    if self.activity is not None and not self.realtime:
                        self.activity.wait_idle(MAX_DEFER_S)
                    self._deliver(record)
                elif reader.position > self.cursor.value:
                    # The reader moved past seqs that are lost (corrupt or never written).
                    self.cursor.commit(reader.position)
                    self.stats.cursor = reader.position
        finally:
            reader.close()

    def _lower_priority(self) -> None:
        """Let the receiver threads win the CPU: the box is waiting, plugins can catch up.

        A plugin that a person waits for (a door) says so with `realtime = True`.
        """
        if self.realtime:
            return
        # Not Linux, or not allowed: then plugins simply share the CPU evenly.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PLUGIN_NICENESS)

    def _deliver(self, record: Record) -> None:
        hook = HOOK_FOR_KIND.get(record.kind)
        impl = self.host.impl(self.plugin, hook) if hook else None
        if impl is not None:
            model = self.models.get(record)
            self._owed = True
            if not self._call_until_done(impl, record, model):
                return  # stopped while retrying: the record stays due
        self.cursor.commit(record.seq)
        self.stats.cursor = record.seq

    def _tell_caught_up(self) -> None:
        """`handle_caught_up`, once after records went to the plugin: work it batched
        across them (snapshots' `latest` links) is finished here. Its failure is logged;
        the records were delivered, their cursor has moved."""
        if not self._owed:
            return
        self._owed = False
        try:
            self.host.call_one(self.plugin, "handle_caught_up", bridge=self.bridge)
        except Exception:
            log.exception("plugin %s failed in handle_caught_up", self.plugin)

    def _call_until_done(self, impl: Any, record: Record, model: Any) -> bool:
        """True once the record is done with (delivered or given up on)."""
        attempt, backoff = 0, 0.5
        while not self._stop_event.is_set():
            attempt += 1
            try:
                self._call(impl, record, model, attempt)
            except RetryLater as signal:
                wait = signal.after if signal.after is not None else backoff
                self._retry_later(signal, record, min(wait, self.backoff_max))
            except Exception as err:
                if self._failed(err, record, attempt):
                    return True
                self._stop_event.wait(backoff)
            else:
                self.stats.delivered += 1
                self.stats.state = "ok"
                return True
            backoff = min(backoff * 2, self.backoff_max)
        return False

    def _call(self, impl: Any, record: Record, model: Any, attempt: int) -> None:
        delivery = Delivery(
            seq=record.seq,
            attempt=attempt,
            accepted_this_run=record.seq > self.spool.boot_seq,
            plugin=self.plugin,
        )
        kwargs = {
            ARGUMENT_FOR_KIND[record.kind]: model,
            "delivery": delivery,
            "bridge": self.bridge,
        }
        impl.function(*[kwargs[a] for a in impl.argnames])

    def _retry_later(self, signal: RetryLater, record: Record, wait: float) -> None:
        """The plugin cannot take the record now (its broker is down): the same record
        comes again after `wait`, for as long as it takes, so order is kept."""
        self._note_problem("retrying", f"retry later: {signal}", record)
        self.stats.retries += 1
        self._stop_event.wait(wait)

    def _failed(self, err: Exception, record: Record, attempt: int) -> bool:
        """A failed delivery, logged; True when it was the last attempt (given up on)."""
        self._note_problem("failing", f"{type(err).__name__}: {err}", record)
        name = _record_name(record)
        log.exception(
            "plugin %s failed on %s %s (attempt %d)", self.plugin, record.kind, name, attempt
        )
        if attempt >= FAILED_ATTEMPTS:
            log.error(
                "plugin %s: giving up on %s %s after %d attempts",
                self.plugin,
                record.kind,
                name,
                attempt,
            )
            self.stats.failed += 1
            return True
        self.stats.retries += 1
        return False

    def _note_problem(self, state: str, message: str, record: Record) -> None:
        if self.stats.state != state or self.stats.last_error != message:
            log.warning("plugin %s: %s (%s)", self.plugin, message, _record_name(record))
        self.stats.state = state
        self.stats.last_error = message


def _gather_s(plugin: Any) -> float:
    """How long the plugin's records may wait for company (its `gather_s`, 0 to 5 s).

    A worker woken for every record costs more than the work of a small plugin: ~150
    thread switches an event with every bundled plugin on, measured here, most of them
    workers taking turns at the interpreter lock. A plugin nobody waits on (files on
    disk, an audit trail, a page refreshed every few seconds) says how late its records
    may be, and its worker, once caught up, sleeps that long before it looks again.
    """
    try:
        value = float(getattr(plugin, "gather_s", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return min(max(value, 0.0), MAX_GATHER_S)


def _record_name(record: Record) -> str:
    return str(record.meta.get("event_id") or record.meta.get("box") or f"#{record.seq}")


class Dispatcher:
    """Starts and stops one Worker per plugin that handles spooled records."""

    def __init__(
        self,
        host: PluginHost,
        spool: Spool,
        bridge: Any,
        activity: ReceiverActivity | None = None,
    ):
        self.host = host
        self.spool = spool
        self.workers: dict[str, Worker] = {}
        models = ModelCache()
        for name in host.names():
            if any(host.impl(name, hook) for hook in HOOK_FOR_KIND.values()):
                self.workers[name] = Worker(name, host, spool, bridge, models, activity)
        self._gc_stop = threading.Event()
        self._gc = threading.Thread(target=self._collect_loop, name="spool-gc", daemon=True)

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()
        self._gc.start()

    def quiet_s(self) -> float:
        """How long these workers go without looking for records: the shortest gather_s,
        0 if one is realtime or gathers nothing (or there are none)."""
        return min((w.gather_s for w in self.workers.values()), default=0.0)

    def _collect_loop(self) -> None:
        while not self._gc_stop.wait(5.0):
            try:
                self.spool.collect()
            except OSError:
                log.exception("spool: cleanup failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._gc_stop.set()
        for worker in self.workers.values():
            worker.stop()
        # A worker waiting for the next record would only see the stop at its timeout.
        self.spool.wake_readers()
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning(
                    "plugin %s still busy at shutdown; its record stays spooled", worker.plugin
                )
