"""The spool on real files: framing, recovery after a torn write, cursors, retention."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sophonfog_bridge import hookimpl
from sophonfog_bridge.dispatcher import Dispatcher
from sophonfog_bridge.host import build_host
from sophonfog_bridge.spool import HEADER, Cursor, Spool, SpoolFull, SpoolLocked
from sophonfog_bridge.spoolview import SpoolView


def fill(spool: Spool, count: int, size: int = 100) -> list[int]:
    return [
        spool.append("event", {"event_id": f"e{i}"}, {"spot_pic": bytes([i % 256]) * size})
        for i in range(count)
    ]


def read_all(spool: Spool, after: int = 0) -> list:
    return list(spool.scan(after))


def crash(spool: Spool) -> None:
    """What a kill -9 leaves: the files as written, no close(); the kernel drops the lock."""
    spool._folder_lock.release()


def test_append_and_read_back_in_order(tmp_path):
    spool = Spool(tmp_path)
    seqs = fill(spool, 5)
    assert seqs == [1, 2, 3, 4, 5]
    records = read_all(spool)
    assert [r.meta["event_id"] for r in records] == [f"e{i}" for i in range(5)]
    assert records[2].blobs["spot_pic"] == b"\x02" * 100
    assert [r.seq for r in read_all(spool, after=3)] == [4, 5]


def test_records_survive_reopen_without_close(tmp_path):
    # No close(): what a kill -9 leaves behind is the page cache, which a reopen sees.
    spool = Spool(tmp_path)
    fill(spool, 3)
    crash(spool)
    again = Spool(tmp_path)
    assert again.last_seq == 3 and again.boot_seq == 3
    assert [r.meta["event_id"] for r in read_all(again)] == ["e0", "e1", "e2"]
    assert again.append("event", {"event_id": "next"}, {}) == 4


def test_torn_tail_is_cut_and_appending_continues(tmp_path):
    spool = Spool(tmp_path)
    fill(spool, 3)
    segment = spool.segments()[-1][1]
    with open(segment, "ab") as handle:
        handle.write(b"SFB1\x40\x00\x00\x00garbage")  # a header promising more than is there
    crash(spool)
    again = Spool(tmp_path)
    assert again.last_seq == 3
    assert again.append("event", {"event_id": "after"}, {}) == 4
    crash(again)
    assert [r.seq for r in read_all(Spool(tmp_path))] == [1, 2, 3, 4]


def test_corrupted_record_stops_recovery_there(tmp_path):
    spool = Spool(tmp_path)
    fill(spool, 3)
    segment = spool.segments()[-1][1]
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF  # flip a bit in the last record's payload
    segment.write_bytes(bytes(data))
    crash(spool)
    assert Spool(tmp_path).last_seq == 2


def test_segments_roll_and_reader_crosses_them(tmp_path):
    spool = Spool(tmp_path, segment_bytes=1000)
    fill(spool, 30, size=200)
    assert len(spool.segments()) > 5
    assert [r.seq for r in read_all(spool)] == list(range(1, 31))
    crash(spool)
    assert [r.seq for r in read_all(Spool(tmp_path, segment_bytes=1000), after=17)] == list(
        range(18, 31)
    )


def test_collect_deletes_only_what_every_cursor_passed(tmp_path):
    spool = Spool(tmp_path, segment_bytes=1000)
    fast, slow = spool.cursor("fast"), spool.cursor("slow")
    fill(spool, 30, size=200)
    fast.commit(30)
    slow.commit(10)
    spool.collect()
    firsts = [first for first, _ in spool.segments()]
    assert firsts[0] <= 11, "a segment the slow cursor still needs was deleted"
    assert [r.seq for r in read_all(spool, after=10)] == list(range(11, 31))
    slow.commit(30)
    spool.collect()
    assert len(spool.segments()) == 1


def test_size_bound_drops_oldest_and_reader_skips_ahead(tmp_path, caplog):
    spool = Spool(tmp_path, segment_bytes=1000, max_bytes=3000)
    lagging = spool.cursor("lagging")
    fill(spool, 40, size=200)
    spool.collect()
    assert spool.size_bytes() <= 3000 + 1000
    assert "size bound reached" in caplog.text and "lagging" in caplog.text
    reader = spool.reader(lagging.value)
    first = reader.next(timeout=0)
    assert first is not None and first.seq > 1
    assert "dropped before delivery" in caplog.text


def test_new_cursor_starts_at_the_end(tmp_path):
    spool = Spool(tmp_path)
    fill(spool, 4)
    assert spool.cursor("newcomer").value == 4


def test_cursor_keeps_the_newest_valid_slot(tmp_path):
    path = tmp_path / "c.cur"
    cursor = Cursor(path, 0)
    for seq in (5, 6, 7):
        cursor.commit(seq)
    cursor.close()
    data = bytearray(path.read_bytes())
    # Tear the slot written last (seq 7): the other slot (6) must win.
    newest = 0 if int.from_bytes(data[0:8], "little") == 7 else 12
    data[newest] ^= 0xFF
    path.write_bytes(bytes(data))
    assert Cursor(path, 0).value == 6


def test_a_commit_is_seen_at_once_and_outlives_a_kill_9(tmp_path):
    path = tmp_path / "plugin.cur"
    cursor = Cursor(path, 0)
    cursor.commit(41)
    assert Cursor.peek(path) == 41  # the bridge process reads the plugin process's cursors
    cursor.close()
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from sophonfog_bridge.spool import Cursor\n"
        "cursor = Cursor(Path(sys.argv[1]), 0)\n"
        "cursor.commit(42)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(path)], timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert Cursor.peek(path) == 42 and Cursor(path, 0).value == 42


def test_a_cursor_file_cut_short_reads_as_what_it_holds(tmp_path):
    path = tmp_path / "plugin.cur"
    cursor = Cursor(path, 0)
    cursor.commit(7)  # slot 0 (the first commit, of the default, went to slot 1)
    cursor.close()
    path.write_bytes(path.read_bytes()[:12])  # an older, shorter file: slot 0 only
    again = Cursor(path, 0)
    assert again.value == 7
    again.commit(8)
    again.close()
    assert Cursor(path, 0).value == 8


def test_readers_going_between_memory_and_disk_miss_nothing(tmp_path):
    """The plugin process's readers: the one ahead reads a record from disk and keeps it
    for the others, which go on reading the segment from where the last record they took
    from memory ended: in turns, across segments, as memory forgets the oldest."""
    writer = Spool(tmp_path, segment_bytes=2_000)
    writer.bell = lambda last: view.advance(last)
    view = SpoolView(tmp_path, last_seq=0, boot_seq=0)
    corrupt: list[tuple] = []
    view.on_corrupt = lambda *where: corrupt.append(where)
    readers = [view.reader(0), view.reader(0)]
    got: list[list[str]] = [[], []]

    def take(n: int, which: int) -> None:
        for _ in range(n):
            got[which].append(readers[which].next(timeout=0).meta["event_id"])

    for round_ in range(4):
        fill(writer, 40, size=150 + round_)
        take(7, 0)  # from disk
        take(7, 1)  # the same from memory
        take(9, 1)  # on from disk, from where memory's last one ended
        take(24, 0)  # 9 from memory, then disk again
        take(24, 1)  # 15 from memory (some already forgotten: disk), the rest from disk
        take(9, 0)
    expected = [f"e{i}" for i in range(40)] * 4
    assert got == [expected, expected]
    assert corrupt == [], "a reader landed off a frame boundary"
    assert len(writer.segments()) > 3, "the records span several segments"
    for reader in readers:
        reader.close()
    writer.close()


def test_reader_waits_for_new_records(tmp_path):
    spool = Spool(tmp_path)
    reader = spool.reader(0)
    assert reader.next(timeout=0.01) is None
    got = []
    thread = threading.Thread(target=lambda: got.append(reader.next(timeout=5)))
    thread.start()
    spool.append("event", {"event_id": "late"}, {})
    thread.join(5)
    assert got and got[0].meta["event_id"] == "late"


def test_unwritable_spool_raises_spool_full(tmp_path):
    spool = Spool(tmp_path)
    os.close(spool._fd)
    spool._fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails like a dead disk
    try:
        spool.append("event", {"event_id": "x"}, {})
    except OSError as err:
        assert "cannot write the spool" in str(err)
    else:
        raise AssertionError("append on an unwritable spool did not fail")
    assert spool.last_seq == 0


# ---- fsync: what an answered record has been through -------------------------------------


class DiskLog:
    """The real writes, creates and fsyncs of this process, in order, by path."""

    def __init__(self, monkeypatch, fsync_delay: float = 0.0):
        self.events: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        real_writev, real_fsync, real_open = os.writev, os.fsync, os.open

        def writev(fd, buffers):
            buffers = list(buffers)
            seq = HEADER.unpack_from(buffers[0])[3] if len(buffers[0]) >= HEADER.size else 0
            written = real_writev(fd, buffers)
            self.note("write", fd, seq)
            return written

        def fsync(fd):
            self.note("sync", fd, 0)
            time.sleep(fsync_delay)  # a slow disk widens every race a real one has
            return real_fsync(fd)

        def open_(path, flags, *args, **kwargs):
            fd = real_open(path, flags, *args, **kwargs)
            if flags & os.O_CREAT:
                self.note("open", fd, 0)
            return fd

        monkeypatch.setattr(os, "writev", writev)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "open", open_)

    def note(self, kind: str, fd: int, seq: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = f"(closed fd {fd})"
        with self.lock:
            self.events.append((kind, path, seq))

    def ack(self, seq: int) -> None:
        with self.lock:
            self.events.append(("ack", "", seq))

    def unsynced_acks(self) -> list[int]:
        """Seqs answered before an fsync of their segment (and of its folder) covered them."""
        where = {seq: (i, path) for i, (k, path, seq) in enumerate(self.events) if k == "write"}
        bad = []
        for i, (kind, _, seq) in enumerate(self.events):
            if kind != "ack":
                continue
            wrote, path = where[seq]
            synced = any(k == "sync" and p == path for k, p, _ in self.events[wrote + 1 : i])
            if not synced:
                bad.append(seq)
        return bad

    def created(self, suffix: str) -> list[tuple[int, str]]:
        return [
            (i, p) for i, (k, p, _) in enumerate(self.events) if k == "open" and p.endswith(suffix)
        ]

    def synced_after(self, index: int, path: str) -> bool:
        return any(k == "sync" and p == path for k, p, _ in self.events[index + 1 :])


def fill_acked(spool: Spool, disk: DiskLog, count: int, size: int = 300) -> None:
    for i in range(count):
        disk.ack(spool.append("event", {"event_id": f"t{i}"}, {"spot_pic": b"x" * size}))


def test_fsync_group_commit_across_rolls_never_answers_before_its_segment_is_synced(
    tmp_path, monkeypatch
):
    disk = DiskLog(monkeypatch, fsync_delay=0.003)
    spool = Spool(tmp_path, fsync=True, segment_bytes=1000)
    threads = [threading.Thread(target=fill_acked, args=(spool, disk, 25)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert spool.last_seq == 150
    assert len(spool.segments()) > 20, "the test must cross many segment rolls"
    assert disk.unsynced_acks() == []
    spool.close()
    assert [r.seq for r in read_all(Spool(tmp_path))] == list(range(1, 151))


def test_fsync_new_segments_and_cursors_sync_their_folder(tmp_path, monkeypatch):
    disk = DiskLog(monkeypatch)
    spool = Spool(tmp_path, fsync=True, segment_bytes=1000)
    spool.cursor("plugin")
    fill_acked(spool, disk, 12)
    segments_dir = str((tmp_path / "segments").resolve())
    created = disk.created(".seg")
    assert len(created) >= 3
    for index, _ in created:
        assert disk.synced_after(index, segments_dir), "a new segment's name was not synced"
    ((index, _),) = disk.created(".cur")
    assert disk.synced_after(index, str((tmp_path / "cursors").resolve()))


def test_failed_fsync_is_an_error_for_every_writer_it_covered(tmp_path, monkeypatch):
    spool = Spool(tmp_path, fsync=True)
    real_fsync = os.fsync
    broken = threading.Event()
    broken.set()
    calls = []

    def fsync(fd):
        calls.append(fd)
        if broken.is_set():
            if len(calls) == 1:
                # Hold the first sync until two more writers queue behind it.
                deadline = time.monotonic() + 10
                while spool.last_seq < 3 and time.monotonic() < deadline:
                    time.sleep(0.005)
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    outcomes: list[object] = []

    def write(n: int) -> None:
        try:
            outcomes.append(spool.append("event", {"event_id": f"f{n}"}, {}))
        except SpoolFull as err:
            outcomes.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(20)
    assert len(outcomes) == 3
    answered = [o for o in outcomes if not isinstance(o, SpoolFull)]
    assert answered == [], f"records {answered} were answered as durable after a failed fsync"
    assert all("fsync" in str(o) for o in outcomes)
    broken.clear()  # the disk is back: the next write is durable again
    assert spool.append("event", {"event_id": "ok"}, {}) == 4


# ---- recovery keeps seqs above every persisted cursor -----------------------------------


def test_seqs_continue_above_a_cursor_persisted_ahead_of_a_cut_tail(tmp_path, caplog):
    spool = Spool(tmp_path)
    ahead, behind = spool.cursor("ahead"), spool.cursor("behind")
    fill(spool, 10)
    ahead.commit(10)
    behind.commit(5)
    segment = spool.segments()[-1][1]
    spool.close()
    # Power loss with fsync off: the cursor reached the disk, the last records did not.
    keep = sum(HEADER.size + length for length in frame_lengths(segment)[:6])
    os.truncate(segment, keep)
    caplog.set_level(logging.WARNING)
    again = Spool(tmp_path)
    assert again.last_seq >= 10
    assert "7..10" in caplog.text
    new_seq = again.append("event", {"event_id": "new"}, {})
    assert new_seq == 11
    ahead_reader = again.reader(again.cursor("ahead").value)
    assert ahead_reader.next(timeout=0).meta["event_id"] == "new"
    behind_reader = again.reader(again.cursor("behind").value)
    assert [behind_reader.next(timeout=0).seq for _ in range(2)] == [6, 11]
    assert behind_reader.next(timeout=0) is None


def frame_lengths(segment) -> list[int]:
    data, offset, lengths = segment.read_bytes(), 0, []
    while offset + HEADER.size <= len(data):
        length = HEADER.unpack_from(data, offset)[1]
        lengths.append(length)
        offset += HEADER.size + length
    return lengths


# ---- shutdown while a plugin is still busy ------------------------------------------------


class Stuck:
    """A plugin whose delivery outlives the shutdown wait (an MQTT publish can take 10 s)."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[str] = []

    @hookimpl
    def handle_event(self, event):
        self.seen.append(event.identity_id)
        self.entered.set()
        self.release.wait(20)


