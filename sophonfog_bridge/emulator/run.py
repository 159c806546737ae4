"""`sophonfog-bridge emulate-box`: run an emulated box in the foreground until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import random
import signal
import threading
from typing import Any

from .box import EmulatedBox

# A small staff list, so a bridge watching the emulator sees familiar faces come back.
ROSTER = [
    ("employee", "10001", "小明"),
    ("employee", "10002", "Alice Martin"),
    ("employee", "10003", "王芳"),
    ("visitor", "20001", "Visitor Bob"),
    ("vip", "30001", "Dr. Chen"),
    ("blacklist", "90001", "Mallory"),
    ("stranger", None, None),
]
WEIGHTS = [30, 30, 20, 8, 4, 2, 6]


def random_event(box: EmulatedBox, rng: random.Random) -> dict[str, Any]:
    person_type, identity_id, name = rng.choices(ROSTER, WEIGHTS)[0]
    score = rng.uniform(30, 60) if person_type == "stranger" else rng.uniform(83, 99)
    device = rng.randrange(len(box.devices))
    return box.emit(person_type, device, identity_id, name, round(score, 2))


def run(args: argparse.Namespace) -> int:
    if args.rate < 0 or args.devices < 1:
        raise SystemExit("--rate must be >= 0 and --devices >= 1")
    box = EmulatedBox(
        args.firmware,
        args.host,
        args.api_port,
        args.ws_port,
        args.system_port,
        devices=args.devices,
        username=args.username,
        password=args.password,
    )
    try:
        box.start()
    except OSError as err:
        raise SystemExit(f"cannot listen on {args.host}: {err}") from err
    logging.getLogger("websockets").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"emulated {args.firmware.upper()} box", flush=True)
    print(f"  API        {box.api_url}", flush=True)
    print(f"  system API {box.system_url}", flush=True)
    print(f"  websocket  {box.ws_url}", flush=True)
    for device in box.devices:
        print(f"  device     {device.id} {device.type} {device.ip}", flush=True)
    rng = random.Random()
    interval = 60.0 / args.rate if args.rate else None
    try:
        while not stop.wait(interval):
            event = random_event(box, rng)
            print(
                f"event {event['event_id']} {event['person_type']} {event['identity_name']!r} "
                f"on {event['device_id']} -> {event['pushed_to']} client(s)",
                flush=True,
            )
    finally:
        box.stop()
    print("stopped", flush=True)
    return 0
