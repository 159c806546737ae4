"""CPU per event: the bridge (core, each plugin alone, all together) against the stock receiver.

python benchmarks/cpu.py                   full run (~4 min), prints the table
python benchmarks/cpu.py --smoke           a tiny run that only proves the harness works
python benchmarks/cpu.py --only all,core   just these bridge set-ups
python benchmarks/cpu.py --only all --repeat 5   medians and ranges of five rounds

One connection posts realistic V2R2 events at a steady pace, as a box does; the figure is
the server process's user + system CPU time from the first POST until every plugin's
backlog is 0, divided by the events posted. The stock receiver (the vendor's Flask
development server, which only parses and answers) runs in the same run, so the ratio
is what to read: absolute figures move with the machine. So does creating a file, which
snapshots does once a photo: the run ends by saying what that cost where it ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import load, parts
from benchmarks.run import bridge_config
from sophonfog_bridge.samples import jpeg

BUNDLED = ("mqtt", "snapshots", "syslog", "door_relay", "status")


@dataclass(frozen=True)
class Scene:
    name: str
    width: int
    height: int
    quality: int


SCENES = (Scene("1080p", 1920, 1080, 65), Scene("640x480", 640, 480, 85))


@dataclass
class Plan:
    rate: float = 40.0
    events: int = 240
    setups: tuple[str, ...] = ("core", *BUNDLED, "all")

    @classmethod
    def smoke(cls) -> Plan:
        return cls(rate=40.0, events=20, setups=("core", "all"))


def setup_config(work: Path, setup: str, broker, relay, sink) -> dict:
    """`core`: every plugin off; a plugin's name: it alone; `all`: every bundled plugin."""
    config = bridge_config(work, broker, relay, sink)
    for name in BUNDLED:
        if setup not in ("all", name):
            config["plugins"][name] = {"enabled": False}
    return config


def per_event(server: parts.Process, bodies: load.Bodies, plan: Plan, drained) -> float:
    """CPU ms per event for `plan.events` posted at `plan.rate`, until `drained()`."""
    before = parts.cpu_s(server.proc.pid)
    sent = load.steady(server_url(server), bodies, plan.rate, plan.events / plan.rate, "cpu")
    failed = [s for s in sent if s.status != 200]
    if failed:
        raise RuntimeError(f"{server.name}: {len(failed)} of {len(sent)} posts failed")
    parts.wait_until(drained, 300, f"{server.name} to finish every event")
    return (parts.cpu_s(server.proc.pid) - before) * 1000 / len(sent)


def server_url(server: parts.Process) -> str:
    return getattr(server, "url", f"http://127.0.0.1:{server.port}")


def measure(plan: Plan, work: Path) -> dict[str, dict[str, float]]:
    """{scene: {setup: CPU ms per event}}, the stock receiver as `stock`."""
    broker = parts.Broker(work).start()
    relay, sink = parts.Relay(), parts.SyslogSink()
    figures: dict[str, dict[str, float]] = {}
    try:
        for scene in SCENES:
            bodies = load.Bodies(0, scene=jpeg(scene.width, scene.height, 1, scene.quality))
            row = figures.setdefault(scene.name, {})
            stock = parts.target("flask", work, 8)
            try:
                row["stock"] = per_event(stock, bodies, plan, lambda: True)
            finally:
                stock.stop()
            for setup in plan.setups:
                row[setup] = measure_bridge(
                    work / f"{scene.name}-{setup}", setup, bodies, plan, (broker, relay, sink)
                )
                print(f"{scene.name} {setup}: {row[setup]:.1f} ms/event", file=sys.stderr)
    finally:
        broker.stop()
        relay.close()
        sink.close()
    return figures


def measure_bridge(folder: Path, setup: str, bodies, plan: Plan, real_parts) -> float:
    bridge = parts.Bridge(folder, setup_config(folder, setup, *real_parts), {})
    try:
        if setup in ("mqtt", "all"):
            parts.wait_until(
                lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 15, "mqtt online"
            )
        # Startup work (imports, discovery) is not the events' cost.
        time.sleep(0.5)
        return per_event(bridge, bodies, plan, lambda: bridge.backlog() == 0)
    finally:
        bridge.stop()


def table(rounds: list[dict[str, dict[str, float]]]) -> str:
    """Medians over the rounds; with more than one, the range of each round's own ratio
    (the bridge against the stock receiver measured beside it)."""
    setups = [s for s in next(iter(rounds[0].values())) if s != "stock"]
    lines = [
        "| scene photo | stock receiver | " + " | ".join(setups) + " |",
        "|---|---:|" + "---:|" * len(setups),
    ]
    for scene in rounds[0]:
        stock = statistics.median(r[scene]["stock"] for r in rounds)
        cells = []
        for setup in setups:
            ratios = sorted(r[scene][setup] / r[scene]["stock"] for r in rounds)
            cell = f"{statistics.median(r[scene][setup] for r in rounds):.1f} ms "
            cell += f"({statistics.median(ratios):.1f}×"
            cell += f", {ratios[0]:.1f}–{ratios[-1]:.1f}×)" if len(rounds) > 1 else ")"
            cells.append(cell)
        lines.append(f"| {scene} | {stock:.1f} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--only", help="comma-separated bridge set-ups (core, a plugin, all)")
    parser.add_argument("--events", type=int, help="events per measurement")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds; the table shows medians and ranges"
    )
    args = parser.parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan()
    if args.only:
        plan.setups = tuple(args.only.split(","))
    if args.events:
        plan.events = args.events
    rounds = []
    for n in range(max(1, args.repeat)):
        work = Path(tempfile.mkdtemp(prefix="sfb-cpu-"))
        try:
            rounds.append(measure(plan, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"round {n + 1} of {max(1, args.repeat)} done", file=sys.stderr)
    print(
        f"CPU per event, {plan.events} events at {plan.rate:g}/s, one connection, "
        f"{len(rounds)} round(s); in brackets the ratio to the stock receiver"
        + (" (median, range of the rounds)" if len(rounds) > 1 else "")
    )
    print(table(rounds))
    folder = tempfile.gettempdir()
    print(
        f"Creating a file in the work folder's file system ({folder}; TMPDIR moves it) "
        f"cost {parts.file_creation_us(Path(folder)):.0f} µs of CPU; snapshots creates one a photo."
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
