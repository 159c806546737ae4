"""The structural JPEG check (`imaging.check`): every JPEG Pillow writes passes, and a photo
cut short or with broken structure is refused, as a decode refuses it, without decoding."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageCms

from sophonfog_bridge import imaging
from sophonfog_bridge import jpeg as structure
from sophonfog_bridge.samples import jpeg

from .snapshots_images import corrupt_jpeg

CAP = 40_000_000
PICTURE = Image.open(io.BytesIO(jpeg(320, 240, seed=7))).convert("RGB")


def saved(image: Image.Image = PICTURE, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def exif() -> Image.Exif:
    tags = Image.Exif()
    tags[0x010F] = "SophonFog"  # Make
    tags[0x0132] = "2024:05:01 08:30:00"  # DateTime
    return tags


VARIANTS = {
    "baseline": lambda: saved(quality=85),
    "progressive": lambda: saved(progressive=True),
    "optimize": lambda: saved(optimize=True),
    "progressive optimize": lambda: saved(progressive=True, optimize=True),
    "restart every block": lambda: saved(restart_marker_blocks=1),
    "restart every row": lambda: saved(restart_marker_rows=1, progressive=True),
    "grayscale": lambda: saved(PICTURE.convert("L")),
    "grayscale progressive": lambda: saved(PICTURE.convert("L"), progressive=True),
    "cmyk": lambda: saved(PICTURE.convert("CMYK")),
    "4:4:4": lambda: saved(subsampling=0),
    "4:2:2": lambda: saved(subsampling=1),
    "4:2:0": lambda: saved(subsampling=2),
    "exif and icc": lambda: saved(
        exif=exif(), icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    ),
    "comment": lambda: saved(comment=b"\xff\xd9 not an end"),
    "1x1": lambda: saved(PICTURE.resize((1, 1))),
    "odd size": lambda: saved(PICTURE.resize((17, 9)), subsampling=2),
    "quality 100": lambda: saved(quality=100),
    "a box's 1080p scene": lambda: jpeg(1920, 1080, seed=5, quality=65),
}


def refused(data: bytes, max_pixels: int = CAP) -> str:
    with pytest.raises(imaging.BadImage) as caught:
        imaging.check(data, max_pixels)
    return str(caught.value)


def decodes(data: bytes) -> bool:
    try:
        imaging.decode(data, CAP).image.close()
    except imaging.BadImage:
        return False
    return True


def segment(data: bytes, marker: int) -> int:
    """Where the first segment with `marker` starts (its 0xFF), in the headers."""
    pos = 2
    while data[pos + 1] != marker:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return pos


def patched(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


@pytest.mark.parametrize("name", VARIANTS)
def test_every_jpeg_pillow_writes_passes_with_its_size(name):
    data = VARIANTS[name]()
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    checked = imaging.check(data, CAP)
    assert (checked.format, checked.suffix) == ("JPEG", ".jpg")
    assert (checked.width, checked.height) == size


@pytest.mark.parametrize("name", ["baseline", "progressive", "restart every block", "4:4:4"])
def test_a_photo_cut_anywhere_is_refused(name):
    data = VARIANTS[name]()
    cuts = sorted({len(data) * n // 20 for n in range(1, 20)} | {len(data) - 1, len(data) - 2})
    for cut in cuts:
        assert not decodes(data[:cut]), f"the decode took a photo cut at {cut}"
        message = refused(data[:cut])
        assert "cut short" in message or "garbage" in message or "SOI" in message, (cut, message)


def test_garbage_after_the_header_is_refused():
    assert "garbage at byte 20" in refused(corrupt_jpeg())
    data = VARIANTS["baseline"]()
    sof = segment(data, 0xC0)
    assert "garbage" in refused(data[:sof] + b"\x00\x11\x22" + data[sof:])


def test_a_missing_eoi_is_refused_and_bytes_after_it_are_not_read():
    data = VARIANTS["progressive"]()
    assert data.endswith(b"\xff\xd9")
    assert "no EOI" in refused(data[:-2])
    assert "no EOI" in refused(data[:-2] + b"\xff")
    # Some cameras append data after EOI; libjpeg stops at EOI, and so does the check.
    imaging.check(data + b"trailer", CAP)


def test_a_segment_length_out_of_bounds_or_not_adding_up_is_refused():
    data = VARIANTS["baseline"]()
    dqt = segment(data, 0xDB)
    assert "runs past the end" in refused(patched(data, dqt + 2, b"\xff\xf0"))
    assert "runs past the end" in refused(patched(data, dqt + 2, b"\x00\x01"))
    # One byte too long: the table ends before its segment does, and the next starts wrong.
    assert "DQT" in refused(patched(data, dqt + 2, b"\x00\x44"))
    sof = segment(data, 0xC0)
    assert "SOF segment" in refused(patched(data, sof + 2, b"\x00\x10"))
    dht = segment(data, 0xC4)
    assert "DHT" in refused(patched(data, dht + 2, b"\x00\x10"))


def test_zero_and_over_cap_dimensions_are_refused():
    data = VARIANTS["baseline"]()
    sof = segment(data, 0xC0)
    assert "0x240" in refused(patched(data, sof + 7, b"\x00\x00"))  # width
    assert "320x0" in refused(patched(data, sof + 5, b"\x00\x00"))  # height (DNL)
    with pytest.raises(imaging.ImageBomb, match=r"30000x30000 = 900 megapixels"):
        imaging.check(patched(data, sof + 5, b"\x75\x30\x75\x30"), CAP)
    with pytest.raises(imaging.ImageBomb, match="320x240"):
        imaging.check(data, 320 * 240 - 1)
    imaging.check(data, 320 * 240)


def test_a_scan_naming_an_undefined_table_or_component_is_refused():
    data = VARIANTS["baseline"]()
    sos = segment(data, 0xDA)
    # The scan's first component: id, then DC/AC table ids. 2 and 3 are defined nowhere.
    assert "DC Huffman table 2, never defined" in refused(patched(data, sos + 6, b"\x20"))
    assert "AC Huffman table 3, never defined" in refused(patched(data, sos + 6, b"\x03"))
    assert "component 9" in refused(patched(data, sos + 5, b"\x09"))
    assert "component 1 twice" in refused(patched(data, sos + 7, b"\x01"))
    dqt = segment(data, 0xDB)
    assert "quantisation table 0 was never defined" in refused(patched(data, dqt + 4, b"\x02"))


def without_dht(data: bytes) -> bytes:
    """`data` with the DHT segments before its first scan taken out."""
    kept, pos = [data[:2]], 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] != 0xC4:
            kept.append(data[pos:end])
        pos = end
    return b"".join(kept) + data[pos:]


def test_an_undefined_huffman_table_is_refused_where_libjpeg_has_no_standard_one():
    # A sequential JPEG without tables (a Motion-JPEG frame) decodes with the standard
    # ones libjpeg-turbo supplies: it passes. A progressive one has none: refused.
    sequential = without_dht(VARIANTS["baseline"]())
    assert b"\xff\xc4" not in sequential[: segment(sequential, 0xDA)]
    assert decodes(sequential)
    imaging.check(sequential, CAP)
    progressive = without_dht(VARIANTS["progressive"]())
    assert not decodes(progressive)
    assert "DC Huffman table 0, never defined" in refused(progressive)


@pytest.mark.parametrize(
    "marker, precision, what",
    [
        (0xC3, 8, "SOF3"),  # lossless
        (0xC9, 8, "SOF9"),  # arithmetic coding
        (0xCA, 8, "SOF10"),  # progressive arithmetic
        (0xC5, 8, "SOF5"),  # hierarchical
        (0xC1, 12, "12-bit"),
        (0xC0, 12, "12-bit"),
    ],
)
def test_an_unsupported_frame_is_refused(marker, precision, what):
    data = VARIANTS["baseline"]()
    sof = segment(data, 0xC0)
    data = patched(data, sof + 1, bytes([marker]))
    assert what in refused(patched(data, sof + 4, bytes([precision])))


def test_a_bad_huffman_table_and_unknown_markers_are_refused():
    data = VARIANTS["baseline"]()
    dht = segment(data, 0xC4)
    # The first DC table's code counts: three codes of length 1 cannot exist.
    assert "more codes than lengths allow" in refused(patched(data, dht + 5, b"\x03"))
    assert "unsupported marker 0xFFF3" in refused(patched(data, dht + 1, b"\xf3"))
    assert "unexpected marker 0xFFD8" in refused(patched(data, dht + 1, b"\xd8"))


def test_the_check_refuses_whatever_the_decode_refuses_in_randomly_damaged_photos():
    # Random bytes written over a good photo: libjpeg only warns about most damage inside
    # the compressed data, so both let many through; what the decode refuses (markers the
    # garbage forms), the check must refuse too.
    data = VARIANTS["baseline"]()
    rng = random.Random(13)
    both = 0
    for _ in range(60):
        length = rng.choice([8, 64, 512, 2048])
        at = rng.randrange(0, len(data) - length)
        damaged = patched(data, at, rng.randbytes(length))
        if not decodes(damaged):
            refused(damaged)
            both += 1
    assert both > 10, "the damage was refused often enough to compare"


def test_fill_bytes_before_a_marker_pass_and_a_scan_without_data_is_refused():
    data = VARIANTS["baseline"]()
    sof = segment(data, 0xC0)
    filled = data[:sof] + b"\xff\xff\xff" + data[sof:]
    assert decodes(filled)
    imaging.check(filled, CAP)
    sos = segment(data, 0xDA)
    scan_data = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    assert "has no data" in refused(data[:scan_data] + b"\xff\xd9")


def test_a_header_checked_before_is_taken_from_memory_only_with_the_same_cap():
    data = VARIANTS["4:2:2"]()
    imaging.check(data, CAP)
    assert any(key[0] == data[: len(key[0])] for key in structure._HEADERS), "the header is known"
    # Known header, same verdicts: the cap still counts, and the rest is still walked.
    with pytest.raises(imaging.ImageBomb):
        imaging.check(data, 320 * 240 - 1)
    assert "no EOI" in refused(data[:-2])
    sos = segment(data, 0xDA)
    assert "component 9" in refused(patched(data, sos + 5, b"\x09"))
    imaging.check(data, CAP)
