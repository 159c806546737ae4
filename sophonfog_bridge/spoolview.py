"""The plugin process's view of the spool: it reads what the bridge process appends.

Only the bridge process writes the spool. It tells this one the last seq after every
append (the bell); a record is read only once the bell has named its seq, so a frame
that is still being written is never mistaken for a corrupt one. A record is read from
disk once for the workers that want it together, and kept for a moment for those
just behind.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

from .sharedcache import SharedCache
from .spool import Record, Spool, SpoolFull

log = logging.getLogger(__name__)

SEQ = struct.Struct("<Q")
READ_CACHE_RECORDS = 16


class SpoolView(Spool):
    """A Spool that never writes: its last seq is what the bell last said."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        last_seq: int,
        boot_seq: int,
        missing: tuple[int, int] | None = None,
        fsync: bool = False,
    ):
        self._init_state(path, fsync)
        self._folder_lock = None
        self.last_seq = last_seq
        self.boot_seq = boot_seq
        self._missing = missing
        self._read_cache: SharedCache[int, Record] = SharedCache(READ_CACHE_RECORDS)

    def report_corrupt(self, segment: int, offset: int, first: int, last: int, name: str) -> None:
        """Found by a reader here, counted and logged once by the bridge process, which may
        have found the same frame itself at recovery."""
        if self.first_report(segment, offset) and self.on_corrupt is not None:
            self.on_corrupt(segment, offset, first, last, name)

    def advance(self, seq: int) -> None:
        """The bridge process appended up to `seq`: wake the readers."""
        with self._appended:
            if seq > self.last_seq:
                self.last_seq = seq
                self._appended.notify_all()

    def append(self, kind, meta, blobs) -> int:
        raise SpoolFull("the plugin process never writes the spool: announce() instead")

    def collect(self) -> int:
        return 0  # the bridge process, which writes the spool, also cleans it

    def read_shared(self, seq: int, read: Callable[[int], Record | None]) -> Record | None:
        """One worker reads record `seq` from disk; the others that want it get that copy."""
        return self._read_cache.get(seq, lambda: read(seq))

    def _close_segment(self) -> None:
        pass  # nothing open for writing here


class Bell:
    """The bridge process's side: rings with the last seq after each append.

    Never blocks a writer: a ring that finds the socket full is left to a thread of its
    own, which sends the newest seq as soon as the plugin process reads again.
    """

    def __init__(self, sock: socket.socket, spool: Spool):
        self.sock = sock
        self.spool = spool
        sock.setblocking(False)
        self._behind = threading.Event()
        self._stopped = False
        threading.Thread(target=self._catch_up, name="spool-bell", daemon=True).start()

    def ring(self, last_seq: int) -> None:
        try:
            self.sock.send(SEQ.pack(last_seq))
        except BlockingIOError:
            self._behind.set()
        except OSError:
            pass  # the plugin process is gone; a new one is told the seq when it starts

    def _catch_up(self) -> None:
        while True:
            self._behind.wait()
            if self._stopped:
                return
            self._behind.clear()
            try:
                # Blocking, in this thread only: the newest seq covers every one dropped.
                self.sock.settimeout(5.0)
                self.sock.sendall(SEQ.pack(self.spool.last_seq))
            except (TimeoutError, BlockingIOError):
                self._behind.set()
            except OSError:
                return
            finally:
                try:
                    self.sock.setblocking(False)
                except OSError:
                    return

    def close(self) -> None:
        self._stopped = True
        self._behind.set()
        self.sock.close()


def listen(sock: socket.socket, view: SpoolView, quiet_s: float = 0.0) -> threading.Thread:
    """The plugin process's side: advance the view with every seq the bell rings.

    `quiet_s` is how long this process's workers go without looking for records (the
    shortest `gather_s`; 0 if a worker must see each record at once). Rings within it are
    left to gather in the socket and taken together: a process of plugins that gather
    (snapshots alone) was woken twice an event for nothing, an event and the door's
    decision, measured ~0.15 ms of CPU an event at 40 events/s. The first ring after a
    quiet spell still advances the view at once.
    """

    def newest_waiting(first: int) -> int:
        # A burst rings many times: take them all, wake the readers once.
        newest = first
        while True:
            try:
                data = sock.recv(SEQ.size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return newest
            if len(data) != SEQ.size:
                return newest
            newest = max(newest, SEQ.unpack(data)[0])

    def run() -> None:
        while True:
            try:
                data = sock.recv(SEQ.size)
            except OSError:
                return
            if len(data) != SEQ.size:
                return  # closed: the bridge process is gone
            try:
                view.advance(newest_waiting(SEQ.unpack(data)[0]))
            except OSError:
                return
            if quiet_s:
                time.sleep(quiet_s)

    thread = threading.Thread(target=run, name="spool-bell", daemon=True)
    thread.start()
    return thread
