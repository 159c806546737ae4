"""A plugin's `gather_s`: its worker, once caught up, lets records gather before it looks
again, so one wake-up serves several; a realtime plugin never waits."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator

from sophonfog_bridge import hookimpl, samples
from sophonfog_bridge.dispatcher import Dispatcher
from sophonfog_bridge.host import build_host
from sophonfog_bridge.spool import Spool
from sophonfog_bridge.wire import parse_event

from .conftest import wait_for


class Timed:
    def __init__(self, gather_s: float, realtime: bool = False):
        self.gather_s = gather_s
        self.realtime = realtime
        self.seen: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    @hookimpl
    def handle_event(self, event):
        with self.lock:
            self.seen.append((time.monotonic(), event.identity_id))


def bursts(times: list[float], apart_s: float = 0.005) -> int:
    """Deliveries that follow each other within `apart_s` come from one wake-up."""
    return 1 + sum(1 for a, b in itertools.pairwise(times) if b - a > apart_s)


@contextlib.contextmanager
def dispatching(tmp_path, plugins: dict) -> Iterator[Spool]:
    """A real spool with a dispatcher's workers for `plugins` reading it."""
    spool = Spool(tmp_path)
    dispatcher = Dispatcher(build_host(plugins, entry_points=False), spool, None)
    dispatcher.start()
    try:
        yield spool
    finally:
        dispatcher.stop()
        spool.close()


def append_event(spool: Spool, identity: str) -> None:
    meta, blobs = parse_event(samples.event_payload("v2r2", identity_id=identity)).to_parts()
    spool.append("event", meta, blobs)


def run(tmp_path, plugin: Timed, count: int, every_s: float) -> Timed:
    with dispatching(tmp_path, {"timed": plugin}) as spool:
        for n in range(count):
            append_event(spool, f"p{n}")
            time.sleep(every_s)
        wait_for(lambda: len(plugin.seen) == count, 10, what="every record delivered")
    return plugin


def test_records_gather_and_arrive_whole_and_in_order(tmp_path):
    plugin = run(tmp_path, Timed(gather_s=0.3), count=30, every_s=0.02)
    assert [identity for _, identity in plugin.seen] == [f"p{n}" for n in range(30)]
    # ~0.6 s of records in a few wake-ups (each 0.3 s apart), not one wake-up a record.
    assert bursts([at for at, _ in plugin.seen]) <= 10, plugin.seen


def test_a_realtime_plugin_never_lets_its_records_wait(tmp_path):
    plugin = Timed(gather_s=5.0, realtime=True)
    with dispatching(tmp_path, {"door": plugin}) as spool:
        for n in range(3):
            append_event(spool, f"r{n}")
            # Each within a second, where a 5 s gather would hold the second and third.
            wait_for(lambda n=n: len(plugin.seen) == n + 1, 1.0, what=f"record {n} at once")


def test_a_worker_told_to_stop_while_gathering_waits_for_no_record(tmp_path):
    """Stopped in its gather sleep, a worker stops there: it used to begin a fresh 0.5 s
    wait for a record first, which every stop of a plugin process then sat through."""
    spool = Spool(tmp_path)
    looked, waits = threading.Event(), []
    look = spool.wait_for

    def watched(seq: int, timeout: float) -> bool:
        if timeout > 0:
            waits.append(timeout)
        else:
            looked.set()
        return look(seq, timeout)

    spool.wait_for = watched  # the real spool; only its waits are counted
    dispatcher = Dispatcher(build_host({"timed": Timed(5.0)}, entry_points=False), spool, None)
    dispatcher.start()
    assert looked.wait(10), "the worker never looked for a record"
    dispatcher.stop(timeout=10)
    assert not dispatcher.workers["timed"].is_alive()
    assert waits == [], "the worker waited for a record after it was told to stop"
    spool.close()


def test_a_dispatcher_is_as_quiet_as_its_most_eager_worker(tmp_path):
    """A plugin process rings its workers no sooner than the first of them looks."""
    spool = Spool(tmp_path)
    try:
        pair = {"slow": Timed(0.3), "slower": Timed(2.0)}
        assert Dispatcher(build_host(pair, entry_points=False), spool, None).quiet_s() == 0.3
        with_door = {**pair, "door": Timed(5.0, realtime=True)}
        assert Dispatcher(build_host(with_door, entry_points=False), spool, None).quiet_s() == 0
        eager = {**pair, "eager": Timed(0.0)}
        assert Dispatcher(build_host(eager, entry_points=False), spool, None).quiet_s() == 0
        assert Dispatcher(build_host({}, entry_points=False), spool, None).quiet_s() == 0
    finally:
        spool.close()


class Batching(Timed):
    """Hears when its worker has caught up, and notes what it had been given by then."""

    def __init__(self, gather_s: float, fail: bool = False):
        super().__init__(gather_s)
        self.fail = fail
        self.caught_up: list[int] = []

    @hookimpl
    def handle_caught_up(self, bridge):
        with self.lock:
            self.caught_up.append(len(self.seen))
        if self.fail:
            raise RuntimeError("told to fail")


def test_a_plugin_hears_once_it_has_caught_up_not_after_every_record(tmp_path):
    plugin = Batching(gather_s=0.3)
    with dispatching(tmp_path, {"batching": plugin}) as spool:
        for n in range(30):
            append_event(spool, f"p{n}")
            time.sleep(0.02)  # a box's pace
        wait_for(lambda: plugin.caught_up[-1:] == [30], 10, what="caught up after the last")
    # Once a batch (each 0.3 s of records), not once a record, and never twice idle.
    assert len(plugin.caught_up) <= 10, plugin.caught_up
    assert plugin.caught_up == sorted(set(plugin.caught_up)), plugin.caught_up


def test_a_failing_handle_caught_up_loses_no_record(tmp_path, caplog):
    plugin = run(tmp_path, Batching(gather_s=0.05, fail=True), count=10, every_s=0.02)
    assert [identity for _, identity in plugin.seen] == [f"p{n}" for n in range(10)]
    assert "failed in handle_caught_up" in caplog.text
