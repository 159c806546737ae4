"""Bundled plugin `snapshots`: the photos of each event on disk, for people to look at.

Layout under `path` (local time of the bridge):
`YYYY-MM-DD/<device>/<HHMMSS>_<person_type>_<name>_<id8>.jpg` is the photo exactly as the
box sent it, with `_annotated`, `_thumb`, `_registered` and `_face` variants beside it, and
`<device>/latest.jpg` plus `<device>/latest_<person_type>.jpg` for the newest. A later
copy that completes an event (the scene of a V6 history upload) is saved beside the first
copy's files, under the same names a complete first copy would have had. See
docs/snapshots.md.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import voluptuous as vol

from sophonfog_bridge import Event, RetryLater, hookimpl

from . import captions, images
from .captions import ANNOTATED
from .config import CONFIG_SCHEMA
from .fonts import FontSource
from .later import Maker
from .names import device_folder, display_name, event_stem, inside_text, safe_component
from .retention import Cleaner, Policy
from .routes import photo_view
from .store import atomic_link, atomic_write, shown_moment

log = logging.getLogger(__name__)

# What `_photo` gives: pixels when a copy is made with the event, else only checked.
Photo = images.Decoded | images.Checked

# Conditions an administrator fixes (free space, permissions, a file where the folder
# should be): the photos wait in the spool and are written once the
# folder is usable again, instead of being lost.
WAIT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
}
# Free space comes back when the cleanup has run; the others when someone fixes them.
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# While a backlog is worked through, the `latest` links still move this often.
LINKS_AT_LEAST_EVERY_S = 1.0
# A decode side meaning: no pixels, the photo is only checked (imaging.check).
CHECK_ONLY = 0


class SnapshotsPlugin:
    # Photos on disk are looked at later: records may wait 0.1 s for others, one wake-up
    # of the worker for several (see the dispatcher's `gather_s`).
    gather_s = 0.1
    # It calls no other plugin's hooks and offers none: after a burst it catches up on a
    # core of its own instead of taking turns with mqtt and the door for one interpreter.
    own_process = True

    def __init__(self) -> None:
        self.root: Path | None = None
        self.config: dict[str, Any] = {}
        self.fonts: FontSource | None = None
        self.cleaner: Cleaner | None = None
        self.durable = False
        self.counts = {"events": 0, "files": 0, "skipped_images": 0, "filtered": 0}
        self.last_saved: str | None = None
        self.last_skipped: str | None = None
        self.maker: Maker | None = None
        # Each `latest` link's moment, looked at on disk once: only this worker moves them.
        self._latest: dict[str, float] = {}
        # Links not moved yet, to the newest photo each (see `_update_latest`).
        self._links_due: dict[str, tuple[str, float]] = {}
        self._links_due_since: float | None = None

    # ---- hooks -------------------------------------------------------------------------

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, bridge, config: dict[str, Any]) -> None:
        self.config = config
        self.durable = bool(bridge.config["spool"]["fsync"])
        self.root = Path(config["path"])
        self.max_pixels = int(config["max_megapixels"] * 1_000_000)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            # Not fatal: deliveries wait (RetryLater) until the folder can be written.
            log.warning("snapshots: cannot create %s: %s", self.root, err.strerror)
        self.fonts = FontSource(config["font"]) if config["annotate"] else None
        self.annotate_later = bool(config["annotate"]) and config["annotate_on"] == "request"
        self.decode_side = _decode_side(config, self.annotate_later)
        policy = Policy(config["retention_days"], int(config["max_total_mb"] * 1_000_000))
        if policy.retention_days or policy.max_total_bytes:
            self.cleaner = Cleaner(self.root, policy, config["cleanup_interval_s"])
            self.cleaner.start()
        if self.fonts is not None:
            side = config["annotate_max_px"] or None
            self.maker = Maker(
                self.root, self.fonts, self.max_pixels, side, self._made, self.durable
            )

    @hookimpl
    def handle_event(self, event: Event) -> None:
        assert self.root is not None
        if not self._wanted(event):
            self.counts["filtered"] += 1
            return
        try:
            self._save(event)
        except OSError as err:
            if err.errno in WAIT_ERRNOS:
                full = err.errno in FULL_ERRNOS
                if full and self.cleaner is not None:
                    self.cleaner.wake()
                wait = 30 if full else 5
                raise RetryLater(
                    f"cannot write {err.filename}: {err.strerror}", after=wait
                ) from err
            raise

    @hookimpl
    def register_routes(self) -> list[tuple[str, str, Any]]:
        # Called before startup: the view looks the folder up on each request.
        return [
            (
                "GET",
                "/snapshots/<path:path>",
                photo_view(
                    lambda: self.root, lambda path: bool(self.maker and self.maker.make(path))
                ),
            )
        ]

    @hookimpl
    def plugin_health(self) -> dict[str, Any]:
        health: dict[str, Any] = {
            "path": str(self.root),
            **self.counts,
            "last_saved": self.last_saved,
            "last_skipped": self.last_skipped,
        }
        if self.fonts is not None:
            health.update(font=self.fonts.name, font_cjk=self.fonts.cjk)
        if self.cleaner is not None:
            stats = self.cleaner.stats
            health["cleanup"] = {
                "runs": stats.runs,
                "removed": stats.removed,
                "total_mb": round(stats.total_bytes / 1e6, 2),
                "last_error": stats.last_error,
            }
        return health

    @hookimpl
    def handle_caught_up(self) -> None:
        self._move_links()

    @hookimpl
    def shutdown(self) -> None:
        self._move_links()
        if self.cleaner is not None:
            self.cleaner.stop()
            self.cleaner.join(5)

    # ---- saving ------------------------------------------------------------------------

    def _wanted(self, event: Event) -> bool:
        types, devices = self.config["person_types"], self.config["devices"]
        if types and event.person_type.value not in types:
            return False
        ids = {event.device, event.ep_id, event.device_ip}
        return not devices or any(d in ids for d in devices)

    def _photo(self, event: Event, field: str, max_side: int | None) -> Photo | None:
        """The photo in `field` decoded (see `_decode_side`), or only checked when no copy
        needs its pixels (CHECK_ONLY); None if there is none or it is refused."""
        if max_side == CHECK_ONLY:
            return self._checked(event, field)
        return self._decoded(event, field, max_side)

    def _checked(self, event: Event, field: str) -> images.Checked | None:
        data = getattr(event, field)
        if data is None:
            return None
        try:
            return images.check(data, self.max_pixels)
        except images.BadImage as err:
            return self._skipped(event, field, err)

    def _decoded(self, event: Event, field: str, max_side: int | None) -> images.Decoded | None:
        data = getattr(event, field)
        if data is None:
            return None
        try:
            return images.decode(data, self.max_pixels, max_side)
        except images.BadImage as err:
            return self._skipped(event, field, err)

    def _skipped(self, event: Event, field: str, err: images.BadImage) -> None:
        # The event's other photos and every other plugin's delivery go on.
        self.counts["skipped_images"] += 1
        # /healthz is open to anyone: no event or person here (the log has the event).
        self.last_skipped = f"{field}: {err}"
        log.warning("snapshots: event %s: %s skipped: %s", event.short_id, field, err)

    def _save(self, event: Event) -> None:
        root = self.root
        assert root is not None
        local = event.timestamp.astimezone()
        write = _Writer(root, event_stem(event, local), event.timestamp.timestamp(), self.durable)
        if event.completes and event.spot_pic is not None and self.config["save_face"]:
            _keep_face_crop(write.base)
        # The scene is the photo of the event; the V6 record sends only the face. Derived
        # copies need only so many pixels: decoding no more is most of their cost, and
        # with no copy to make now (the default) a photo is only checked.
        scene = self._photo(event, "spot_pic", self.decode_side)
        # Beside a scene, the face is only saved as it came: checking it is enough.
        face = self._photo(event, "face_pic", CHECK_ONLY if scene else self.decode_side)
        main, main_field = (scene, "spot_pic") if scene else (face, "face_pic")
        if event.completes and scene is None:
            # The first copy's main photo stays; a face this copy adds is only `_face`.
            main, main_field = None, "spot_pic"
        original = self._save_main(event, main, main_field, write) if main else None
        if self.config["save_face"] and main_field == "spot_pic":
            self._save_face(event, scene, face, write)
        if main is not None and original is not None and self.fonts is not None:
            self._save_annotated(event, main, main_field, original, local, write)
        self._save_extras(event, write)
        for photo in (scene, face):
            if isinstance(photo, images.Decoded):
                photo.image.close()
        self._count(event, write)

    def _save_main(self, event: Event, main: Photo, field: str, write: _Writer) -> str:
        original = write(main.suffix, getattr(event, field))
        if self.config["thumbnail_px"]:
            assert isinstance(main, images.Decoded)  # decode_side asked for its pixels
            write("_thumb.jpg", images.thumbnail(main.image, self.config["thumbnail_px"]))
        self._update_latest(event, original, main.suffix, write.mtime)
        return original

    def _save_face(
        self,
        event: Event,
        scene: Photo | None,
        face: Photo | None,
        write: _Writer,
    ) -> None:
        if face is not None:
            write("_face" + face.suffix, event.face_pic)
        elif scene is not None and event.face_rect is not None:
            if _face_file(write.base):
                return
            # Rare (boxes send their own crop): a cut-out keeps the scene's full detail.
            whole = scene if isinstance(scene, images.Decoded) and scene.scale == 1.0 else None
            full = whole or self._decoded(event, "spot_pic", None)
            crop = images.face_crop(full.image, event.face_rect) if full else None
            if crop is not None:
                write("_face.jpg", crop)

    def _save_annotated(
        self,
        event: Event,
        main: Photo,
        field: str,
        original: str,
        local: datetime,
        write: _Writer,
    ) -> None:
        assert self.fonts is not None
        text = images.caption(event, local, display_name(event))
        if self.annotate_later:
            self._annotate_later(original, text, event, field, write)
        else:
            assert isinstance(main, images.Decoded)  # decode_side asked for its pixels
            # Last: the caption is drawn on the decoded photo itself, sparing a copy.
            rect = main.rect(event.face_rect) if field == "spot_pic" else None
            write(ANNOTATED, images.annotate(main.image, rect, text, self.fonts))

    def _save_extras(self, event: Event, write: _Writer) -> None:
        for wanted, field, suffix in (
            (self.config["save_registered"], "reg_pic", "_registered"),
            (self.config["save_ir"], "ir_pic", "_ir"),
        ):
            # Only checked, never drawn on.
            extra = self._checked(event, field) if wanted else None
            if extra is not None:
                write(suffix + extra.suffix, getattr(event, field))

    def _count(self, event: Event, write: _Writer) -> None:
        written = write.written
        if self.cleaner is not None:
            # One call (one lock) an event; the caption counts against the bound too. A
            # photo a `latest` link still shows would outlive its removal: the links move
            # first (a bound that holds less than a batch of photos).
            self.cleaner.written(written, write.captions, self._move_links)
        self.counts["events"] += 1
        self.counts["files"] += len(written)
        if written:
            # When, not what: the file name holds the person's name, and /healthz is open.
            self.last_saved = datetime.now(timezone.utc).isoformat(timespec="seconds")
            log.debug("snapshots: event %s saved %d files", event.short_id, len(written))

    def _annotate_later(
        self,
        original: str,
        text: tuple[str, str],
        event: Event,
        main_field: str,
        write: _Writer,
    ) -> None:
        """The caption in the folder's index; the copy itself is made when first asked for."""
        annotated = write.base + ANNOTATED
        rect = event.face_rect if main_field == "spot_pic" else None
        folder, copy = os.path.split(annotated)
        entry = captions.line(copy, os.path.basename(original), text, rect)
        write.captions.append(captions.append(folder, entry, write.mtime, self.durable))
        if event.completes:
            # A completion's scene replaces the photo: a copy made from the old one goes.
            # (Any other event's photo is the one a copy was made from, if one was.)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(annotated)

    def _made(self, paths: list[str | Path]) -> None:
        if self.cleaner is not None:
            self.cleaner.written(paths)

    def _update_latest(self, event: Event, original: str, suffix: str, mtime: float) -> None:
        """Point the device's `latest` links at this photo: once the worker has caught up
        (or a second on), not for every photo.

        A link is a hard link made beside it and renamed over it, two changes to the
        folder (and to an SD card) each; a busy entrance sends several faces in each of
        the worker's batches, and only the newest matters. After a crash a link may show
        a photo up to a batch older; the photos themselves are all saved first.
        """
        assert self.root is not None
        for target in _latest_names(self.root, event.device, event.person_type.value):
            link = target + suffix
            shown = self._latest.get(link)
            if shown is None:
                shown = shown_moment(link)
            # A late history event never replaces the photo of a later one.
            if shown <= mtime:
                self._links_due[link] = (original, mtime)
                shown = mtime
            self._latest[link] = shown
        now = time.monotonic()
        if self._links_due_since is None:
            self._links_due_since = now
        if now - self._links_due_since >= LINKS_AT_LEAST_EVERY_S:
            self._move_links()  # a long catch-up still shows its newest photos

    def _move_links(self) -> None:
        due, self._links_due, self._links_due_since = self._links_due, {}, None
        for link, (original, mtime) in due.items():
            try:
                # The link's folder is made only when missing (atomic_link retries).
                atomic_link(original, link, mtime, self.durable)
            except OSError as err:  # the photo went meanwhile (cleanup, a full disk)
                log.warning("snapshots: cannot point %s at %s: %s", link, original, err)


