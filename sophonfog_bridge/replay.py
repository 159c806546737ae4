"""Re-posting saved events to a bridge, for testing automations with real payloads.

A file may hold one event object, a JSON list of them, or JSON lines. Each event is
marked `"replayed": true`, which the bridge carries as `Event.replayed` and no door acts
on: a test replay (with `--now`, as fresh as a real one) must not open real doors. Only
`live=True` (`--live`) posts them unmarked, as a box would.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


class ReplayFileError(ValueError):
    """A file that holds no events we can post; the message names the file and line."""


def load_events(path: str | Path) -> list[dict[str, Any]]:
    text = Path(path).read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except ValueError:
        return list(_json_lines(path, text))
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ReplayFileError(f"{path}: item {index + 1} is not a JSON object")
    return items


def _json_lines(path: str | Path, text: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as err:
            raise ReplayFileError(f"{path}:{number}: not JSON ({err})") from None
        if not isinstance(item, dict):
            raise ReplayFileError(f"{path}:{number}: not a JSON object")
        yield item


def restamp(payload: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The same event as if it happened now: a fresh time (in the unit it used) and, if
    it carries one, a fresh id, so the bridge does not drop it as a duplicate."""
    now = time.time() if now is None else now
    out = dict(payload)
    old = out.get("timestamp")
    seconds = isinstance(old, (int, float)) and old < 100_000_000_000
    out["timestamp"] = int(now) if seconds else int(now * 1000)
    if "event_id" in out:
        out["event_id"] = uuid.uuid4().hex
    return out


REPLAYED = "replayed"


def mark(payload: dict[str, Any], live: bool) -> dict[str, Any]:
    """The payload as it is posted: marked replayed unless the user asked for live."""
    out = {k: v for k, v in payload.items() if k != REPLAYED}
    if not live:
        out[REPLAYED] = True
    return out


@dataclass
class ReplayResult:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Progress:
    """`replay [#####.....] 5/10 ok 5 failed 0` on one stderr line, redrawn in place."""

    def __init__(self, total: int, out: TextIO, width: int = 30):
        self.total, self.out, self.width = total, out, width

    def show(self, done: int, result: ReplayResult, final: bool = False) -> None:
        filled = self.width * done // max(1, self.total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"replay [{bar}] {done}/{self.total} ok {result.sent} failed {result.failed}"
        self.out.write("\r" + line + ("\n" if final else ""))
        self.out.flush()


def post_json(url: str, payload: dict[str, Any], token: str | None, timeout: float) -> str | None:
    """None on success, else why it failed."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Sophonfog-Token"] = token
    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return None
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}: {err.read().decode('utf-8', 'replace')[:200]}"
    except OSError as err:
        return f"cannot reach {url}: {getattr(err, 'reason', err)}"


def replay(
    events: list[dict[str, Any]],
    url: str,
    *,
    token: str | None = None,
    now: bool = False,
    live: bool = False,
    delay_s: float = 0.0,
    timeout: float = 5.0,
    progress: Progress | None = None,
    post: Callable[..., str | None] = post_json,
) -> ReplayResult:
    result = ReplayResult()
    for index, payload in enumerate(events):
        if index and delay_s:
            time.sleep(delay_s)
        error = post(url, mark(restamp(payload) if now else payload, live), token, timeout)
        if error is None:
            result.sent += 1
        else:
            result.failed += 1
            result.errors.append(f"event {index + 1}: {error}")
        if progress is not None:
            progress.show(index + 1, result, final=index + 1 == len(events))
    return result