def test_worker_finishing_after_close_never_writes_a_closed_or_reused_fd(tmp_path):
    from sophonfog_bridge.samples import event_payload
    from sophonfog_bridge.wire import parse_event

    plugin = Stuck()
    host = build_host({"stuck": plugin}, entry_points=False)
    spool = Spool(tmp_path)
    dispatcher = Dispatcher(host, spool, bridge=None)
    meta, blobs = parse_event(event_payload("v2r2", identity_id="slow")).to_parts()
    dispatcher.start()
    seq = spool.append("event", meta, blobs)
    assert plugin.entered.wait(10)
    dispatcher.stop(timeout=0.2)
    spool.close()
    # The fd numbers the spool held are free now; a file opened next reuses them.
    bystanders = [tmp_path / f"bystander{n}" for n in range(8)]
    handles = [open(path, "wb+") for path in bystanders]  # noqa: SIM115
    plugin.release.set()
    dispatcher.workers["stuck"].join(10)
    assert not dispatcher.workers["stuck"].is_alive()
    for handle, path in zip(handles, bystanders, strict=True):
        handle.close()
        assert path.read_bytes() == b"", f"the worker wrote its cursor into {path.name}"
    # The record was not claimed as done: it is still due after a restart.
    again = Spool(tmp_path)
    assert again.cursor("stuck").value == seq - 1


