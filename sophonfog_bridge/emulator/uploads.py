"""What the box POSTs on its own: history uploads from a cursor, and the two status pushes."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from .records import history_v5, history_v6
from .state import BoxState
from .status import device_status, system_status

log = logging.getLogger("sophonfog_bridge.emulator.uploads")
BATCH = 100  # the docs: at most 100 events per upload run
Schedule = Callable[[], tuple[list[str], float]]


def multipart(body: dict[str, Any]) -> tuple[bytes, str]:
    """form-data as V5 sends it: one text field per top-level key, dicts as JSON text."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in body.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{text}\r\n'
        )
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode("utf-8"), f"multipart/form-data; boundary={boundary}"


def post(url: str, body: dict[str, Any], form: bool, timeout: float) -> tuple[int | None, str]:
    """POST the body; the HTTP status (None when nothing answered) and what went wrong, if so."""
    if form:
        data, content_type = multipart(body)
    else:
        data, content_type = json.dumps(body, ensure_ascii=False).encode(), "application/json"
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return answer.status, ""
    except urllib.error.HTTPError as err:
        return err.code, f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        return None, str(err)


class Loop:
    """Runs `work(urls)` every period while `schedule()` names URLs. poke() restarts the wait,
    so a config change takes effect at once."""

    def __init__(
        self,
        name: str,
        schedule: Schedule,
        work: Callable[[list[str]], None],
        period: float | None,
    ) -> None:
        self.name, self.schedule, self.work, self.period = name, schedule, work, period
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"emulator-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            urls, period = self.schedule()
            if self._wake.wait(self.period or period):
                self._wake.clear()
                continue
            if urls:
                try:
                    self.work(urls)
                except Exception:  # a bug here must not end the box's uploads for good
                    log.exception("%s failed", self.name)


class Uploads:
    """The history uploader (one cursor, like the box's is_send) and the status pushers."""

    def __init__(self, state: BoxState, period: float | None, timeout: float = 5.0) -> None:
        self.state = state
        self.timeout = timeout
        self.log: list[dict[str, Any]] = []
        self.cursor = 0  # seq of the first event not yet uploaded
        self.started = time.monotonic()
        settings = state.settings
        self.loops = [
            Loop("history", settings.history, self.upload_history, period),
            Loop("device-status", settings.device_monitor, self.push_device_status, period),
            Loop("system-status", settings.system_monitor, self.push_system_status, period),
        ]

    def start(self) -> None:
        self.started = time.monotonic()
        for loop in self.loops:
            loop.start()

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()

    def poke(self) -> None:
        for loop in self.loops:
            loop.poke()

    def _send(
        self,
        kind: str,
        url: str,
        body: dict[str, Any],
        form: bool = False,
        event_id: str | None = None,
    ) -> bool:
        status, error = post(url, body, form, self.timeout)
        ok = status is not None and 200 <= status < 300
        self.log.append(
            {
                "time": time.time(),
                "kind": kind,
                "url": url,
                "event_id": event_id,
                "status": status,
                "ok": ok,
                "error": error,
                "body": body,
            }
        )
        if not ok:
            log.info("%s to %s failed: %s", kind, url, error)
        return ok

    def upload_history(self, urls: list[str]) -> None:
        """Every event from the cursor on, one per POST; stop at the first failure and retry
        from there next period. An event counts as sent once every URL took it."""
        state = self.state
        form = state.firmware == "v5" and state.settings.get("HISTORY_CONTENT_TYPE") == "form-data"
        for event in state.store.since(self.cursor, BATCH):
            if state.firmware == "v6":
                body = history_v6(event, state.identity)
            else:
                body = history_v5(event, state.identity, state.settings.history_photos())
            for url in urls:
                if not self._send("history", url, body, form, event["event_id"]):
                    return
            state.store.mark_sent(event["seq"])
            self.cursor = event["seq"] + 1

    def push_device_status(self, urls: list[str]) -> None:
        body = device_status(self.state)
        for url in urls:
            self._send("device_status", url, body)

    def push_system_status(self, urls: list[str]) -> None:
        body = system_status(self.state, time.monotonic() - self.started)
        for url in urls:
            self._send("system_status", url, body)
