"""The spool on real files: framing, recovery after a torn write, cursors, retention."""

from __future__ import annotations

import os
import threading

from sophonfog_bridge.spool import Cursor, Spool


def fill(spool: Spool, count: int, size: int = 100) -> list[int]:
    return [
        spool.append("event", {"event_id": f"e{i}"}, {"spot_pic": bytes([i % 256]) * size})
        for i in range(count)
    ]


def read_all(spool: Spool, after: int = 0) -> list:
    return list(spool.scan(after))


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
    again = Spool(tmp_path)
    assert again.last_seq == 3
    assert again.append("event", {"event_id": "after"}, {}) == 4
    assert [r.seq for r in read_all(Spool(tmp_path))] == [1, 2, 3, 4]


def test_corrupted_record_stops_recovery_there(tmp_path):
    spool = Spool(tmp_path)
    fill(spool, 3)
    segment = spool.segments()[-1][1]
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF  # flip a bit in the last record's payload
    segment.write_bytes(bytes(data))
    assert Spool(tmp_path).last_seq == 2


def test_segments_roll_and_reader_crosses_them(tmp_path):
    spool = Spool(tmp_path, segment_bytes=1000)
    fill(spool, 30, size=200)
    assert len(spool.segments()) > 5
    assert [r.seq for r in read_all(spool)] == list(range(1, 31))
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


def test_group_commit_with_fsync_from_many_threads(tmp_path):
    spool = Spool(tmp_path, fsync=True)
    threads = [threading.Thread(target=fill, args=(spool, 25)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert spool.last_seq == 100
    assert sorted(r.seq for r in read_all(Spool(tmp_path))) == list(range(1, 101))


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