# ---- one owner, corrupt records ------------------------------------------------------------


def test_a_second_spool_on_the_folder_is_refused_naming_the_owner(tmp_path):
    spool = Spool(tmp_path)
    with pytest.raises(SpoolLocked, match=f"{tmp_path}.*pid {os.getpid()}"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()  # free again once the owner closed it


def flip(spool: Spool, seq: int) -> None:
    for _, segment in spool.segments():
        data, offset = bytearray(segment.read_bytes()), 0
        while offset + HEADER.size <= len(data):
            length, frame_seq = (
                HEADER.unpack_from(data, offset)[1],
                HEADER.unpack_from(data, offset)[3],
            )
            if frame_seq == seq:
                data[offset + HEADER.size + length // 2] ^= 0xFF
                segment.write_bytes(bytes(data))
                return
            offset += HEADER.size + length
    raise AssertionError(f"no record {seq}")


def test_corrupt_record_mid_segment_is_skipped_counted_and_the_rest_kept(tmp_path, caplog):
    spool = Spool(tmp_path)
    fill(spool, 10)
    flip(spool, 4)
    crash(spool)
    again = Spool(tmp_path)
    assert again.last_seq == 10
    assert again.corrupt_records == 1
    assert "4..4" in caplog.text
    assert [r.seq for r in read_all(again)] == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert again.corrupt_records == 1, "the same bad frame is counted once"
    assert again.append("event", {"event_id": "next"}, {}) == 11


def test_reader_skips_a_corrupt_record_in_an_older_segment_without_spinning(tmp_path):
    spool = Spool(tmp_path, segment_bytes=1000)
    fill(spool, 30, size=200)
    assert spool.segments()[0][0] == 1 and len(spool.segments()) > 5
    flip(spool, 2)
    crash(spool)
    again = Spool(tmp_path, segment_bytes=1000)
    reader = again.reader(0)
    got = []
    while (record := reader.next(timeout=0)) is not None:
        got.append(record.seq)
    assert got == [1, *range(3, 31)]
    assert again.corrupt_records == 1
    # Another plugin's reader crosses the same spot: still counted once.
    assert [r.seq for r in read_all(again)] == got
    assert again.corrupt_records == 1


def test_a_reader_waiting_for_a_record_is_woken_to_stop(tmp_path):
    """Workers told to stop are woken from their wait for the next record (they would
    otherwise notice only at its timeout, and every stop of the bridge waited that long)."""
    spool = Spool(tmp_path)
    fill(spool, 1)
    found: list[bool] = []
    waiter = threading.Thread(target=lambda: found.append(spool.wait_for(2, timeout=30)))
    waiter.start()
    # The waiter is inside wait_for once it holds the condition's lock and waits on it.
    deadline = time.monotonic() + 10
    while not spool._appended._waiters and time.monotonic() < deadline:
        time.sleep(0.01)
    assert spool._appended._waiters, "the reader never started waiting"
    spool.wake_readers()
    waiter.join(5)
    assert not waiter.is_alive(), "the reader slept on to its 30 s timeout"
    assert found == [False]
    spool.close()
