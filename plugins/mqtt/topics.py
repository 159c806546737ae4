"""Slugs for ids in topics, and every topic the plugin publishes or listens on.

Ids come from the box and may hold anything (`a/b+#`, `1.2.3.4`, 小明). A slug keeps
them readable (python-slugify transliterates) and limited to `[a-z0-9_-]`; whenever
slugging lost information a short hash of the original is appended, so two different
ids never share a topic and the same id always gets the same one.
"""

from __future__ import annotations

import functools
import hashlib
import re

from slugify import slugify

_DISALLOWED = r"[^-a-z0-9_]+"
_MAX_SLUG = 48
# First-level names the plugin uses itself; a device slugged to one of them gets a hash.
RESERVED = frozenset({"status", "bridge", "box", "person", "door"})


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


# Pure, and slugify is not cheap: remembered, since the same few ids come with every event.
@functools.lru_cache(maxsize=4096)
def slug(value: str, reserved: frozenset[str] = frozenset()) -> str:
    """A stable, readable, topic-safe slug that no other id can share."""
    text = str(value)
    cleaned = slugify(text, regex_pattern=_DISALLOWED, max_length=_MAX_SLUG, word_boundary=False)
    cleaned = cleaned.strip("-_")
    if cleaned and cleaned == text and cleaned not in reserved:
        return cleaned
    return f"{cleaned}-{short_hash(text)}" if cleaned else f"h{short_hash(text)}"


def entity_slug(text: str) -> str:
    """The object-id half of an entity id: `[a-z0-9_]`, no leading, trailing or double `_`."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", text.lower())).strip("_") or "x"


class Topics:
    """Every topic of one bridge, from its base topic and the HA discovery prefix."""

    def __init__(self, base: str, discovery_prefix: str):
        self.base = base
        self.prefix = discovery_prefix
        self.status = f"{base}/status"
        self.bridge_state = f"{base}/bridge/state"
        self.ha_status = f"{discovery_prefix}/status"
        self.commands = f"{base}/+/open_door"

    def device(self, device_slug: str, leaf: str) -> str:
        return f"{self.base}/{device_slug}/{leaf}"

    def box(self, box_slug: str) -> str:
        return f"{self.base}/box/{box_slug}/status"

    def box_link(self, box_slug: str) -> str:
        return f"{self.base}/box/{box_slug}/link"

    def person(self, person_slug: str, leaf: str) -> str:
        return f"{self.base}/person/{person_slug}/{leaf}"

    def door_access(self, door_slug: str) -> str:
        return f"{self.base}/door/{door_slug}/access"

    def discovery(self, object_id: str) -> str:
        return f"{self.prefix}/device/{object_id}/config"

    def command_device(self, topic: str) -> str | None:
        """The device slug of an `<base>/<device>/open_door` topic, else None."""
        head = self.base + "/"
        if not topic.startswith(head) or not topic.endswith("/open_door"):
            return None
        middle = topic[len(head) : -len("/open_door")]
        return middle if middle and "/" not in middle else None


def valid_publish_topic(topic: str) -> bool:
    return bool(topic) and not any(c in topic for c in "+#\0") and len(topic.encode()) < 65535
