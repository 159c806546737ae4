"""The bell between the bridge process and a plugin process: every ring's seq reaches the
plugin process's view; a process whose workers gather lets rings gather too."""

from __future__ import annotations

import socket
import time

import pytest

from sophonfog_bridge.spool import Spool
from sophonfog_bridge.spoolview import Bell, SpoolView, listen

from .conftest import wait_for


class CountingView(SpoolView):
    """A view that counts how often the listener woke to advance it."""

    def __init__(self, path):
        super().__init__(path, last_seq=0, boot_seq=0)
        self.advances: list[tuple[float, int]] = []

    def advance(self, seq: int) -> None:
        self.advances.append((time.monotonic(), seq))
        super().advance(seq)


@pytest.fixture
def bell_pair(tmp_path):
    spool = Spool(tmp_path / "spool")
    ours, theirs = socket.socketpair()
    bell = Bell(ours, spool)
    yield bell, theirs, CountingView(tmp_path / "spool")
    bell.close()
    theirs.close()
    spool.close()


def ring_apart(bell: Bell, count: int, apart_s: float) -> None:
    for seq in range(1, count + 1):
        bell.ring(seq)
        time.sleep(apart_s)  # the pace of a box, not a wait for a result


def test_every_ring_wakes_a_listener_whose_workers_look_at_once(bell_pair):
    bell, theirs, view = bell_pair
    listen(theirs, view)
    ring_apart(bell, 10, 0.02)
    wait_for(lambda: view.last_seq == 10, 5, what="the last seq")
    assert len(view.advances) >= 8, view.advances


def test_a_quiet_listener_takes_a_burst_of_rings_together(bell_pair):
    bell, theirs, view = bell_pair
    listen(theirs, view, quiet_s=0.5)
    ring_apart(bell, 10, 0.02)
    wait_for(lambda: view.last_seq == 10, 5, what="the last seq")
    # The first at once, the other nine in one or two wake-ups after it: not ten.
    assert len(view.advances) <= 3, view.advances
    assert view.advances[0][1] == 1


def test_a_quiet_listener_hears_the_first_ring_after_a_quiet_spell_at_once(bell_pair):
    bell, theirs, view = bell_pair
    listen(theirs, view, quiet_s=5.0)
    rung = time.monotonic()
    bell.ring(1)
    wait_for(lambda: view.last_seq == 1, 1.0, what="the first ring, well within quiet_s")
    assert view.advances[0][0] - rung < 1.0
