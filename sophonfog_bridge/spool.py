"""The append-only event log: segment files of CRC-framed records, and per-plugin cursors.

Why a log and not a database: the HTTP answer waits for exactly one `write()` of the
record into the page cache, which survives a kill -9 of the bridge (and, with
`fsync: true`, a power cut, at the price of a group-committed fsync). Each plugin reads
the log at its own pace from its own cursor, so a plugin whose broker is down holds back
nothing but its own position; a segment is deleted once every cursor has passed it.

Record frame: magic, payload length, CRC32 of (seq + payload), seq, then the payload:
kind, a JSON meta dict and named binary blobs (the images, never base64 on disk).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"SFB1"
HEADER = struct.Struct("<4sIIQ")  # magic, payload length, crc32, seq
CURSOR_SLOT = struct.Struct("<QI")  # seq, crc32
MAX_RECORD = 256 << 20
RECENT_RECORDS = 64
RECENT_BYTES = 16 << 20


class SpoolFull(OSError):
    """The spool cannot take a record right now; the receiver answers 503."""


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str
    meta: Mapping[str, Any]
    blobs: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.blobs.values()) + 256


def encode(kind: str, meta: Mapping[str, Any], blobs: Mapping[str, bytes]) -> bytes:
    parts = [_short(kind.encode())]
    meta_bytes = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
    parts += [struct.pack("<I", len(meta_bytes)), meta_bytes, bytes([len(blobs)])]
    for name, blob in blobs.items():
        parts += [_short(name.encode()), struct.pack("<I", len(blob)), blob]
    return b"".join(parts)


def _short(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def decode(seq: int, payload: bytes) -> Record:
    view = memoryview(payload)
    pos = 1 + view[0]
    kind = bytes(view[1:pos]).decode()
    (meta_len,) = struct.unpack_from("<I", view, pos)
    pos += 4
    meta = json.loads(bytes(view[pos : pos + meta_len]))
    pos += meta_len
    count = view[pos]
    pos += 1
    blobs = {}
    for _ in range(count):
        name_len = view[pos]
        name = bytes(view[pos + 1 : pos + 1 + name_len]).decode()
        pos += 1 + name_len
        (blob_len,) = struct.unpack_from("<I", view, pos)
        pos += 4
        blobs[name] = bytes(view[pos : pos + blob_len])
        pos += blob_len
    return Record(seq, kind, meta, blobs)


def _checksum(seq: int, payload_crc: int) -> int:
    """CRC32 over the payload, then the seq: the payload part is computed outside the lock."""
    return zlib.crc32(struct.pack("<Q", seq), payload_crc)


def _header(seq: int, payload: bytes, payload_crc: int) -> bytes:
    return HEADER.pack(MAGIC, len(payload), _checksum(seq, payload_crc), seq)


def _read_frame(handle) -> tuple[int, bytes] | None:
    """Next valid (seq, payload) from a segment, or None at its end or at a torn tail."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    magic, length, crc, seq = HEADER.unpack(header)
    if magic != MAGIC or length > MAX_RECORD:
        return None
    payload = handle.read(length)
    if len(payload) < length or _checksum(seq, zlib.crc32(payload)) != crc:
        return None
    return seq, payload


class Cursor:
    """A plugin's position: the last seq it finished. Two slots, so a torn write loses nothing."""

    def __init__(self, path: Path, default: int, fsync: bool = False):
        self.path = path
        self.fsync = fsync
        existed = path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.value = self._load() if existed else default
        self._slot = 0
        if not existed:
            self.commit(default)

    def _load(self) -> int:
        data = os.pread(self._fd, CURSOR_SLOT.size * 2, 0)
        best = 0
        for offset in (0, CURSOR_SLOT.size):
            if len(data) >= offset + CURSOR_SLOT.size:
                seq, crc = CURSOR_SLOT.unpack_from(data, offset)
                if zlib.crc32(struct.pack("<Q", seq)) == crc:
                    best = max(best, seq)
        return best

    def commit(self, seq: int) -> None:
        self._slot ^= 1
        slot = CURSOR_SLOT.pack(seq, zlib.crc32(struct.pack("<Q", seq)))
        os.pwrite(self._fd, slot, self._slot * CURSOR_SLOT.size)
        if self.fsync:
            os.fsync(self._fd)
        self.value = seq

    def close(self) -> None:
        os.close(self._fd)


