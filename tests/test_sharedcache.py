"""The cache the plugin process's workers share records and models through."""

from __future__ import annotations

import threading

import pytest

from sophonfog_bridge.sharedcache import SharedCache

from .conftest import wait_for

ASKERS = 6


class Maker:
    """A `make` that blocks until released, counting its calls."""

    def __init__(self, result: object = "value", error: Exception | None = None):
        self.result, self.error = result, error
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> object:
        self.calls += 1
        self.started.set()
        assert self.release.wait(10), "never released"
        if self.error is not None:
            raise self.error
        return self.result


def _ask_together(cache: SharedCache, first: Maker, then: Maker) -> tuple[dict, list]:
    """One thread starts making key 1; ASKERS more ask for it while it is being made."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def ask(index: int, make: Maker) -> None:
        try:
            results[index] = cache.get(1, make)
        except Exception as err:  # handed to the test to check
            errors.append(err)

    threads = [threading.Thread(target=ask, args=(0, first))]
    threads[0].start()
    assert first.started.wait(10)
    for index in range(1, ASKERS + 1):
        threads.append(threading.Thread(target=ask, args=(index, then)))
        threads[-1].start()
    wait_for(lambda: cache._waiting == ASKERS, timeout=10, what="every asker waiting")
    first.release.set()
    then.release.set()
    for thread in threads:
        thread.join(10)
    return results, errors


def test_threads_asking_together_share_one_making():
    cache: SharedCache[int, object] = SharedCache(4)
    value = object()
    first, then = Maker(value), Maker("made again")
    results, errors = _ask_together(cache, first, then)
    assert errors == []
    assert first.calls == 1 and then.calls == 0
    assert len(results) == ASKERS + 1
    assert all(result is value for result in results.values())


def test_when_the_maker_fails_each_waiter_makes_its_own():
    cache: SharedCache[int, object] = SharedCache(4)
    first = Maker(error=OSError("disk gone"))
    then = Maker("read again")
    then.release.set()
    results, errors = _ask_together(cache, first, then)
    assert [str(err) for err in errors] == ["disk gone"]
    assert 1 <= then.calls <= ASKERS  # the first waiter makes it; the rest may share that
    assert sorted(results) == list(range(1, ASKERS + 1))
    assert set(results.values()) == {"read again"}


def test_none_is_not_kept_and_the_oldest_values_are_forgotten():
    cache: SharedCache[int, str] = SharedCache(2)
    made: list[int] = []

    def make(key: int, value: str | None = "v"):
        def run():
            made.append(key)
            return value

        return run

    assert cache.get(1, make(1, None)) is None
    assert cache.get(1, make(1)) == "v"
    cache.get(2, make(2))
    cache.get(3, make(3))
    cache.get(3, make(3))
    cache.get(1, make(1))  # forgotten when 3 came: made again
    assert made == [1, 1, 2, 3, 1]


def test_an_error_reaches_the_asker_and_nothing_is_left_pending():
    cache: SharedCache[int, str] = SharedCache(2)

    def broken() -> str:
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        cache.get(1, broken)
    assert cache.get(1, lambda: "fine") == "fine"
