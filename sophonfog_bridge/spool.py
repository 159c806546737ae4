"""The append-only event log: segment files of CRC-framed records, and per-plugin cursors.

Why a log and not a database: the HTTP answer waits for exactly one `write()` of the
record into the page cache, which survives a kill -9 of the bridge (and, with
`fsync: true`, a power cut, at the price of a group-committed fsync). Each plugin reads
the log at its own pace from its own cursor, so a plugin whose broker is down holds back
nothing but its own position; a segment is deleted once every cursor has passed it.

Record frame: magic, payload length, CRC32 of (seq + payload), seq, then the payload:
kind, a JSON meta dict and named binary blobs (the images, outside the JSON). The
receiver spools images decoded; records written by earlier versions may hold base64 text
instead, which the meta says (`encoded_images`) and the workers decode.

A bad frame that is the last thing in the active segment is a write cut short by a crash
(a torn tail) and is cut off. A bad frame with a good one after it is corruption: it is
skipped (the next good frame is found by its magic and CRC), reported once with the seqs
it cost, and every record after it is kept.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jsoncodec
from .files import fsync_dir

try:
    # The same CRC-32 as zlib's, computed with SIMD: ~5x faster on the photos of an event.
    # No wheel for every platform (32-bit ARM): zlib's gives the same checksums there.
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - depends on the platform
    from zlib import crc32

log = logging.getLogger(__name__)

MAGIC = b"SFB1"
HEADER = struct.Struct("<4sIIQ")  # magic, payload length, crc32, seq
CURSOR_SLOT = struct.Struct("<QI")  # seq, crc32
_U32 = struct.Struct("<I")
MAX_RECORD = 256 << 20
RECENT_RECORDS = 64
RECENT_BYTES = 16 << 20


class SpoolFull(OSError):
    """The spool cannot take a record right now; the receiver answers 503."""


class SpoolLocked(RuntimeError):
    """Another process owns this spool folder; two writers would corrupt it."""


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str
    meta: Mapping[str, Any]
    blobs: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.blobs.values()) + 256


def encode_parts(kind: str, meta: Mapping[str, Any], blobs: Mapping[str, bytes]) -> list[bytes]:
    """A record's payload as pieces, for one writev: the photos are never copied."""
    meta_bytes = jsoncodec.dumps(meta)
    parts = [_short(kind.encode()), struct.pack("<I", len(meta_bytes)), meta_bytes]
    parts.append(bytes([len(blobs)]))
    for name, blob in blobs.items():
        parts += [_short(name.encode()), struct.pack("<I", len(blob)), blob]
    return parts


def encode(kind: str, meta: Mapping[str, Any], blobs: Mapping[str, bytes]) -> bytes:
    return b"".join(encode_parts(kind, meta, blobs))


