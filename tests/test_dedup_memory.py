"""The dedup memory holds up to `dedup_max` ids (100,000 by default) for ten minutes: a
burst fills it, so what one id costs is what a backlog costs."""

from __future__ import annotations

import tracemalloc

from sophonfog_bridge.dedup import RecentIds


def test_an_id_in_the_dedup_memory_costs_little_more_than_its_entry():
    ids = [f"{n:032x}" for n in range(10_000)]
    recent = RecentIds(window_s=1e9, max_entries=100_000)
    tracemalloc.start()
    try:
        for n, event_id in enumerate(ids):
            # Half events with photos, half door decisions (no photos, no device).
            if n % 2:
                recent.admit(event_id, ("spot_pic", "face_pic"), "Front door")
            else:
                recent.admit(event_id)
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert recent.admit(ids[1], ("spot_pic", "face_pic")).verdict.value == "duplicate"
    assert held / len(ids) < 200, f"{held / len(ids):.0f} bytes per id"