@functools.lru_cache(maxsize=64)
def _latest_names(root: Path, device: str, person_type: str) -> tuple[str, ...]:
    """`<device>/latest` and `<device>/latest_<person type>`, without a suffix."""
    folder = device_folder(device)
    person = safe_component(person_type)
    return tuple(inside_text(root, f"{folder}/{name}") for name in ("latest", f"latest_{person}"))


def _face_file(base: str) -> str | None:
    """The event's `_face` photo, if there is one (`base`: its files' path, no suffix)."""
    for suffix in (".jpg", ".png"):
        if os.path.exists(f"{base}_face{suffix}"):
            return f"{base}_face{suffix}"
    return None


def _keep_face_crop(base: str) -> None:
    """A completion brings the scene its first copy lacked: that copy's main photo was
    the box's face crop, so it becomes `_face` before the scene takes the main name."""
    if _face_file(base) is not None:
        return  # done by an earlier delivery of this completion
    for suffix in (".jpg", ".png"):
        if os.path.exists(base + suffix):
            os.replace(base + suffix, f"{base}_face{suffix}")
            return


def _decode_side(config: dict[str, Any], annotate_later: bool) -> int | None:
    """The longest side the copies made with the event need: None for the photo's own
    size, CHECK_ONLY when no copy is made with the event (the photo is only checked)."""
    annotate_now = config["annotate"] and not annotate_later
    if annotate_now and not config["annotate_max_px"]:
        return None
    wanted = [config["thumbnail_px"], config["annotate_max_px"] if annotate_now else 0]
    return max(wanted) or CHECK_ONLY


class _Writer:
    """Writes an event's files beside each other under its stem, and lists what it wrote."""

    def __init__(self, root: Path, stem: str, mtime: float, durable: bool):
        self.mtime, self.durable = mtime, durable
        # Checked once: the suffixes added to it are the plugin's own.
        self.base = inside_text(root, stem)
        self.written: list[str] = []
        self.captions: list[str] = []

    def __call__(self, suffix: str, data: bytes) -> str:
        target = self.base + suffix
        atomic_write(target, data, self.mtime, self.durable)
        self.written.append(target)
        return target
