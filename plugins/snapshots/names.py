"""Safe, readable file names and the folder layout of saved photos.

A name from the box ends up as part of a path, so it must never climb out of the folder,
hide itself, or break a file system; but 小明 should still read as 小明 in a file manager.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from datetime import datetime
from pathlib import Path

from sophonfog_bridge import Event

# Characters that separate paths or are refused on Windows/SMB shares people copy to.
_RESERVED = re.compile(r'[/\\<>:"|?*\s]+')
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Cc control, Cf format (bidi overrides, RTL marks, zero-width), Cs lone surrogates.
_INVISIBLE = {"Cc", "Cf", "Cs"}
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in "123456789"
}
# Each component stays far below the 255-byte limit of common file systems, so the
# whole file name (several components) fits too.
NAME_BYTES = 96
DEVICE_BYTES = 96
FALLBACK = "unknown"


# Already safe as it is (an event id, most device names): nothing to strip at either end.
_PLAIN = re.compile(r"[A-Za-z0-9-]([A-Za-z0-9_-]*[A-Za-z0-9-])?")


def safe_component(text: str, max_bytes: int = NAME_BYTES, fallback: str = FALLBACK) -> str:
    """One path component: no separators, no control or bidi characters, not `.`/`..`."""
    text = str(text)
    if len(text) <= max_bytes and _PLAIN.fullmatch(text) and text.upper() not in _WINDOWS_DEVICES:
        return text
    return _sanitised(text, max_bytes, fallback)


# The same few devices, people and person types come back event after event.
@functools.lru_cache(maxsize=256)
def _sanitised(text: str, max_bytes: int, fallback: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _RESERVED.sub("_", text)
    text = "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE)
    text = _truncate_utf8(text, max_bytes).strip("._ ")
    if not text:
        return fallback
    if text.split(".")[0].upper() in _WINDOWS_DEVICES:
        text = "_" + text
    return text


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def display_name(event: Event) -> str:
    return event.identity_name or event.identity_id or FALLBACK


def event_stem(event: Event, local: datetime) -> str:
    """`YYYY-MM-DD/<device>/<HHMMSS>_<person_type>_<name>_<event-id-short>` (no suffix)."""
    device = safe_component(event.device, DEVICE_BYTES)
    name = safe_component(display_name(event))
    short = safe_component(event.short_id, 16)
    # Fields, not strftime: a third of the cost.
    day = f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
    when = f"{local.hour:02d}{local.minute:02d}{local.second:02d}"
    return f"{day}/{device}/{when}_{event.person_type.value}_{name}_{short}"


def device_folder(device: str) -> str:
    """`<device>` at the top level; never mistaken for a dated folder by the cleanup."""
    name = safe_component(device, DEVICE_BYTES)
    return "_" + name if _DATE.match(name) else name


@functools.lru_cache(maxsize=16)
def _resolved(root: str) -> str:
    return str(Path(root).resolve())


def inside(root: Path, relative: str | Path) -> Path:
    """`root / relative`, normalised, or ValueError if it would land outside `root`."""
    return Path(inside_text(root, relative))


def inside_text(root: Path, relative: str | Path) -> str:
    """`inside` as text, for the plugin's own writes (no Path objects on the hot path).

    Lexical, not `resolve()`: resolving every component cost a fifth of the plugin's time.
    The names are built from sanitised components, so only a symlink that someone with
    write access to the folder planted could lead elsewhere; the file server, which
    answers strangers, does resolve symlinks.
    """
    base = _resolved(str(root))
    target = os.path.normpath(os.path.join(base, relative))
    prefix = base if base.endswith(os.sep) else base + os.sep
    if not target.startswith(prefix) or target == base:
        raise ValueError(f"{relative} would leave {base}")
    return target