def _short(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def decode(seq: int, payload: bytes) -> Record:
    # Every worker decodes every record it reads: plain slices of the bytes, no memoryview
    # (its slicing cost more than the small copies it saved).
    pos = 1 + payload[0]
    kind = payload[1:pos].decode()
    (meta_len,) = _U32.unpack_from(payload, pos)
    pos += 4
    meta = jsoncodec.loads(payload[pos : pos + meta_len])
    pos += meta_len
    count = payload[pos]
    pos += 1
    blobs = {}
    for _ in range(count):
        end = pos + 1 + payload[pos]
        name = payload[pos + 1 : end].decode()
        (blob_len,) = _U32.unpack_from(payload, end)
        pos = end + 4 + blob_len
        blobs[name] = payload[end + 4 : pos]
    return Record(seq, kind, meta, blobs)


def _checksum(seq: int, payload_crc: int) -> int:
    """CRC32 over the payload, then the seq: the payload part is computed outside the lock."""
    return crc32(struct.pack("<Q", seq), payload_crc)


def _header(seq: int, length: int, payload_crc: int) -> bytes:
    return HEADER.pack(MAGIC, length, _checksum(seq, payload_crc), seq)


def _read_frame(handle) -> tuple[int, bytes] | None:
    """Next valid (seq, payload) from a segment, or None at its end or at a torn tail."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    magic, length, crc, seq = HEADER.unpack(header)
    if magic != MAGIC or length > MAX_RECORD:
        return None
    payload = handle.read(length)
    if len(payload) < length or _checksum(seq, crc32(payload)) != crc:
        return None
    return seq, payload


def _resync(handle, start: int, after_seq: int) -> tuple[int, int] | None:
    """(offset, seq) of the first valid frame at or after `start` with a seq above `after_seq`.

    Payloads may contain the magic by chance; the CRC over seq and payload tells them apart.
    """
    chunk = 1 << 20
    pos = start
    while True:
        handle.seek(pos)
        data = handle.read(chunk + len(MAGIC) - 1)
        index = data.find(MAGIC)
        while index != -1 and index < chunk:
            handle.seek(pos + index)
            frame = _read_frame(handle)
            if frame is not None and frame[0] > after_seq:
                return pos + index, frame[0]
            index = data.find(MAGIC, index + 1)
        if len(data) <= chunk:
            return None
        pos += chunk


class FolderLock:
    """An exclusive flock on `<folder>/bridge.lock` holding the owner's pid, for its lifetime.

    The kernel drops the lock when the process dies, however it dies, so a stale file never
    blocks a restart.
    """

    def __init__(self, folder: Path):
        self.path = folder / "bridge.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise SpoolLocked(
                f"spool folder {folder} is in use by another bridge (pid {owner}); "
                "run one bridge per spool.path"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = -1


def _best_slot(data: bytes) -> int:
    best = 0
    for offset in (0, CURSOR_SLOT.size):
        if len(data) >= offset + CURSOR_SLOT.size:
            seq, crc = CURSOR_SLOT.unpack_from(data, offset)
            if crc32(struct.pack("<Q", seq)) == crc:
                best = max(best, seq)
    return best


class Cursor:
    """A plugin's position: the last seq it finished. Two slots, so a torn write loses nothing."""

    def __init__(self, path: Path, default: int, fsync: bool = False):
        self.path = path
        self.fsync = fsync
        # A worker may still be finishing a delivery when the spool closes: commits and
        # close() serialise here, so a late commit never writes to a closed (or reused) fd.
        self._lock = threading.Lock()
        self.closed = False
        existed = path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.value = self._load() if existed else default
        self._slot = 0
        self._map = None if fsync else self._mapped()
        if not existed:
            self.commit(default)
            if fsync:
                fsync_dir(path.parent)

    def _load(self) -> int:
        return _best_slot(os.pread(self._fd, CURSOR_SLOT.size * 2, 0))

    def _mapped(self) -> mmap.mmap:
        """The file's two slots, mapped: a commit is then a store into the page cache.

        Without fsync a pwrite promised no more than that (the page cache survives a
        kill -9, not a power cut), and a store costs no system call. In the plugin
        process every system call lets another thread take the interpreter lock, and
        getting it back is two more: with a commit per record per plugin that added up.
        """
        size = CURSOR_SLOT.size * 2
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)  # zeros never pass a slot's CRC: no value is made up
        return mmap.mmap(self._fd, size)

    @staticmethod
    def peek(path: Path) -> int:
        """A cursor file's value, read without opening it for writing."""
        try:
            with open(path, "rb") as handle:
                return _best_slot(handle.read(CURSOR_SLOT.size * 2))
        except OSError:
            return 0

    def commit(self, seq: int) -> None:
        """Move the cursor to `seq`; after close() nothing moves and the record stays due."""
        with self._lock:
            if self.closed:
                log.info(
                    "spool closed: %s stays at %d, record %d stays due",
                    self.path.stem,
                    self.value,
                    seq,
                )
                return
            self._slot ^= 1
            slot = CURSOR_SLOT.pack(seq, crc32(struct.pack("<Q", seq)))
            offset = self._slot * CURSOR_SLOT.size
            if self._map is not None:
                self._map[offset : offset + CURSOR_SLOT.size] = slot
            else:
                os.pwrite(self._fd, slot, offset)
                os.fsync(self._fd)
            self.value = seq

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                if self._map is not None:
                    self._map.close()
                os.close(self._fd)


