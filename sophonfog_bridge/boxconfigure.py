"""Point one box at this bridge: probe its firmware, log in, set its receiver URLs.

What `configure-box` prints and the status page's "add a box" form shows come from here,
as a list of lines, so both say the same thing. V2 boxes get their receiver list
(`boxapi`), V5R7/V6 boxes their history uploads and status pushes (`boxsetup`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .boxapi import (
    BoxApiError,
    BoxClient,
    BoxUnreachable,
    login,
    merge_receivers,
    probe_firmware,
    settings_body,
)


@dataclass(frozen=True)
class Options:
    url: str  # this bridge as the box must reach it, e.g. http://10.0.0.9:9528[/<token>]
    replace: bool = False
    dry_run: bool = False
    timeout: float = 5.0
    reg_pic: bool = True
    form_data: bool = False


@dataclass(frozen=True)
class Said:
    text: str
    problem: bool = False  # the CLI prints it on stderr, the page in red


@dataclass
class Report:
    """What was done and what the box answered. `code`: 0 all set, 1 the box refused a
    setting, 2 not done (unreachable, login refused, a setting not sent)."""

    firmware: str | None = None
    code: int = 0
    error: str | None = None  # set when the box could not be reached or refused the login
    lines: list[Said] = field(default_factory=list)

    def say(self, text: str, problem: bool = False) -> None:
        self.lines.append(Said(text, problem))

    def worst(self, code: int) -> None:
        self.code = max(self.code, code)


def configure(box: dict[str, Any], opts: Options) -> Report:
    """Configure one box (a validated `boxes:` entry); every failure is in the report."""
    report = Report()
    try:
        _configure(box, opts, report)
    except BoxApiError as err:
        report.error = str(err)
        report.say(f"box {box['name']}: {err}", problem=True)
        report.worst(2)
    return report


def _configure(box: dict[str, Any], opts: Options, report: Report) -> None:
    client = BoxClient(f"{box['host']}:{box['api_port']}", timeout=opts.timeout)
    firmware, current, why = box["firmware"], None, None
    if firmware in ("auto", "v2"):
        # The V2 read comes first: a V2 box answers it, and its answer is needed anyway.
        try:
            current, firmware = client.receivers(), "v2"
        except BoxUnreachable:
            raise
        except BoxApiError as err:
            why = err
            if firmware == "auto":
                firmware = probe_firmware(client.base, opts.timeout)
                report.say(f"box {box['name']}: firmware {firmware} (probed)")
    report.firmware = firmware
    if firmware == "v2":
        _configure_v2(client, current, why, opts, report)
        return
    login(box, firmware, opts.timeout)
    if box.get("username"):
        report.say(f"box {box['name']}: logged in as {box['username']}")
    _configure_current(box, firmware, opts, report)


def _configure_v2(
    client: BoxClient, current: list[str] | None, why: Any, opts: Options, report: Report
) -> None:
    from .sources.http import REALTIME_PATHS

    if current is not None:
        report.say(f"box {client.base} sends events to: {', '.join(current) or '(nobody)'}")
    else:
        report.say(f"cannot read the box's current receivers: {why}", problem=True)
        if not opts.replace:
            report.say(
                "not changing anything: the box would forget its other receivers. "
                "Use --replace to make this bridge its only receiver.",
                problem=True,
            )
            report.worst(2)
            return
    ours = opts.url.rstrip("/")
    if not ours.endswith(REALTIME_PATHS):
        ours += REALTIME_PATHS[0]  # given the bridge's address: its real-time route
    urls = merge_receivers(current or [], ours, opts.replace)
    body = settings_body(urls, opts.reg_pic, opts.form_data)
    report.say(f"POST {client.base}/SophonFogSys/api/EventServerUrl {json.dumps(body)}")
    if opts.dry_run:
        report.say("dry run: nothing sent")
        return
    try:
        answer = client.set_receivers(urls, opts.reg_pic, opts.form_data)
    except BoxApiError as err:
        report.say(str(err), problem=True)
        report.worst(1)
        return
    report.say(f"box answered HTTP {answer.status}: {answer.text()}")
    report.worst(0 if answer.ok else 1)


def _configure_current(box: dict[str, Any], firmware: str, opts: Options, report: Report) -> None:
    """V5R7 / V6: history uploads and status pushes to this bridge's routes."""
    from .boxsetup import STEPS, Targets, send
    from .sources.http import HISTORY_PATHS, REALTIME_PATHS, STATUS_PATHS

    base = opts.url.rstrip("/")
    for path in REALTIME_PATHS:
        if base.endswith(path):
            base = base[: -len(path)]  # what stays may end in /<token>
    targets = Targets(base + HISTORY_PATHS[0], base + STATUS_PATHS[0], opts.replace)
    for step in STEPS[firmware](box, targets, opts.timeout):
        report.say(f"box {box['name']} ({firmware}): {step.what}")
        for note in step.notes:
            report.say(f"  note: {note}")
        if step.skip:
            report.say(f"  not set: {step.skip}", problem=True)
            report.worst(2)
            continue
        report.say(f"  {step.method} {step.url} {json.dumps(step.body, ensure_ascii=False)}")
        if opts.dry_run:
            report.say("  dry run: nothing sent")
            continue
        answer = send(step, opts.timeout)
        if answer.ok and answer.error() is None:
            report.say(f"  box answered HTTP {answer.status}: {answer.text()[:400]}")
        else:
            report.say(f"  box refused (HTTP {answer.status}): {answer.error()}")
            report.worst(1)
