"""JSON on the hot path: orjson where it can, the standard library for what only it takes."""

from __future__ import annotations

import json
import math

import pytest

from sophonfog_bridge import jsoncodec
from sophonfog_bridge.spool import decode, encode


@pytest.mark.parametrize(
    "text",
    [
        b'{"score": NaN, "t": Infinity}',  # what Python's json.dumps writes for a box
        b'{"n": 1' + b"0" * 400 + b"}",  # beyond any float: orjson refuses it
    ],
)
def test_what_orjson_refuses_is_read_as_the_standard_library_reads_it(text):
    expected = json.loads(text)
    for given in (text, bytearray(text), memoryview(text), text.decode()):
        got = jsoncodec.loads(given)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == value or (math.isnan(got[key]) and math.isnan(value))


def test_an_integer_beyond_64_bits_that_a_float_holds_reads_as_that_float():
    assert jsoncodec.loads(b'{"big": 1' + b"0" * 28 + b"}") == {"big": 1e28}


def test_what_orjson_cannot_write_is_written_by_the_standard_library():
    value = {"big": 10**40, 3: "int key"}
    assert json.loads(jsoncodec.dumps(value)) == {"big": 10**40, "3": "int key"}


def test_a_spooled_record_with_such_values_reads_back():
    meta = {"raw": {"big": 10**400, "ok": "小明"}}
    record = decode(7, encode("event", meta, {"spot_pic": b"\xff\xd8"}))
    assert record.meta == meta and record.blobs == {"spot_pic": b"\xff\xd8"}
