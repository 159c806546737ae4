"""Hostile images for the snapshots tests: a corrupt JPEG and a decompression-bomb PNG."""

from __future__ import annotations

import random
import struct
import zlib


def corrupt_jpeg(seed: int = 0) -> bytes:
    """JPEG magic bytes and an APP0 header, then garbage: passes the receiver's sniffing."""
    rng = random.Random(seed)
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + rng.randbytes(
        4000
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 15000) -> bytes:
    """A valid grey PNG of side x side pixels (225 MP by default) in a few hundred KB.

    225 MP is past even Pillow's own hard limit (2 x MAX_IMAGE_PIXELS = 179 MP).
    """
    rows = b"\x00" * (side + 1) * 500  # filter byte 0, then black pixels
    packer = zlib.compressobj(6)
    body = b"".join(packer.compress(rows) for _ in range(side // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )
