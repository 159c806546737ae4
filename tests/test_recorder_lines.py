"""The recorder's file is read while the plugin writes it: a long line arrives in pieces."""

from __future__ import annotations

from .recorder import read_lines


def test_a_line_still_being_written_is_left_for_the_next_look(tmp_path):
    path = tmp_path / "recorded.jsonl"
    path.write_text('{"record": "event", "n": 1}\n{"record": "event", "n": 2, "photo": "AAA')
    assert read_lines(path) == [{"record": "event", "n": 1}]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('A"}\n')
    assert [line["n"] for line in read_lines(path)] == [1, 2]
