"""`snapshots.max_total_mb` holds while photos arrive, not only after a cleanup pass: a
burst posted into a small budget, the folder measured on disk the whole time."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sophonfog_bridge.plugins.snapshots.retention import Cleaner, Policy

from sophonfog_bridge.samples import event_payload, jpeg_of_size

from .conftest import wait_for

BUDGET_MB = 0.4
EVENTS = 40


def disk_bytes(root: Path) -> int:
    """What the photos take on disk: every file once, hard links (`latest*`) once.

    A file counts if it is there when looked at, so the `latest` links are looked at
    first: what they hold is the newest photo, which the photos looked at after may
    only have gained company. (The other way round, the folder of a burst's photos could
    be read before the cleanup made room, and the links after the next photo was
    written: two moments summed, more than ever was on disk.)
    """
    names = [os.path.join(folder, name) for folder, _d, files in os.walk(root) for name in files]
    names.sort(key=lambda path: not os.path.basename(path).startswith("latest"))
    seen: dict[tuple[int, int], int] = {}
    for path in names:
        try:
            info = os.lstat(path)
        except FileNotFoundError:  # removed while we looked
            continue
        seen[(info.st_dev, info.st_ino)] = info.st_size
    return sum(seen.values())


class Sampler(threading.Thread):
    """Measures the folder as often as it can until stopped; keeps the largest size."""

    def __init__(self, root: Path):
        super().__init__(daemon=True)
        self.root = root
        self.largest = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.largest = max(self.largest, disk_bytes(self.root))
            self.samples += 1


def test_a_burst_never_takes_more_than_the_budget_plus_one_event(bridge_factory, tmp_path):
    root = tmp_path / "photos"
    snapshots = {
        "path": str(root),
        "max_total_mb": BUDGET_MB,
        "save_face": True,
        "thumbnail_px": 64,
        # No pass during the test: only the running total can hold the bound.
        "cleanup_interval_s": 3600,
    }
    plugins = {"mqtt": {"enabled": False}, "syslog": {"enabled": False}, "snapshots": snapshots}
    bridge = bridge_factory({"plugins": plugins})
    wait_for(lambda: bridge.health()["plugins"]["snapshots"]["cleanup"]["runs"] >= 1)
    scene = jpeg_of_size(60_000, seed=5)
    one = event_payload(identity_name="Burst 0", identity_id="0", scene=scene)
    assert bridge.post(payload=one).status_code == 200
    wait_for(lambda: bridge.health()["plugins"]["snapshots"]["events"] == 1, what="one event")
    event_bytes = disk_bytes(root)
    assert event_bytes > 60_000, "the event's photos were saved"

    sampler = Sampler(root)
    sampler.start()
    for n in range(1, EVENTS):
        payload = event_payload(identity_name=f"Burst {n}", identity_id=str(n), scene=scene)
        assert bridge.post(payload=payload).status_code == 200
    wait_for(bridge.drained, 30, what="the snapshots plugin to catch up")
    sampler.halt.set()
    sampler.join(10)

    budget = int(BUDGET_MB * 1_000_000)
    assert EVENTS * event_bytes > 3 * budget, "the burst is well over the budget"
    assert sampler.samples > EVENTS, "the folder was measured during the burst"
    assert sampler.largest <= budget + event_bytes, (sampler.largest, budget, event_bytes)
    assert disk_bytes(root) <= budget
    health = bridge.health()["plugins"]["snapshots"]
    assert health["events"] == EVENTS and health["cleanup"]["removed"] > 0
    assert 0 < health["cleanup"]["total_mb"] <= BUDGET_MB
    # The oldest went: the newest event's photo is still there.
    assert [p for p in root.rglob(f"*_Burst_{EVENTS - 1}_*.jpg") if "latest" not in p.name]
    assert not list(root.rglob("*_Burst_0_*.jpg"))


def test_a_photo_written_twice_counts_once(tmp_path):
    day = tmp_path / "2024-05-01" / "cam"
    day.mkdir(parents=True)
    cleaner = Cleaner(tmp_path, Policy(retention_days=0, max_total_bytes=25_000), 3600)
    photos = []
    for n in range(3):
        photo = day / f"00000{n}_employee_a_1111111{n}.jpg"
        photo.write_bytes(b"\xff" * 10_000)
        os.utime(photo, (1_000 + n, 1_000 + n))
        photos.append(photo)
    cleaner.written(photos[:2])
    cleaner.written(photos[:2])  # the same event delivered again after a crash
    assert cleaner.ledger.total == 20_000 and all(p.exists() for p in photos)
    cleaner.written(photos[2:])
    assert not photos[0].exists(), "the oldest goes once the bound is passed"
    assert photos[1].exists() and photos[2].exists()
    assert cleaner.ledger.total == 20_000 and cleaner.stats.removed == 1


def _same_second_event(day: Path, n: int, moment: float = 1_000) -> list[Path]:
    """An event's photo and face crop, dated (like every event here) to the same second."""
    files = []
    for suffix in (".jpg", "_face.jpg"):
        photo = day / f"120000_employee_Burst_{n}_{n:08x}{suffix}"
        photo.write_bytes(b"\xff" * 10_000)
        os.utime(photo, (moment, moment))
        files.append(photo)
    return files


def test_within_one_second_the_first_written_goes_first(tmp_path):
    """A burst at a gate stamps many events with the same second: the oldest is the one
    written first, not the one whose name sorts first ("Burst_10" before "Burst_9")."""
    day = tmp_path / "2024-05-01" / "cam"
    day.mkdir(parents=True)
    cleaner = Cleaner(tmp_path, Policy(retention_days=0, max_total_bytes=40_000), 3600)
    events = [_same_second_event(day, n) for n in (8, 9, 10)]
    for files in events:
        cleaner.written(files)
    assert [f.exists() for files in events for f in files] == [False] * 2 + [True] * 4
    # A pass, which reads the folder instead, keeps the same two.
    cleaner.ledger.reset([])
    cleaner.run_once()
    assert [f.exists() for files in events for f in files] == [False] * 2 + [True] * 4
    events.append(_same_second_event(day, 11))
    cleaner.written(events[-1])
    assert [f.exists() for files in events for f in files] == [False] * 4 + [True] * 4


def test_without_a_size_bound_only_the_total_is_kept(tmp_path):
    day = tmp_path / "2024-05-01" / "cam"
    day.mkdir(parents=True)
    cleaner = Cleaner(tmp_path, Policy(retention_days=30, max_total_bytes=0), 3600)
    for n in range(50):
        cleaner.written(_same_second_event(day, n, time.time()))
    assert len(cleaner.ledger) == 0, "no entry per photo: nothing is removed between passes"
    assert cleaner.stats.total_bytes == 50 * 2 * 10_000
    cleaner.run_once()
    assert len(cleaner.ledger) == 0 and cleaner.stats.total_bytes == 50 * 2 * 10_000
    assert all(f.exists() for n in range(50) for f in day.glob(f"*_Burst_{n}_*"))
