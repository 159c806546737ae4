"""Two lanes of worker threads for waitress: the boxes' posts, and every other request.

A box waits at most 0.5 s for its answer. With one pool, people's pages (a plugin's page
answered in its process, the box panel asking a box) could hold every thread while a box
waited; each lane now has threads of its own, so neither waits for the other.

The boxes' lane is small on purpose. An event's work is ~0.5 ms of Python under the
interpreter lock: more threads take it in turns, and each turn also keeps waitress's
one I/O thread, which reads every body and writes every answer, from the lock. Measured
(8 connections posting 50 KB events, every plugin on, six alternating pairs): 2 threads
answered 7-65 % more events a second than 8 in every pair. With `spool.fsync` on, the
threads mostly wait for the disk without the lock, and more of them share each sync.

Built on waitress's own dispatcher (a lane is one), handed to `create_server` through its
`_dispatcher` argument: waitress offers no other way to choose a thread by request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger(__name__)


class _QueueAtDebug:
    """waitress warns of every request that waits for a thread. In the boxes' lane that is
    a burst answered in turn, not a fault (the ack latency metric shows the wait)."""

    @staticmethod
    def warning(message: str, *args: Any) -> None:
        log.debug(message, *args)


class Lane(ThreadedTaskDispatcher):
    """waitress's dispatcher with its threads named for the lane."""

    def __init__(self, name: str, threads: int, warn_when_queued: bool = True):
        super().__init__()
        self.name = name
        if not warn_when_queued:
            self.queue_logger = _QueueAtDebug()
        self.set_thread_count(threads)

    def start_new_thread(self, target: Callable[[int], None], thread_no: int) -> None:
        name = f"http-{self.name}-{thread_no}"
        threading.Thread(target=target, name=name, args=(thread_no,), daemon=True).start()


class Lanes:
    """A waitress task dispatcher that gives each request to its lane's threads."""

    def __init__(self, is_box_post: Callable[[str, str], bool], box_threads: int, threads: int):
        self.is_box_post = is_box_post
        self.box = Lane("box", box_threads, warn_when_queued=False)
        self.other = Lane("page", threads)

    def add_task(self, channel: Any) -> None:
        # waitress hands over the channel once its first request is whole (the body read).
        # One it could not parse has no method or path, and is answered as a page.
        request = channel.requests[0] if channel.requests else None
        method, path = getattr(request, "command", None), getattr(request, "path", None)
        box = method is not None and path is not None and self.is_box_post(method, path)
        (self.box if box else self.other).add_task(channel)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        """Both lanes stop taking requests at once, then finish theirs within one `timeout`."""
        lanes = (self.box, self.other)
        for lane in lanes:
            lane.set_thread_count(0)
        deadline = time.monotonic() + timeout
        stopped = [
            lane.shutdown(cancel_pending, max(0.0, deadline - time.monotonic())) for lane in lanes
        ]
        return all(stopped)
