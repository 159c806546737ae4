"""The `sophonfog-bridge` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any

from . import __version__, samples
from .config import OFF_BY_DEFAULT, ConfigError, read_file
from .spool import SpoolLocked

log = logging.getLogger("sophonfog_bridge")


def _plugin_specs(values: Sequence[str]) -> dict[str, str]:
    """`--plugin name=module:attr` options plus SOPHONFOG_BRIDGE_PLUGINS (comma-separated)."""
    items = [*filter(None, os.environ.get("SOPHONFOG_BRIDGE_PLUGINS", "").split(",")), *values]
    specs = {}
    for item in items:
        name, sep, spec = item.strip().partition("=")
        if not sep or not name or not spec:
            raise SystemExit(f"--plugin {item!r}: use NAME=module:attr")
        specs[name] = spec
    return specs


def _build_bridge(args: argparse.Namespace):
    from .bridge import Bridge
    from .config import validate_core
    from .host import build_host

    data, source = read_file(args.config)
    specs = _plugin_specs(args.plugin)
    core = validate_core(data, source)
    level = args.log_level or core["log_level"]
    logging.getLogger().setLevel(level)
    if core["plugin_process"]:
        from .plugin_process import CoreBridge

        return CoreBridge(data, source, specs, level)
    return Bridge(data, host=build_host(specs=specs), source=source)


def cmd_run(args: argparse.Namespace) -> int:
    from .server import serve

    serve(_build_bridge(args))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    # Validation only: no Bridge, so nothing in the data folder is opened for writing.
    from .bridge import resolved_config
    from .host import build_host

    data, source = read_file(args.config)
    host = build_host(specs=_plugin_specs(args.plugin))
    resolved = resolved_config(data, host, source)
    if resolved["http"].get("token"):
        resolved["http"] = {**resolved["http"], "token": "***"}
    print(json.dumps(resolved, indent=2, ensure_ascii=False, default=str))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .host import build_host

    host = build_host(specs=_plugin_specs(args.plugin))
    data, _ = read_file(args.config)
    sections = data.get("plugins") or {}
    rows = host.describe()
    for row in rows:
        section = sections.get(row["name"]) or {}
        default = row["name"] not in OFF_BY_DEFAULT
        row["enabled"] = row["loaded"] and bool(section.get("enabled", default))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "enabled" if row["enabled"] else ("FAILED" if row["error"] else "disabled")
        print(f"{row['name']:<16} {row['version'] or '-':<10} {state:<9} {row['source']}")
        if row["error"]:
            print(f"    error: {row['error']}")
        elif row["hooks"]:
            print(f"    hooks: {', '.join(row['hooks'])}")
    return 0


def cmd_send_test_event(args: argparse.Namespace) -> int:
    payload = samples.event_payload(
        args.shape,
        person_type=args.person_type,
        device_type=args.device_type,
        identity_id=args.identity_id,
        identity_name=args.identity_name,
        score=args.score,
        ep_id=args.ep_id,
    )
    url = args.url
    if args.shape.endswith("history") and url.endswith("/RealTimeEvent"):
        url = url[: -len("/RealTimeEvent")] + "/EventServer/api/SophonFogHistoryEvent"
    if args.form:
        body, content_type = _encode_multipart(samples.as_form(payload))
    else:
        body, content_type = json.dumps(payload).encode(), "application/json"
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(response.status, response.read().decode())
            return 0
    except urllib.error.HTTPError as err:
        print(err.code, err.read().decode(), file=sys.stderr)
        return 1
    except OSError as err:
        print(f"cannot reach {url}: {err}", file=sys.stderr)
        return 1


def cmd_configure_box(args: argparse.Namespace) -> int:
    from .boxapi import BoxApiError
    from .boxconfigure import Options, configure

    try:
        boxes = _boxes_to_configure(args)
    except (BoxApiError, ConfigError) as err:
        print(err, file=sys.stderr)
        return 2
    opts = Options(
        url=args.url,
        replace=args.replace,
        dry_run=args.dry_run,
        timeout=args.timeout,
        reg_pic=not args.no_reg_pic,
        form_data=args.form_data,
    )
    worst = 0
    for box in boxes:
        report = configure(box, opts)
        for line in report.lines:
            print(line.text, file=sys.stderr if line.problem else sys.stdout)
        worst = max(worst, report.code)
    return worst


def _boxes_to_configure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """`--box NAME` or `--box ADDRESS` (a configured box, else one from the flags), or
    every box under `boxes:` in the config."""
    from urllib.parse import urlsplit

    from .boxapi import BoxApiError, box_base_url
    from .config import BOX_SCHEMA, validate_core

    data, source = read_file(args.config)
    configured = validate_core({"boxes": data.get("boxes") or []}, source)["boxes"]
    if not args.box:
        if not configured:
            raise BoxApiError("no box: give --box, or list boxes under `boxes:` in the config")
        found = configured
    else:
        found = [b for b in configured if args.box in (b["name"], b["host"])]
        if not found:
            parts = urlsplit(box_base_url(args.box))
            found = [BOX_SCHEMA({"host": parts.hostname, "api_port": parts.port})]
            if args.system_port:
                found[0]["system_port"] = args.system_port
            found[0]["name"] = parts.hostname
    return [{**b, "firmware": args.firmware or b["firmware"]} for b in found]


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import Progress, ReplayFileError, load_events, replay

    events = []
    for path in args.files:
        try:
            events += load_events(path)
        except (OSError, ReplayFileError) as err:
            print(f"cannot replay {path}: {err}", file=sys.stderr)
            return 2
    if not events:
        print("no events in the given files", file=sys.stderr)
        return 2
    result = replay(
        events,
        args.url,
        token=args.token,
        now=args.now,
        live=args.live,
        delay_s=args.delay,
        timeout=args.timeout,
        progress=None if args.quiet else Progress(len(events), sys.stderr),
    )
    for error in result.errors[:20]:
        print(error, file=sys.stderr)
    print(f"{result.sent} sent, {result.failed} failed")
    return 0 if result.failed == 0 else 1


def cmd_emulate_box(args: argparse.Namespace) -> int:
    # Loaded only here: the bridge itself never imports the emulator.
    from .emulator.run import run

    return run(args)


def _encode_multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode("utf-8"), f"multipart/form-data; boundary={boundary}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="sophonfog-bridge",
        description="SophonFog / SE3 face-recognition events to MQTT, Home Assistant, doors.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = top.add_subparsers(dest="command", required=True)
    _with_config(sub.add_parser("run", help="receive events and run the plugins"))
    _with_config(sub.add_parser("check-config", help="print the resolved config or the error"))
    _with_config(sub.add_parser("plugins", help="list discovered plugins")).add_argument(
        "--json", action="store_true"
    )
    _add_send_test_event(sub)
    _add_configure_box(sub)
    _add_replay(sub)
    _add_emulate_box(sub)
    return top


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", "-c", help="YAML config file (default: sophonfog-bridge.yaml)")
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="NAME=module:attr",
        help="load an extra plugin by import path (repeatable)",
    )
    return p


def _add_send_test_event(sub: Any) -> None:
    p = sub.add_parser("send-test-event", help="post a realistic event like a box does")
    p.add_argument("--url", default="http://127.0.0.1:9528/RealTimeEvent")
    p.add_argument("--shape", choices=samples.SHAPES, default="v2r2")
    p.add_argument("--person-type", choices=list(samples.PERSON_CODES), default="employee")
    p.add_argument("--device-type", choices=list(samples.DEVICE_CODES), default="gate")
    p.add_argument("--identity-id", default="10001")
    p.add_argument("--identity-name", default="小明")
    p.add_argument("--score", type=float, default=0.92)
    p.add_argument("--ep-id", default="AKOPKKKKK__192.168.1.101")
    p.add_argument("--form", action="store_true", help="send multipart form-data")


def _add_configure_box(sub: Any) -> None:
    p = sub.add_parser("configure-box", help="point a box at this bridge through the box's API")
    p.add_argument("--config", "-c", help="YAML config file whose `boxes:` to configure")
    p.add_argument("--box", help="a box name from the config, or e.g. http://192.168.1.20:5555")
    p.add_argument("--firmware", choices=["auto", "v2", "v5", "v6"], help="default: probe it")
    p.add_argument("--system-port", type=int, help="the box's system API port (default 8888)")
    p.add_argument("--url", required=True, help="this bridge, e.g. http://<bridge>:9528")
    p.add_argument("--form-data", action="store_true", help="box posts form-data, not JSON")
    p.add_argument("--no-reg-pic", action="store_true", help="without registered photos")
    p.add_argument("--replace", action="store_true", help="drop the box's other receivers")
    p.add_argument("--dry-run", action="store_true", help="show the request, send nothing")
    p.add_argument("--timeout", type=float, default=5.0)


def _add_replay(sub: Any) -> None:
    p = sub.add_parser("replay", help="re-post saved event JSON files to a bridge")
    p.add_argument("files", nargs="+", metavar="FILE", help="one event, a JSON list, or JSON lines")
    p.add_argument("--url", default="http://127.0.0.1:9528/RealTimeEvent")
    p.add_argument("--token", help="the bridge's http.token, if it has one")
    p.add_argument("--now", action="store_true", help="restamp events with the current time")
    p.add_argument(
        "--live",
        action="store_true",
        help="post them as live events that doors act on (default: marked replayed, no door opens)",
    )
    p.add_argument("--delay", type=float, default=0.0, help="seconds between events")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _add_emulate_box(sub: Any) -> None:
    p = sub.add_parser("emulate-box", help="run an emulated V5R7 / V6 box (websocket firmware)")
    p.add_argument("--firmware", choices=["v5", "v6"], required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--api-port", type=int, default=5555)
    p.add_argument("--ws-port", type=int, default=5679)
    p.add_argument("--system-port", type=int, default=8888)
    p.add_argument("--rate", type=float, default=6.0, help="recognitions a minute (0: none)")
    p.add_argument("--devices", type=int, default=2, help="how many capture devices")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default="admin")


COMMANDS = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "plugins": cmd_plugins,
    "send-test-event": cmd_send_test_event,
    "configure-box": cmd_configure_box,
    "replay": cmd_replay,
    "emulate-box": cmd_emulate_box,
}


def main(argv: Sequence[str] | None = None) -> Any:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level or "INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 1
    except SpoolLocked as err:
        print(f"cannot start: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
