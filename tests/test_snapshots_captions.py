"""The index of captions (`captions.jsonl`): appending, finding, dating, cleaning up."""

from __future__ import annotations

import json
import os
import time

from sophonfog_bridge.plugins.snapshots import captions, retention

from sophonfog_bridge import FaceRect


def add(folder, copy: str, text: str, mtime: float) -> str:
    entry = captions.line(copy, copy.replace("_annotated", ""), (text, "2"), FaceRect(1, 2, 3, 4))
    return captions.append(str(folder), entry, mtime, durable=False)


def test_the_last_line_for_a_copy_is_its_caption(tmp_path):
    add(tmp_path, "a_annotated.jpg", "first", 100.0)
    add(tmp_path, "b_annotated.jpg", "other", 100.0)
    add(tmp_path, "a_annotated.jpg", "completed", 100.0)  # a completion writes anew
    found = captions.find(str(tmp_path), "a_annotated.jpg")
    assert found == {
        "copy": "a_annotated.jpg",
        "photo": "a.jpg",
        "text": ["completed", "2"],
        "rect": [1, 2, 3, 4],
    }
    assert captions.find(str(tmp_path), "b_annotated.jpg")["text"][0] == "other"
    assert captions.find(str(tmp_path), "c_annotated.jpg") is None
    # A name that is the start of another's finds only its own.
    assert captions.find(str(tmp_path), "_annotated.jpg") is None


def test_a_line_torn_by_a_crash_hides_no_other(tmp_path):
    add(tmp_path, "a_annotated.jpg", "whole", 100.0)
    index = tmp_path / captions.INDEX
    whole = index.read_bytes()
    with open(index, "ab") as handle:
        handle.write(whole[: len(whole) // 2])  # a's second line, cut off mid-way
    add(tmp_path, "b_annotated.jpg", "after", 100.0)
    assert captions.find(str(tmp_path), "a_annotated.jpg")["text"][0] == "whole"
    assert captions.find(str(tmp_path), "b_annotated.jpg")["text"][0] == "after"


def test_names_in_any_script_are_found(tmp_path):
    add(tmp_path, "081502_employee_小明_1_annotated.jpg", "小明 · employee", 100.0)
    line = (tmp_path / captions.INDEX).read_text(encoding="utf-8")
    assert "小明" in line and json.loads(line)["copy"] == "081502_employee_小明_1_annotated.jpg"
    found = captions.find(str(tmp_path), "081502_employee_小明_1_annotated.jpg")
    assert found["text"][0] == "小明 · employee"


def test_the_index_is_dated_like_its_newest_photo(tmp_path):
    path = add(tmp_path, "a_annotated.jpg", "a", 1000.0)
    assert os.stat(path).st_mtime == 1000.0
    add(tmp_path, "b_annotated.jpg", "b", 2000.0)
    assert os.stat(path).st_mtime == 2000.0
    # A late history event's caption never makes it look older than a photo it describes.
    add(tmp_path, "c_annotated.jpg", "c", 1500.0)
    assert os.stat(path).st_mtime == 2000.0


def test_the_size_bound_removes_the_index_after_every_photo_it_describes(tmp_path):
    old, new = tmp_path / "2020-01-01" / "cam", tmp_path / "2020-01-02" / "cam"
    cleaner = retention.Cleaner(tmp_path, retention.Policy(0, 10_000), 3600)
    base = time.time() - 86400
    for folder, start in ((old, base), (new, base + 100)):
        folder.mkdir(parents=True)
        for n in range(3):
            photo = folder / f"{n}.jpg"
            photo.write_bytes(b"x" * 2_000)
            os.utime(photo, (start + n, start + n))
            index = add(folder, f"{n}_annotated.jpg", "t", start + n)
            cleaner.written([str(photo)], [index])
    # 12 KB and more: the oldest photos go first, the old folder's index only after them.
    assert not (old / "0.jpg").exists() and (new / captions.INDEX).exists()
    photo = new / "3.jpg"
    photo.write_bytes(b"x" * 4_000)
    os.utime(photo, (base + 200, base + 200))
    cleaner.written([str(photo)], [add(new, "3_annotated.jpg", "t", base + 200)])
    assert not old.exists()  # its photos, then its index, then the folder
    assert cleaner.ledger.total <= 10_000


def test_without_a_size_bound_an_index_counts_what_it_grew_by(tmp_path):
    folder = tmp_path / "2020-01-01" / "cam"
    folder.mkdir(parents=True)
    cleaner = retention.Cleaner(tmp_path, retention.Policy(30, 0), 3600)
    now = time.time()
    for n in range(5):
        cleaner.written([], [add(folder, f"{n}_annotated.jpg", "t", now)])
    assert cleaner.ledger.total == (folder / captions.INDEX).stat().st_size
    cleaner.run_once()
    cleaner.written([], [add(folder, "5_annotated.jpg", "t", now)])
    assert cleaner.ledger.total == (folder / captions.INDEX).stat().st_size


def test_the_age_cleanup_removes_an_index_with_its_folders_photos(tmp_path):
    folder = tmp_path / "2020-01-01" / "cam"
    folder.mkdir(parents=True)
    old = time.time() - 40 * 86400
    (folder / "x.jpg").write_bytes(b"data")
    os.utime(folder / "x.jpg", (old, old))
    add(folder, "x_annotated.jpg", "t", old)
    removed, _, _ = retention.clean(tmp_path, retention.Policy(30, 0))
    assert removed == 2 and not (tmp_path / "2020-01-01").exists()