class WatchedCursor:
    """A cursor file another process writes, read when its value is asked for."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def value(self) -> int:
        return Cursor.peek(self.path)

    def close(self) -> None:
        pass


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
        self._init_state(path, fsync)
        # Before recovery: a second bridge would otherwise cut the live one's records.
        self._folder_lock: FolderLock | None = FolderLock(self.path)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.last_seq = self._recover()
        self.boot_seq = self.last_seq
        self._synced_seq = self.last_seq

    def _init_state(self, path: str | os.PathLike, fsync: bool) -> None:
        self.path = Path(path)
        self.segments_dir = self.path / "segments"
        self.cursors_dir = self.path / "cursors"
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self.cursors_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        # Writers serialise on _lock; readers wait on _appended, which has a lock of its own
        # so that waking workers never queue behind a request thread's write.
        self._lock = threading.Lock()
        self._appended = threading.Condition(threading.Lock())
        self._synced = threading.Condition(threading.Lock())
        self._synced_seq = 0
        self._sync_failures: list[tuple[int, int, str]] = []  # (first, last, error)
        self._syncing = False
        self._recent: OrderedDict[int, Record] = OrderedDict()
        self._recent_bytes = 0
        self.cursors: dict[str, Cursor | WatchedCursor] = {}
        self.closed = False
        self.corrupt_records = 0
        self.on_corrupt: Any = None  # called with the count of each newly found loss
        # Called with the last seq after each append: tells readers in another process.
        self.bell: Callable[[int], None] | None = None
        self._corrupt_seen: set[tuple[int, int]] = set()
        self._corrupt_lock = threading.Lock()
        self._missing: tuple[int, int] | None = None

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
            last_seq = self._recover_segment(first, path)
            self._active_first = first
        else:
            self._active_first = 1
        self._fd = self._open_segment(self._active_first)
        self._active_size = os.fstat(self._fd).st_size
        return self._above_cursors(last_seq)

    def _recover_segment(self, first: int, path: Path) -> int:
        """The last seq in the active segment, skipping corrupt frames, cutting a torn tail."""
        last_seq, good_end = first - 1, 0
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            while good_end < size:
                handle.seek(good_end)
                frame = _read_frame(handle)
                if frame is not None and frame[0] > last_seq:
                    last_seq, good_end = frame[0], handle.tell()
                    continue
                found = _resync(handle, good_end + 1, last_seq)
                if found is None:
                    break
                self.report_corrupt(first, good_end, last_seq + 1, found[1] - 1, path.name)
                good_end = found[0]
        if good_end < size:
            log.warning("spool: cut a torn record at the end of %s", path.name)
            os.truncate(path, good_end)
        return last_seq

    def _above_cursors(self, last_seq: int) -> int:
        """Never reuse a seq a cursor already passed: that plugin would skip the new record.

        With fsync off a power cut can keep a cursor's write and lose the records it passed.
        """
        ahead = max((Cursor.peek(p) for p in self.cursors_dir.glob("*.cur")), default=0)
        if ahead <= last_seq:
            return last_seq
        log.warning(
            "spool: records %d..%d were lost before they reached the disk (a cursor had "
            "passed them); numbering continues at %d",
            last_seq + 1,
            ahead,
            ahead + 1,
        )
        self._missing = (last_seq + 1, ahead)
        return ahead

    def _open_segment(self, first: int) -> int:
        path = self.segments_dir / f"{first:016d}.seg"
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if created and self.fsync:
            fsync_dir(self.segments_dir)
        return fd

    def _roll(self) -> None:
        """Start a new segment; with fsync the old one is synced first, under the lock."""
        self._close_segment()
        self._active_first = self.last_seq + 1
        self._fd = self._open_segment(self._active_first)
        self._active_size = 0

    # ---- writing -----------------------------------------------------------------------

    def append(self, kind: str, meta: Mapping[str, Any], blobs: Mapping[str, bytes]) -> int:
        """Record durably (page cache, or disk with fsync) and return the record's seq.

        Raises SpoolFull if the record cannot be written or (with fsync) synced.
        """
        parts = encode_parts(kind, meta, blobs)
        payload_crc, length = 0, 0
        for part in parts:
            payload_crc, length = crc32(part, payload_crc), length + len(part)
        size = HEADER.size + length
        with self._lock:
            if self.closed:
                raise SpoolFull("spool is closed")
            seq = self.last_seq + 1
            if self._active_size + size > self.segment_bytes and self._active_size:
                self._roll()
            try:
                written = os.writev(self._fd, [_header(seq, length, payload_crc), *parts])
            except OSError as err:
                self._rewind()
                raise SpoolFull(f"cannot write the spool: {err.strerror}") from err
            if written != size:
                self._rewind()
                raise SpoolFull("cannot write the spool: short write (disk full?)")
            self._active_size += written
            if self.bell is None:
                # Readers here take it from memory; with a bell they are in another process.
                self._remember(Record(seq, kind, meta, blobs))
            self.last_seq = seq
        with self._appended:
            self._appended.notify_all()
        if self.fsync:
            self._group_sync(seq)
        bell = self.bell
        if bell is not None:
            # After the sync: a reader elsewhere acts only on what is as durable as promised.
            bell(self.last_seq)
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
            while not self._sync_settled(seq):
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                self._synced.release()
                try:
                    with self._lock:
                        # Under the writers' lock: the segment is the one `seq` went to,
                        # or a later one (older ones were synced by _roll), and a dup
                        # survives a roll closing it meanwhile.
                        target = self.last_seq
                        fd = -1 if self.closed else os.dup(self._fd)
                    error = self._fsync_fd(fd)
                finally:
                    self._synced.acquire()
                    self._syncing = False
                if fd >= 0:
                    self._settle(target, error)
                self._synced.notify_all()

    def _sync_settled(self, seq: int) -> bool:
        """True once `seq` is on disk; SpoolFull if the fsync that covered it failed."""
        for first, last, error in self._sync_failures:
            if first <= seq <= last:
                raise SpoolFull(f"cannot fsync the spool: {error}")
        return self._synced_seq >= seq

    def _settle(self, target: int, error: str | None) -> None:
        """Record an fsync's outcome for every seq up to `target` not yet on disk."""
        if error is None:
            self._synced_seq = max(self._synced_seq, target)
            return
        if target > self._synced_seq:
            log.error(
                "spool: fsync failed for records %d..%d: %s", self._synced_seq + 1, target, error
            )
            # Past a failed fsync the kernel may have dropped those pages: never call
            # them durable, even if a later fsync succeeds.
            self._sync_failures = [
                *self._sync_failures[-15:],
                (self._synced_seq + 1, target, error),
            ]
            self._synced_seq = target

    @staticmethod
    def _fsync_fd(fd: int) -> str | None:
        if fd < 0:
            return None
        try:
            os.fsync(fd)
            return None
        except OSError as err:
            return err.strerror or str(err)
        finally:
            os.close(fd)

    def _sync_locked(self) -> None:
        """fsync the active segment now (the writers' lock is held): at a roll or a close."""
        error = None
        try:
            os.fsync(self._fd)
        except OSError as err:
            error = err.strerror or str(err)
        with self._synced:
            self._settle(self.last_seq, error)
            self._synced.notify_all()

    def _remember(self, record: Record) -> None:
        self._recent[record.seq] = record
        self._recent_bytes += record.size
        while len(self._recent) > RECENT_RECORDS or self._recent_bytes > RECENT_BYTES:
            _, old = self._recent.popitem(last=False)
            self._recent_bytes -= old.size

    # ---- damage ------------------------------------------------------------------------

    def first_report(self, segment: int, offset: int) -> bool:
        """True the first time a corrupt frame at this place is reported: readers in both
        processes come across the same frame, and it is counted and logged once."""
        with self._corrupt_lock:
            if (segment, offset) in self._corrupt_seen:
                return False
            self._corrupt_seen.add((segment, offset))
            return True

    def report_corrupt(self, segment: int, offset: int, first: int, last: int, name: str) -> None:
        """Count and log a corrupt frame once, however many readers come across it."""
        if not self.first_report(segment, offset):
            return
        lost = max(0, last - first + 1)
        with self._corrupt_lock:
            self.corrupt_records += lost
        if lost:
            log.error(
                "spool: corrupt record%s %d..%d in %s at byte %d skipped (%d lost); "
                "every record after it is kept",
                "s" if lost > 1 else "",
                first,
                last,
                name,
                offset,
                lost,
            )
        else:
            log.error(
                "spool: unreadable bytes in %s at byte %d skipped, no record lost", name, offset
            )
        callback = self.on_corrupt
        if lost and callback is not None:
            callback(lost)

    @property
    def missing(self) -> tuple[int, int] | None:
        """The seqs lost before this start (a cursor had passed them), if any."""
        return self._missing

    def missing_through(self, seq: int) -> int | None:
        """The last seq of a known gap holding `seq` (records lost before a restart)."""
        gap = self._missing
        if gap is not None and gap[0] <= seq <= gap[1]:
            return gap[1]
        return None

    # ---- reading -----------------------------------------------------------------------

    def cursor(self, name: str) -> Cursor:
        """The named cursor; a new plugin starts at the end, not at days of old events."""
        cursor = self.cursors.get(name)
        if not isinstance(cursor, Cursor):
            cursor = Cursor(self.cursors_dir / f"{name}.cur", self.last_seq, self.fsync)
            self.cursors[name] = cursor
        return cursor

    def watch(self, name: str) -> WatchedCursor:
        """A cursor another process moves: counted for depth, backlog and cleanup."""
        watched = WatchedCursor(self.cursors_dir / f"{name}.cur")
        self.cursors[name] = watched
        return watched

    def unwatch(self) -> None:
        """Forget the cursors another process moved (it is starting again)."""
        for name in [n for n, c in self.cursors.items() if isinstance(c, WatchedCursor)]:
            del self.cursors[name]

    def reader(self, after_seq: int) -> Reader:
        return Reader(self, after_seq)

    def wake_readers(self) -> None:
        """Readers waiting for a record return now, with none (workers told to stop)."""
        with self._appended:
            self._appended.notify_all()

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until a record with this seq exists (or the spool closes)."""
        with self._appended:
            if self.last_seq < seq and not self.closed:
                self._appended.wait(timeout)
            return self.last_seq >= seq

    def read_shared(self, seq: int, read: Callable[[int], Record | None]) -> Record | None:
        """Record `seq` from memory if this process appended it lately, else `read(seq)`."""
        # One dict lookup is atomic; taking the writers' lock here would slow the writers.
        record = self._recent.get(seq)
        return record if record is not None else read(seq)

    def scan(self, after_seq: int = 0) -> Iterator[Record]:
        """Every record after `after_seq` that is on disk now (for rebuilding indexes)."""
        reader = Reader(self, after_seq)
        try:
            while (record := reader.next(timeout=0)) is not None:
                yield record
        finally:
            reader.close()

    def backlog(self, cursor: Cursor | WatchedCursor) -> int:
        """Records on disk that `cursor` has not finished yet."""
        return self.last_seq - cursor.value

    def depth(self) -> int:
        """Records the slowest registered cursor still has to go through."""
        if not self.cursors:
            return 0
        return max(self.backlog(c) for c in self.cursors.values())

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

    def _close_segment(self) -> None:
        """The writers' lock is held: sync (with fsync) and close the segment written to."""
        if self.fsync:
            self._sync_locked()
        os.close(self._fd)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            with self._appended:
                self._appended.notify_all()
            self._close_segment()
        for cursor in self.cursors.values():
            cursor.close()
        if self._folder_lock is not None:
            self._folder_lock.release()


