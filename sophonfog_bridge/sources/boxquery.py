"""The event query of V5R7 and V6 boxes, and their photos, for back-fill.

A query record is turned into the push shape the accept path already reads (int ms
timestamp, the camera's id and IP, bare base64 photos), so the event lands on the same id
as its live copy and its history upload.

Time units: the docs say ms in tables and show seconds in examples (and float seconds in
results). Every time the box gives is read by magnitude (>= 1e11 is ms). Filters are sent
in seconds, as the examples do; a box that answers a seconds window with nothing is asked
once more in ms, and the unit that found events is kept for that box. Results outside the
window asked for are dropped, so a box that read the filter in the other unit cannot
make the bridge record a day it did not ask for.
"""

from __future__ import annotations

import base64
import io
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..boxapi import BoxAnswer, BoxApiError, call

log = logging.getLogger(__name__)

MIN_IMAGE_BYTES = 128  # a JPEG or PNG of a face is never smaller; error stubs are


def to_ms(value: Any) -> int | None:
    """A box time (seconds or ms, number or numeric string) as int ms, by magnitude."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number <= 0:
        return None
    return round(number if number >= 1e11 else number * 1000)


@dataclass(frozen=True)
class Found:
    payload: dict[str, Any]
    images: dict[str, str | None]


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    total: int


class QueryClient:
    """One box's event query: `page(gte_ms, lte_ms, index)` and `payload(record)`."""

    firmware = ""

    def __init__(self, box: dict[str, Any], page_size: int = 50, timeout: float = 10.0):
        self.base = f"http://{box['host']}:{box['api_port']}"
        self.page_size = page_size
        self.timeout = timeout
        self.devices: list[str] = list(box.get("devices") or [])
        self.filter_unit_ms = False  # seconds first, as the docs' examples send
        self.pace: Callable[[str], None] = lambda kind: None  # before every request

    def page(self, gte_ms: int, lte_ms: int, index: int) -> Page:
        """Page `index` (0-based) of the events in [gte_ms, lte_ms], in the box's order."""
        found = self._page(gte_ms, lte_ms, index)
        if index == 0 and found.total == 0 and not self.filter_unit_ms:
            # The table says ms: ask once in ms; keep ms if that is what this box reads.
            self.filter_unit_ms = True
            retry = self._page(gte_ms, lte_ms, index)
            if retry.total:
                log.info("box %s reads query times in ms", self.base)
                return _within(retry, gte_ms, lte_ms)
            self.filter_unit_ms = False
        return _within(found, gte_ms, lte_ms)

    def _bound(self, ms: int, upper: bool) -> int | float:
        if self.filter_unit_ms:
            return ms
        return -(-ms // 1000) if upper else ms // 1000  # whole seconds, widened

    def _page(self, gte_ms: int, lte_ms: int, index: int) -> Page:
        raise NotImplementedError

    def payload(self, record: dict[str, Any]) -> Found | None:
        """The record in push shape without photos, and where its photos are; None if the
        record has no usable time."""
        raise NotImplementedError

    def with_images(self, found: Found) -> dict[str, Any]:
        """The payload with every photo the box could give."""
        out = dict(found.payload)
        for name, path in found.images.items():
            data = self.image(path) if path else None
            if data:
                out[name] = data
        return out

    def image(self, path: str) -> str | None:
        """A photo as bare base64, or None when the box gave no usable image."""
        self.pace("image")
        request = urllib.request.Request(self.base + path, headers={"Accept": "image/*"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read(8 << 20)
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.info("box %s: no image at %s: %s", self.base, path.split("?")[0], err)
            return None
        if not usable_image(data):
            return None
        return base64.b64encode(data).decode("ascii")


def usable_image(data: bytes) -> bool:
    """A JPEG or PNG that is not tiny and not one flat colour (V6 answers a blank image
    instead of an error)."""
    if len(data) < MIN_IMAGE_BYTES or not data.startswith((b"\xff\xd8\xff", b"\x89PNG")):
        return False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (64, 64))
            extrema = image.convert("L").getextrema()
    except Exception:  # a broken image is no photo; Pillow raises many kinds
        return False
    low, high = extrema  # type: ignore[misc]
    return high - low > 8


def _page_of(answer: BoxAnswer, key: str, what: str) -> Page:
    """The records under `key` of a query's answer, and the total the box says it holds."""
    records = answer.body.get(key) if isinstance(answer.body, dict) else None
    if not answer.ok or not isinstance(records, list):
        raise BoxApiError(f"{what}: {answer.error() or answer.text()[:200]}")
    total = (answer.body.get("pagination") or {}).get("total_count", len(records))
    return Page([e for e in records if isinstance(e, dict)], int(total or 0))


def _within(page: Page, gte_ms: int, lte_ms: int) -> Page:
    kept = [r for r in page.records if gte_ms <= (to_ms(r.get("timestamp")) or 0) <= lte_ms]
    return Page(kept, page.total)


class V6Query(QueryClient):
    firmware = "v6"
    path = "/sophon/v2/face"

    def _page(self, gte_ms: int, lte_ms: int, index: int) -> Page:
        self.pace("page")
        filters: dict[str, Any] = {
            "datetime_gte": self._bound(gte_ms, False),
            "datetime_lte": self._bound(lte_ms, True),
        }
        if self.devices:
            filters["media_device_ids"] = self.devices
        body = {"filters": filters, "page_limit": self.page_size, "page_index": index}
        answer = call("POST", self.base + self.path + "/getevents", body, self.timeout)
        return _page_of(answer, "events", "getevents")

    def payload(self, record: dict[str, Any]) -> Found | None:
        millis = to_ms(record.get("timestamp"))
        device = record.get("media_device_info") or {}
        if millis is None or not isinstance(device, dict):
            return None
        stamp = urllib.parse.quote(str(record.get("timestamp")))
        out: dict[str, Any] = {
            "timestamp": millis,
            "identity_id": record.get("identity_id") or "stranger",
            "identity_name": record.get("identity_name") or "",
            "user_type": record.get("user_type") or "stranger",
            "score": record.get("score", 0.0),
            "media_device_id": device.get("media_device_id"),
            "media_device_ip": device.get("media_device_ip"),
            "event_id": record.get("event_id"),
        }
        images = {
            "spot_pic": _spot(self.path, record.get("spot_image_id"), stamp),
            "recognize_face": _spot(self.path, record.get("recognize_face_image_id"), stamp),
            "reg_pic": _gallery(self.path + "/getregisterimage/", record.get("register_image_id")),
        }
        return Found(out, images)


class V5Query(QueryClient):
    firmware = "v5"

    def _page(self, gte_ms: int, lte_ms: int, index: int) -> Page:
        self.pace("page")
        params: list[tuple[str, Any]] = [
            ("datetime_gte", self._bound(gte_ms, False)),
            ("datetime_lte", self._bound(lte_ms, True)),
            ("per_page", self.page_size),
            ("page", index),
        ]
        params += [("streams", d) for d in self.devices]
        url = f"{self.base}/SophonFace/api/events?{urllib.parse.urlencode(params)}"
        return _page_of(call("GET", url, None, self.timeout), "data", "events")

    def payload(self, record: dict[str, Any]) -> Found | None:
        millis = to_ms(record.get("timestamp"))
        common = record.get("common") or {}
        if millis is None or not isinstance(common, dict):
            return None
        ep = common.get("ep_info") if isinstance(common.get("ep_info"), dict) else {}
        info = common.get("identity_info") if isinstance(common.get("identity_info"), dict) else {}
        stamp = urllib.parse.quote(str(record.get("timestamp")))
        out: dict[str, Any] = {
            "timestamp": millis,
            "identity_id": common.get("identity_id") or "stranger",
            "identity_name": common.get("identity_name") or "",
            "group_name": common.get("group_name") or "",
            "person_type": common.get("person_type") or 4,
            "score": common.get("score", 0.0),
            "device_id": ep.get("device_id"),
            "ext_data": {"device_ip": ep.get("ep_ip")},
            "identity_info": info,
        }
        events = "/SophonFace/api/event_images/"
        images = {
            "spot_pic": _image_path(events, common.get("spot_pic_id"), f"?datetime={stamp}"),
            "recognize_face": _image_path(
                events, common.get("recognize_face_pic_id"), f"?datetime={stamp}"
            ),
            "reg_pic": _gallery("/SophonFace/api/images/", info.get("image_id")),
        }
        return Found(out, images)


def _image_path(prefix: str, image_id: Any, query: str = "") -> str | None:
    if not image_id or not isinstance(image_id, str):
        return None
    return prefix + urllib.parse.quote(image_id, safe="") + query


def _spot(path: str, image_id: Any, stamp: str) -> str | None:
    return _image_path(path + "/getspotimage/", image_id, f"?timestamp={stamp}")


def _gallery(prefix: str, image_id: Any) -> str | None:
    return _image_path(prefix, image_id)


def query_client(box: dict[str, Any], firmware: str, page_size: int = 50) -> QueryClient:
    """The query client of this box's generation (v5 or v6)."""
    if firmware == "v6":
        return V6Query(box, page_size)
    if firmware == "v5":
        return V5Query(box, page_size)
    raise BoxApiError(f"firmware {firmware} has no event query (back-fill needs V5R7 or V6)")


def pages(client: QueryClient, gte_ms: int, lte_ms: int) -> Iterator[tuple[int, int, Page]]:
    """(index, number of pages, page) for every page of the window, first to last."""
    index = 0
    while True:
        found = client.page(gte_ms, lte_ms, index)
        count = max(1, -(-found.total // client.page_size))
        yield index, count, found
        index += 1
        if index >= count:
            return
