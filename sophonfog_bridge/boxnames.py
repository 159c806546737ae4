"""Which configured box a record comes from, whatever name the box gave itself in it.

A V5/V6 box is named by its config name on its websocket (the bridge holds that link),
but by its licence or serial in its history uploads and status pushes (`dev_sno`,
`mq_license_key`, `gateway_sn`, `reporter_id`). The box clients learn those ids from the
box's API and its device list; the accept path then names every record by the config
name, so Home Assistant shows one device per box. This only names the box: no event's
identity depends on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

# Anyone who may post can name boxes and devices: the memory is bounded.
MAX_ALIASES = 4096


class BoxNames:
    def __init__(self, names: Iterable[str]):
        self.names = frozenset(names)
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}
        self._devices: dict[str, str] = {}

    def add(self, name: str) -> None:
        """A box configured while running (from the status page)."""
        with self._lock:
            self.names = self.names | {name}

    def learn(self, name: str, ids: Iterable[str] = (), devices: Iterable[str] = ()) -> None:
        """The box `name` goes by these `ids` in its pushes and lists these capture devices."""
        if name not in self.names:
            return
        with self._lock:
            for ident, table in [(i, self._ids) for i in ids] + [
                (d, self._devices) for d in devices
            ]:
                if ident and ident not in self.names and len(table) < MAX_ALIASES:
                    table[ident] = name

    def name_for(self, ids: Iterable[str | None], devices: Iterable[str | None] = ()) -> str | None:
        """The configured name of the box these ids (or, failing them, devices) belong to."""
        with self._lock:
            for ident in ids:
                if ident in self.names:
                    return ident
                if ident in self._ids:
                    return self._ids[ident]
            for device in devices:
                if device in self._devices:
                    return self._devices[device]
        return None
