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
    """A valid 1-bit PNG of side x side pixels, a few tens of KB on the wire.

    Decoded it is side^2 pixels: 225 MP by default, past even Pillow's own hard limit
    (2 x MAX_IMAGE_PIXELS = 179 MP). The hostile-input tests use 30000 (900 MP).
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0, then black pixels
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )
