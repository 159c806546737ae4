"""`files.atomic_write` and its temporary names, offered to plugins too."""

from __future__ import annotations

import os

from sophonfog_bridge.files import TMP_PREFIX, atomic_write, temp_name


def test_temporary_names_are_hidden_fresh_and_keep_the_suffix(tmp_path):
    target = tmp_path / "photo.jpg"
    names = {temp_name(target) for _ in range(1000)}
    assert len(names) == 1000
    for name in names:
        folder, base = os.path.split(name)
        assert folder == str(tmp_path) and base.startswith(TMP_PREFIX) and base.endswith(".jpg")


def test_a_forked_child_never_makes_its_parents_next_name(tmp_path):
    target = tmp_path / "photo.jpg"
    temp_name(target)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next name, then out without running the parent's cleanup
        os.write(write, temp_name(target).encode())
        os._exit(0)
    os.close(write)
    childs = os.read(read, 4096).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert childs and childs != temp_name(target)
    assert (
        os.path.basename(childs)[len(TMP_PREFIX) :][:10]
        != os.path.basename(temp_name(target))[len(TMP_PREFIX) :][:10]
    ), "the child draws a token of its own"


def test_atomic_write_leaves_the_new_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "note.txt"
    atomic_write(target, "one", fsync=False)
    atomic_write(target, b"two", fsync=False, mtime=1_000_000)
    assert target.read_bytes() == b"two" and os.stat(target).st_mtime == 1_000_000
    assert os.listdir(target.parent) == ["note.txt"]