class Reader:
    """Reads records in seq order from a position, waiting for new ones at the end."""

    def __init__(self, spool: Spool, after_seq: int):
        self.spool = spool
        self.position = after_seq
        self._handle = None
        self._segment_first = 0
        self._segment_name = ""

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
        _skip_to(handle, seq)
        self._handle, self._segment_first, self._segment_name = handle, first, path.name
        return True

    def next(self, timeout: float = 0.5) -> Record | None:
        """The record after the current position, or None if none came within `timeout`."""
        gap_end = self.spool.missing_through(self.position + 1)
        if gap_end is not None:
            self.position = gap_end  # lost before the restart, already reported
        want = self.position + 1
        if not self.spool.wait_for(want, timeout):
            return None
        record = self.spool.read_shared(want, self._read)
        if record is not None:
            self.position = record.seq
        return record

    def _read(self, want: int) -> Record | None:
        for _ in range(3):
            if self._handle is None and not self._open_for(want):
                continue  # a segment went away under us (collected): look again
            frame, bad = self._frame_from_here(want)
            if frame is not None:
                # A seq above `want`: records were dropped by a bound or skipped as corrupt.
                return decode(*frame)
            if not self._next_segment(want, bad):
                return None
        return None

    def _frame_from_here(self, want: int) -> tuple[tuple[int, bytes] | None, int | None]:
        """(next good frame at or after `want` in this segment, offset of bad bytes left)."""
        assert self._handle is not None
        handle = self._handle
        offset = handle.tell()
        frame = _read_frame(handle)
        if frame is not None and frame[0] < want:
            # Records since were served from memory: walk on to `want`.
            handle.seek(offset)
            _skip_to(handle, want)
            offset = handle.tell()
            frame = _read_frame(handle)
        if frame is not None and frame[0] >= want:
            return frame, None
        if offset >= os.fstat(handle.fileno()).st_size:
            handle.seek(offset)
            return None, None
        found = _resync(handle, offset + 1, want - 1)
        if found is None:
            handle.seek(offset)
            return None, offset
        self.spool.report_corrupt(
            self._segment_first, offset, want, found[1] - 1, self._segment_name
        )
        handle.seek(found[0])
        return _read_frame(handle), None

    def _next_segment(self, want: int, bad: int | None) -> bool:
        """Go past the end of this segment; False (position moved on) if nothing is left."""
        assert self._handle is not None
        later = [s for s in self.spool.segments() if s[0] > self._segment_first]
        if later and later[0][0] <= want:
            self.close()
            return True  # `want` is in a segment created after this one was opened
        last = later[0][0] - 1 if later else self.spool.last_seq
        if last >= want:
            # Bad bytes at the end of a segment, or records missing from it: either way
            # those seqs are lost. Reported once, keyed by where the reader stood.
            where = bad if bad is not None else self._handle.tell()
            self.spool.report_corrupt(self._segment_first, where, want, last, self._segment_name)
            self.position = last
        if not later:
            # Nothing readable is left in the active segment: wait for the next record
            # (resync finds it after the bad bytes) instead of spinning here.
            return False
        return self._open_for(later[0][0])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _skip_to(handle, seq: int) -> None:
    """Position a segment handle at the frame for `seq` (or the first after it)."""
    previous = -1
    while True:
        offset = handle.tell()
        header = handle.read(HEADER.size)
        if len(header) < HEADER.size:
            handle.seek(offset)
            return
        magic, length, _, frame_seq = HEADER.unpack(header)
        if magic != MAGIC or length > MAX_RECORD or frame_seq <= previous:
            # A damaged header: let the reader find the next good frame from here.
            handle.seek(offset)
            return
        if frame_seq >= seq:
            handle.seek(offset)
            return
        previous = frame_seq
        handle.seek(length, os.SEEK_CUR)