class Spool:
    """Append records, read them back from any position, drop what every cursor passed."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fsync: bool = False,
        segment_bytes: int = 64 << 20,
        max_bytes: int = 1 << 30,
        max_age_s: float = 7 * 86400,
    ):
        self.path = Path(path)
        self.segments_dir = self.path / "segments"
        self.cursors_dir = self.path / "cursors"
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self.cursors_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        # Writers serialise on _lock; readers wait on _appended, which has a lock of its own
        # so that waking workers never queue behind a request thread's write.
        self._lock = threading.Lock()
        self._appended = threading.Condition(threading.Lock())
        self._synced = threading.Condition(threading.Lock())
        self._synced_seq = 0
        self._syncing = False
        self._recent: OrderedDict[int, Record] = OrderedDict()
        self._recent_bytes = 0
        self.cursors: dict[str, Cursor] = {}
        self.closed = False
        self.last_seq = self._recover()
        self.boot_seq = self.last_seq
        self._synced_seq = self.last_seq

    # ---- segments ----------------------------------------------------------------------

    def segments(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self.segments_dir.glob("*.seg"):
            try:
                found.append((int(entry.stem), entry))
            except ValueError:
                continue
        return sorted(found)

    def _recover(self) -> int:
        """Find the last good record; cut a torn tail left by a crash mid-write."""
        segments = self.segments()
        last_seq = 0
        if segments:
            first, path = segments[-1]
            last_seq = first - 1
            with open(path, "rb") as handle:
                good = 0
                while (frame := _read_frame(handle)) is not None:
                    last_seq, good = frame[0], handle.tell()
            if good < path.stat().st_size:
                log.warning("spool: cut a torn record at the end of %s", path.name)
                os.truncate(path, good)
            self._active_first = first
        else:
            self._active_first = 1
        self._fd = os.open(
            self.segments_dir / f"{self._active_first:016d}.seg",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        self._active_size = os.fstat(self._fd).st_size
        return last_seq

    def _roll(self) -> None:
        os.close(self._fd)
        self._active_first = self.last_seq + 1
        self._fd = os.open(
            self.segments_dir / f"{self._active_first:016d}.seg",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        self._active_size = 0

    # ---- writing -----------------------------------------------------------------------

    def append(self, kind: str, meta: Mapping[str, Any], blobs: Mapping[str, bytes]) -> int:
        """Record durably (page cache, or disk with fsync) and return the record's seq."""
        payload = encode(kind, meta, blobs)
        payload_crc = zlib.crc32(payload)
        size = HEADER.size + len(payload)
        with self._lock:
            if self.closed:
                raise SpoolFull("spool is closed")
            seq = self.last_seq + 1
            if self._active_size + size > self.segment_bytes and self._active_size:
                self._roll()
            try:
                written = os.writev(self._fd, [_header(seq, payload, payload_crc), payload])
            except OSError as err:
                self._rewind()
                raise SpoolFull(f"cannot write the spool: {err.strerror}") from err
            if written != size:
                self._rewind()
                raise SpoolFull("cannot write the spool: short write (disk full?)")
            self._active_size += written
            self._remember(Record(seq, kind, meta, blobs))
            self.last_seq = seq
        with self._appended:
            self._appended.notify_all()
        if self.fsync:
            self._group_sync(seq)
        return seq

    def _rewind(self) -> None:
        """Drop a partial frame so the next append starts on a record boundary."""
        try:
            os.ftruncate(self._fd, self._active_size)
        except OSError:
            log.exception("spool: could not cut a partial record")

    def _group_sync(self, seq: int) -> None:
        """One fsync covers every append before it; concurrent writers share it."""
        with self._synced:
            while self._synced_seq < seq:
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                target = self.last_seq
                fd = self._fd
                self._synced.release()
                try:
                    os.fsync(fd)
                finally:
                    self._synced.acquire()
                    self._syncing = False
                    self._synced_seq = max(self._synced_seq, target)
                    self._synced.notify_all()

    def _remember(self, record: Record) -> None:
        self._recent[record.seq] = record
        self._recent_bytes += record.size
        while len(self._recent) > RECENT_RECORDS or self._recent_bytes > RECENT_BYTES:
            _, old = self._recent.popitem(last=False)
            self._recent_bytes -= old.size

    # ---- reading -----------------------------------------------------------------------

    def cursor(self, name: str) -> Cursor:
        """The named cursor; a new plugin starts at the end, not at days of old events."""
        if name not in self.cursors:
            self.cursors[name] = Cursor(self.cursors_dir / f"{name}.cur", self.last_seq, self.fsync)
        return self.cursors[name]

    def reader(self, after_seq: int) -> Reader:
        return Reader(self, after_seq)

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until a record with this seq exists (or the spool closes)."""
        with self._appended:
            if self.last_seq < seq and not self.closed:
                self._appended.wait(timeout)
            return self.last_seq >= seq

    def recent(self, seq: int) -> Record | None:
        # One dict lookup is atomic; taking the writers' lock here would slow the writers.
        return self._recent.get(seq)

    def scan(self, after_seq: int = 0) -> Iterator[Record]:
        """Every record after `after_seq` that is on disk now (for rebuilding indexes)."""
        reader = Reader(self, after_seq)
        try:
            while (record := reader.next(timeout=0)) is not None:
                yield record
        finally:
            reader.close()

    def depth(self) -> int:
        """Records the slowest registered cursor still has to go through."""
        if not self.cursors:
            return 0
        return max(self.last_seq - c.value for c in self.cursors.values())

    # ---- retention ---------------------------------------------------------------------

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for _, p in self.segments())

    def collect(self) -> int:
        """Delete segments every cursor has passed, then enforce the size and age bounds."""
        removed = 0
        floor = min((c.value for c in self.cursors.values()), default=self.last_seq)
        segments = self.segments()
        for index, (_, path) in enumerate(segments[:-1]):
            next_first = segments[index + 1][0]
            if next_first - 1 <= floor:
                path.unlink(missing_ok=True)
                removed += 1
        segments = self.segments()
        total = sum(p.stat().st_size for _, p in segments)
        now = time.time()
        while len(segments) > 1:
            path = segments[0][1]
            too_big = total > self.max_bytes
            too_old = now - path.stat().st_mtime > self.max_age_s
            if not (too_big or too_old):
                break
            last_in_segment = segments[1][0] - 1
            lagging = {n: last_in_segment - c.value for n, c in self.cursors.items()}
            lagging = {n: count for n, count in lagging.items() if count > 0}
            log.error(
                "spool: %s bound reached, dropping %s with undelivered records for %s",
                "size" if too_big else "age",
                path.name,
                ", ".join(f"{n} ({c})" for n, c in lagging.items()) or "nobody",
            )
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            removed += 1
            segments = segments[1:]
            self._forget_before(segments[0][0])
        return removed

    def _forget_before(self, seq: int) -> None:
        """Dropped records must not live on in memory: readers see the same gap as disk."""
        with self._lock:
            while self._recent and next(iter(self._recent)) < seq:
                _, old = self._recent.popitem(last=False)
                self._recent_bytes -= old.size

    def close(self) -> None:
        with self._lock:
            self.closed = True
            with self._appended:
                self._appended.notify_all()
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
        for cursor in self.cursors.values():
            cursor.close()


class Reader:
    """Reads records in seq order from a position, waiting for new ones at the end."""

    def __init__(self, spool: Spool, after_seq: int):
        self.spool = spool
        self.position = after_seq
        self._handle = None
        self._segment_first = 0

    def _open_for(self, seq: int) -> bool:
        """Open the segment holding `seq` and skip to it; False if it is gone or not there."""
        self.close()
        candidates = [s for s in self.spool.segments() if s[0] <= seq]
        if not candidates:
            segments = self.spool.segments()
            if segments and segments[0][0] > seq:
                log.error(
                    "spool: records %d..%d were dropped before delivery (bound reached)",
                    seq,
                    segments[0][0] - 1,
                )
                self.position = segments[0][0] - 1
                return self._open_for(segments[0][0])
            return False
        first, path = candidates[-1]
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open across calls
        except FileNotFoundError:
            return False
        while True:
            offset = handle.tell()
            header = handle.read(HEADER.size)
            if len(header) < HEADER.size:
                break
            _, length, _, frame_seq = HEADER.unpack(header)
            if frame_seq >= seq:
                handle.seek(offset)
                break
            handle.seek(length, os.SEEK_CUR)
        self._handle, self._segment_first = handle, first
        return True

    def next(self, timeout: float = 0.5) -> Record | None:
        """The record after the current position, or None if none came within `timeout`."""
        want = self.position + 1
        if not self.spool.wait_for(want, timeout):
            return None
        record = self.spool.recent(want)
        if record is None:
            record = self._read(want)
        if record is not None:
            self.position = record.seq
        return record

    def _read(self, want: int) -> Record | None:
        for _ in range(3):
            if self._handle is None and not self._open_for(want):
                return None
            assert self._handle is not None
            offset = self._handle.tell()
            frame = _read_frame(self._handle)
            if frame is not None and frame[0] == want:
                return decode(*frame)
            if frame is not None and frame[0] > want:
                # Records were dropped by a bound: deliver the next one we have.
                return decode(*frame)
            self._handle.seek(offset)
            self.close()  # end of this segment, or we were positioned elsewhere: reopen
        return None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
