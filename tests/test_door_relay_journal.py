"""The pulse journal over a long run: it stays the size of its keeping time, on disk and in
memory, and a restart still finds every pulse it must know of."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sophonfog_bridge.plugins.door_relay.journal import Journal


def pulse(journal: Journal, event_id: str) -> None:
    assert journal.claim(event_id, "front_gate")
    journal.intent(event_id, "front_gate", source="event")
    journal.outcome(event_id, "front_gate", result="open")
    journal.announced(event_id, "front_gate")


def lines_on_disk(folder: Path) -> list[dict]:
    files = [*sorted(folder.glob("journal-until-*.jsonl")), folder / "journal.jsonl"]
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_a_long_run_keeps_the_journal_and_its_claims_to_the_keeping_time(tmp_path):
    path = tmp_path / "journal.jsonl"
    keep_s = 2.0  # closed off every second
    journal = Journal(path, keep_s=keep_s, fsync=False)
    pulsed: list[tuple[str, float]] = []
    began = time.time()
    while time.time() - began < 3 * keep_s:
        event_id = f"e{len(pulsed)}"
        pulse(journal, event_id)
        pulsed.append((event_id, time.time()))
        time.sleep(0.02)  # pacing the pulses, not waiting for an outcome
    now = time.time()
    old = [e for e, at in pulsed if at < now - keep_s - 3.0]  # the first second's
    recent = [e for e, at in pulsed if at > now - keep_s + 0.5]
    assert old and recent
    # In memory: old claims forgotten (a duplicate that old is stale anyway), recent ones kept.
    assert not any(journal.seen(e, "front_gate") for e in old)
    assert all(journal.seen(e, "front_gate") for e in recent)
    journal.close()
    # On disk: closed-off files beside the journal; the oldest ones are gone, nothing recent
    # is missing, and no line is there twice.
    assert list(tmp_path.glob("journal-until-*.jsonl"))
    lines = lines_on_disk(tmp_path)
    on_disk = {line["event_id"] for line in lines if line["phase"] == "announced"}
    assert not on_disk & set(old)
    assert set(recent) <= on_disk
    assert len(lines) == len({(line["event_id"], line["phase"]) for line in lines})
    assert min(line["t"] for line in lines) > now - keep_s - 2.5
    # A restart reads the closed-off files too: recent pulses are still claimed.
    reopened = Journal(path, keep_s=keep_s, fsync=False)
    assert all(reopened.seen(e, "front_gate") for e in recent)
    assert not reopened.claim(recent[0], "front_gate")
    reopened.close()


def test_a_pulse_left_unfinished_in_a_closed_off_file_is_reported_at_restart(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, keep_s=30.0, fsync=False)  # closed off every second
    journal.claim("interrupted", "front_gate")
    journal.intent("interrupted", "front_gate", source="event")
    time.sleep(1.1)  # past the moment the file is closed off
    pulse(journal, "later")  # its outcome closes the file off
    journal.close()
    closed = list(tmp_path.glob("journal-until-*.jsonl"))
    assert len(closed) == 1
    assert '"interrupted"' in closed[0].read_text()
    assert '"interrupted"' not in path.read_text()

    reopened = Journal(path, keep_s=30.0, fsync=False)
    assert [u["event_id"] for u in reopened.unfinished] == ["interrupted"]
    assert reopened.seen("interrupted", "front_gate") and reopened.seen("later", "front_gate")
    reopened.close()


def test_a_closed_off_file_goes_by_its_last_write_not_by_its_name(tmp_path):
    """A file renamed but written on (its successor could not be begun) keeps its lines."""
    now = time.time()
    recent = {"t": now, "phase": "intent", "event_id": "recent", "door": "front_gate"}
    named_old = tmp_path / "journal-until-20000101T000000Z.jsonl"
    named_old.write_text(json.dumps(recent) + "\n")
    stale = {"t": now - 7200, "phase": "intent", "event_id": "stale", "door": "front_gate"}
    written_old = tmp_path / "journal-until-20991231T000000Z.jsonl"
    written_old.write_text(json.dumps(stale) + "\n")
    os.utime(written_old, (now - 7200, now - 7200))

    journal = Journal(tmp_path / "journal.jsonl", keep_s=3600, fsync=False)
    assert journal.seen("recent", "front_gate") and named_old.exists()
    assert not journal.seen("stale", "front_gate") and not written_old.exists()
    assert [u["event_id"] for u in journal.unfinished] == ["recent"]
    journal.close()
