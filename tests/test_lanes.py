"""The boxes' posts have worker threads of their own: a box is answered while people's
pages hold every other thread, as it must be within the 0.5 s it waits."""

from __future__ import annotations

import threading

import requests

from sophonfog_bridge.config import validate_core
from sophonfog_bridge.samples import event_payload
from sophonfog_bridge.server import box_threads
from sophonfog_bridge.sources.http import box_post_matcher

from .conftest import wait_for
from .hostile_support import RECORDER, config


def payload(identity: str) -> dict:
    return event_payload("v2r2", identity_id=identity)


def test_a_box_is_answered_while_slow_pages_hold_every_page_thread(bridge_factory, tmp_path):
    entered, release = tmp_path / "entered", tmp_path / "release"
    slow = {"entered": str(entered), "release": str(release)}
    bridge = bridge_factory(
        config(tmp_path, http={"threads": 2}, slow=slow),
        plugins={**RECORDER, "slow": "tests.slow_page:SlowPage"},
    )
    pages: list[int] = []

    def open_page() -> None:
        pages.append(requests.get(bridge.url + "/slow", timeout=30).status_code)

    people = [threading.Thread(target=open_page) for _ in range(2)]
    try:
        for person in people:
            person.start()
        wait_for(
            lambda: entered.exists() and len(entered.read_text().split()) == 2,
            10,
            what="both page threads held by the slow page",
        )
        # Behind the pages it would wait until they are released (20 s); 5 s leaves room
        # for a busy test machine and still tells the two apart.
        for n in range(3):
            answer = requests.post(
                bridge.url + "/RealTimeEvent", json=payload(f"lane{n}"), timeout=5
            )
            assert answer.status_code == 200, answer.text
    finally:
        release.touch()
        for person in people:
            person.join(30)
    assert pages == [200, 200]
    assert bridge.health()["spool_last_seq"] == 3


def test_box_posts_are_told_apart_by_method_and_path():
    box_post = box_post_matcher(
        {"realtime_paths": ["/custom/event"], "history_paths": [], "status_paths": []}
    )
    for path in (
        "/RealTimeEvent",
        "/EventServer/api/SophonFogRelEvent",
        "/EventServer/api/SophonFogHistoryEvent",
        "/DeviceStatus",
        "/custom/event",
        "/s3cret-token/RealTimeEvent",  # the token as a path segment
        "/s3cret-token/custom/event",
    ):
        assert box_post("POST", path), path
    for method, path in (
        ("GET", "/RealTimeEvent"),
        ("POST", "/healthz"),
        ("POST", "/a/b/RealTimeEvent"),  # more than one segment before it: no route
        ("POST", "/RealTimeEventX"),
        ("POST", "/"),
        ("POST", ""),
    ):
        assert not box_post(method, path), (method, path)


def test_the_boxes_lane_is_small_unless_it_waits_for_the_disk():
    def lane(http: dict, fsync: bool) -> int:
        return box_threads(validate_core({"http": http, "spool": {"fsync": fsync}}))

    assert lane({}, fsync=False) == 2
    assert lane({"threads": 12}, fsync=True) == 12
    assert lane({"box_threads": 5}, fsync=True) == 5
