"""The `latest` links move once the worker has caught up, not for every photo: the
snapshots plugin itself, on real files, fed as its worker feeds it. (Through a real bridge
the links are checked in test_snapshots.py.)"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sophonfog_bridge.plugins import snapshots
from sophonfog_bridge.plugins.snapshots import SnapshotsPlugin
from sophonfog_bridge.plugins.snapshots.config import CONFIG_SCHEMA

from sophonfog_bridge import samples
from sophonfog_bridge.wire import parse_event

DEVICE = "192.168.1.101"


class Settings:
    """The one thing the plugin reads from the bridge at startup."""

    def __init__(self) -> None:
        self.config = {"spool": {"fsync": False}}


@pytest.fixture
def plugin(tmp_path):
    plugin = SnapshotsPlugin()
    plugin.startup(Settings(), CONFIG_SCHEMA({"path": str(tmp_path)}))
    yield plugin
    plugin.shutdown()


def event(person_type: str = "employee"):
    return parse_event(
        samples.event_payload(
            "v2r2",
            scene=samples.jpeg(64, 48),
            identity_id=uuid.uuid4().hex[:8],
            person_type=person_type,
        )
    )


def photo_of(root: Path, evt) -> Path:
    [found] = [p for p in root.rglob(f"*_{evt.short_id}.jpg") if "latest" not in p.name]
    return found


def latest(root: Path, name: str = "latest") -> Path:
    return root / DEVICE / f"{name}.jpg"


def test_the_links_move_to_the_newest_photo_once_caught_up(plugin, tmp_path):
    first, second = event(), event()
    plugin.handle_event(first)
    plugin.handle_event(second)
    assert not latest(tmp_path).exists(), "moved for a photo before the batch was done"
    plugin.handle_caught_up()
    newest = photo_of(tmp_path, second)
    assert os.path.samefile(latest(tmp_path), newest)
    assert os.path.samefile(latest(tmp_path, "latest_employee"), newest)


def test_each_person_type_keeps_its_own_newest(plugin, tmp_path):
    employee, stranger, other_employee = event(), event("stranger"), event()
    for each in (employee, stranger, other_employee):
        plugin.handle_event(each)
    plugin.handle_caught_up()
    assert os.path.samefile(latest(tmp_path), photo_of(tmp_path, other_employee))
    assert os.path.samefile(latest(tmp_path, "latest_stranger"), photo_of(tmp_path, stranger))


def test_a_long_catch_up_still_moves_them(plugin, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "LINKS_AT_LEAST_EVERY_S", 0.0)
    first, second = event(), event()
    plugin.handle_event(first)  # due for as long as the bound: moved without waiting
    assert os.path.samefile(latest(tmp_path), photo_of(tmp_path, first))
    plugin.handle_event(second)
    assert os.path.samefile(latest(tmp_path), photo_of(tmp_path, second))


def test_links_due_at_shutdown_are_moved(tmp_path):
    plugin = SnapshotsPlugin()
    plugin.startup(Settings(), CONFIG_SCHEMA({"path": str(tmp_path)}))
    last = event()
    plugin.handle_event(last)
    plugin.shutdown()
    assert os.path.samefile(latest(tmp_path), photo_of(tmp_path, last))


def test_a_photo_gone_before_its_link_moves_is_logged_and_nothing_breaks(plugin, tmp_path, caplog):
    gone = event()
    plugin.handle_event(gone)
    photo_of(tmp_path, gone).unlink()
    plugin.handle_caught_up()
    assert "cannot point" in caplog.text
    assert not latest(tmp_path).exists()
    kept = event()
    plugin.handle_event(kept)
    plugin.handle_caught_up()
    assert os.path.samefile(latest(tmp_path), photo_of(tmp_path, kept))
