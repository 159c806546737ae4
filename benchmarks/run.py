"""Measure the bridge against its baselines in one run; print a table, write the report.

python benchmarks/run.py                    full run (~4-5 min), writes docs/performance.md
python benchmarks/run.py --smoke --out F    a tiny run that only proves the harness works
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import load, parts
from benchmarks.report import write_report

THREADS = 8
# The V2R2 shape names the camera by its IP only.
DEVICE = "192.168.1.101"


@dataclass
class Plan:
    seconds: float = 8.0
    connections: int = 8
    steady_s: float = 15.0
    isolation_s: float = 10.0
    backlog_events: int = 10_000
    rate: float = 50.0

    @classmethod
    def smoke(cls) -> Plan:
        return cls(seconds=1, connections=4, steady_s=2, isolation_s=1.5, backlog_events=150)


@dataclass
class Results:
    plan: Plan
    ack: dict[str, dict[str, load.WrkResult]] = field(default_factory=dict)
    e2e: dict[str, float] = field(default_factory=dict)
    # Per workload, seconds from the first POST until each plugin's backlog last reached 0.
    finished: dict[str, dict[str, float]] = field(default_factory=dict)
    # Per workload: CPU ms an event of each target's processes under `wrk` (the bridge's
    # until every plugin was done, with the broker's), and how busy the machine was then.
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)


def bridge_config(work: Path, broker: parts.Broker, relay: parts.Relay, sink: parts.SyslogSink):
    bundled = {"mqtt", "snapshots", "syslog", "door_relay", "status"}
    sections: dict = {
        ep.name: {"enabled": False}
        for ep in entry_points(group="sophonfog_bridge")
        if ep.name not in bundled
    }
    sections.update(
        mqtt={"host": "127.0.0.1", "port": broker.port, "base_topic": "bench"},
        snapshots={"path": str(work / "snapshots")},
        syslog={"address": f"udp://127.0.0.1:{sink.port}"},
        door_relay={
            "enabled": True,
            "doors": [
                {
                    "name": "lobby",
                    "devices": [DEVICE],
                    "cooldown_s": 0,
                    "pulse_s": 0.5,
                    "backend": {
                        "type": "http",
                        "url": f"http://127.0.0.1:{relay.port}/relay/0?turn=on",
                    },
                }
            ],
        },
    )
    return {"bridge_id": "bench", "http": {"threads": THREADS}, "plugins": sections}


def measure_baselines(
    work: Path,
    plan: Plan,
    results: Results,
    bodies,
    targets=(("flask", "a_stock"), ("bottle", "b_bare"), ("logged", "c_logged")),
) -> None:
    for kind, label in targets:
        server = parts.target(kind, work, THREADS)
        try:
            for workload, body in bodies.items():
                script = body.wrk_files(work, f"{kind}-{workload.scene_bytes}")
                before = parts.cpu_s(server.proc.pid)
                result = load.wrk(
                    f"http://127.0.0.1:{server.port}", script, plan.seconds, plan.connections
                )
                results.ack.setdefault(workload.name, {})[label] = result
                results.cpu.setdefault(workload.name, {})[label] = per_event_ms(
                    parts.cpu_s(server.proc.pid) - before, result
                )
        finally:
            server.stop()


def wait_drained(bridge: parts.Bridge, timeout: float) -> float:
    start = time.monotonic()
    parts.wait_until(lambda: bridge.backlog() == 0, timeout, "plugins to drain")
    return time.monotonic() - start


def finish_times(bridge: parts.Bridge, began: float, timeout: float) -> dict[str, float]:
    """Seconds from `began` until each plugin's backlog last reached 0, polled until all are:
    which plugin holds end to end up, and whether the door's decisions (records the other
    plugins take too) kept coming after the burst."""
    finished: dict[str, float] = {}

    def all_done() -> bool:
        now = time.monotonic() - began
        plugins = bridge.health()["plugins"]
        for name, plugin in plugins.items():
            if not plugin.get("enabled"):
                continue
            if plugin.get("backlog", 0):
                finished.pop(name, None)
            else:
                finished.setdefault(name, now)
        return all(not p.get("backlog", 0) for p in plugins.values() if p.get("enabled"))

    parts.wait_until(all_done, timeout, "plugins to drain")
    return dict(sorted(finished.items(), key=lambda item: item[1]))


def latency_of(sent: list[load.Sent]) -> tuple[float, float]:
    acks = [(s.acked - s.started) * 1000 for s in sent if s.status == 200]
    return load.percentile(acks, 50), load.percentile(acks, 99)


@dataclass
class Rig:
    """What every phase of a run shares: the plan, the parts around the bridge, the results."""

    plan: Plan
    work: Path
    results: Results
    bodies: dict
    broker: parts.Broker
    relay: parts.Relay
    sink: parts.SyslogSink

    @property
    def small(self) -> load.Bodies:
        return self.bodies[load.WORKLOADS[0]]

    def bridge(self, name: str, files_under: Path, extra_plugins: dict[str, str]) -> parts.Bridge:
        """A bridge with every bundled plugin on, once its MQTT link is up."""
        config = bridge_config(files_under, self.broker, self.relay, self.sink)
        bridge = parts.Bridge(self.work / name, config, extra_plugins)
        parts.wait_until(
            lambda: bridge.health()["plugins"]["mqtt"].get("announced"), 15, "mqtt online"
        )
        return bridge


def run(plan: Plan, out: Path | None, keep: bool = False) -> Results:
    work = Path(tempfile.mkdtemp(prefix="sfb-bench-"))
    rig = Rig(
        plan,
        work,
        Results(plan),
        {w: load.Bodies(w.scene_bytes) for w in load.WORKLOADS},
        parts.Broker(work).start(),
        parts.Relay(),
        parts.SyslogSink(),
    )
    try:
        print(f"work folder {work}", file=sys.stderr)
        rig.results.notes.append(
            f"Creating a file in the work folder cost {parts.file_creation_us(work):.0f} µs "
            "of CPU in this run (snapshots creates one a photo; see benchmarks/parts.py)."
        )
        measure_baselines(work, plan, rig.results, rig.bodies)
        run_main_bridge(rig)
        run_sleepy_bridge(rig)
    finally:
        rig.broker.stop() if rig.broker.proc and rig.broker.proc.poll() is None else None
        rig.relay.close()
        rig.sink.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if out is not None:
        write_report(rig.results, out, command=" ".join(["python", *sys.argv]))
    return rig.results


def run_main_bridge(rig: Rig) -> None:
    """Throughput, steady latency, then the broker gone: one bridge, stopped at the end."""
    bridge = rig.bridge("bridge", rig.work, {})
    try:
        health = bridge.health()["plugins"]
        rig.results.plugins = sorted(n for n, p in health.items() if p.get("enabled"))
        tap = parts.Tap(rig.broker.port, "bench")
        measure_throughput(rig, bridge)
        # The machine's pace drifts over minutes (a shared VM): the stock receiver again,
        # right after, and the bridge is compared with the mean of its two runs.
        measure_baselines(
            rig.work, rig.plan, rig.results, rig.bodies, (("flask", "a_stock_after"),)
        )
        measure_steady(rig, bridge, tap)
        measure_broker_down(rig, bridge)
        tap.close()
    except BaseException:
        bridge.stop()
        raise
    assert bridge.stop() == 0, "the bridge did not exit 0 on SIGTERM"


def measure_throughput(rig: Rig, bridge: parts.Bridge) -> None:
    """Ack throughput, then end to end: from the first POST to every plugin done."""
    results = rig.results
    for workload, body in rig.bodies.items():
        script = body.wrk_files(rig.work, f"bridge-{workload.scene_bytes}")
        cpu_before = parts.cpu_s(bridge.proc.pid), parts.cpu_s(rig.broker.proc.pid)
        machine_before = parts.machine_s()
        began = time.monotonic()
        result = load.wrk(bridge.url, script, rig.plan.seconds, rig.plan.connections)
        results.ack[workload.name]["bridge"] = result
        results.finished[workload.name] = finish_times(bridge, began, 600)
        # Events, not spool records: the door's decisions are records too, not events.
        results.e2e[workload.name] = (result.requests - result.errors) / (time.monotonic() - began)
        machine = parts.machine_s()
        span = machine["all"] - machine_before["all"]
        results.cpu.setdefault(workload.name, {}).update(
            bridge=per_event_ms(parts.cpu_s(bridge.proc.pid) - cpu_before[0], result),
            broker=per_event_ms(parts.cpu_s(rig.broker.proc.pid) - cpu_before[1], result),
            machine_busy=(machine["busy"] - machine_before["busy"]) / span,
            machine_steal=(machine["steal"] - machine_before["steal"]) / span,
        )


def per_event_ms(cpu_s: float, result: load.WrkResult) -> float:
    return cpu_s * 1000 / max(1, result.requests - result.errors)


def measure_steady(rig: Rig, bridge: parts.Bridge, tap: parts.Tap) -> None:
    """Steady 50 events/s, as a busy entrance does: ack, MQTT and relay latency, memory."""
    results, plan = rig.results, rig.plan
    rig.relay.arrivals.clear()
    sent = load.steady(bridge.url, rig.small, plan.rate, plan.steady_s, "steady")
    wait_drained(bridge, 60)
    time.sleep(0.3)
    p50, p99 = latency_of(sent)
    results.latency.update(ack_p50=p50, ack_p99=p99)
    mqtt = [
        (tap.arrivals[s.event_id] - s.started) * 1000 for s in sent if s.event_id in tap.arrivals
    ]
    results.latency["mqtt_p50"] = load.percentile(mqtt, 50)
    results.latency["mqtt_p99"] = load.percentile(mqtt, 99)
    results.latency["mqtt_seen"] = len(mqtt) / max(1, len(sent))
    arrivals = list(rig.relay.arrivals)
    if len(arrivals) != len(sent):
        results.notes.append(
            f"relay saw {len(arrivals)} requests for {len(sent)} events at the steady rate"
        )
    relay_ms = [(a - s.started) * 1000 for s, a in zip(sent, arrivals, strict=False)]
    results.latency["relay_p50"] = load.percentile(relay_ms, 50)
    results.latency["relay_p99"] = load.percentile(relay_ms, 99)
    rss, peak = bridge.rss_kb()
    results.memory.update(steady_rss_mb=rss / 1024, peak_rss_mb=peak / 1024)


def measure_broker_down(rig: Rig, bridge: parts.Bridge) -> None:
    """Isolation with the broker gone, memory with a backlog on disk, then the catch-up."""
    results, plan = rig.results, rig.plan
    rig.broker.stop()
    sent = load.steady(bridge.url, rig.small, plan.rate, plan.isolation_s, "nobroker")
    results.latency["ack_p99_broker_down"] = latency_of(sent)[1]
    # The broker stays down while the backlog builds.
    rss_before, _ = bridge.rss_kb()
    acked = load.burst(bridge.url, rig.small, plan.backlog_events, "backlog")
    time.sleep(1.0)
    rss_after, peak_after = bridge.rss_kb()
    results.memory.update(
        backlog_events=acked,
        mqtt_backlog=bridge.health()["plugins"]["mqtt"]["backlog"],
        backlog_rss_before_mb=rss_before / 1024,
        backlog_rss_after_mb=rss_after / 1024,
        backlog_growth_mb=(rss_after - rss_before) / 1024,
        backlog_peak_mb=peak_after / 1024,
    )
    rig.broker.start()
    began = time.monotonic()
    parts.wait_until(
        lambda: bridge.health()["plugins"]["mqtt"]["backlog"] == 0, 600, "mqtt to catch up"
    )
    results.memory["mqtt_catch_up_s"] = time.monotonic() - began
    results.memory["after_catch_up_rss_mb"] = bridge.rss_kb()[0] / 1024


def run_sleepy_bridge(rig: Rig) -> None:
    """Isolation: a plugin that takes a second per event must not slow the answers."""
    bridge = rig.bridge("sleepy", rig.work / "sleepy", {"sleepy": "benchmarks.sleepy:Sleepy"})
    try:
        sent = load.steady(bridge.url, rig.small, rig.plan.rate, rig.plan.isolation_s, "sleepy")
        rig.results.latency["ack_p99_sleepy_plugin"] = latency_of(sent)[1]
        rig.results.latency["sleepy_backlog"] = bridge.health()["plugins"]["sleepy"]["backlog"]
    finally:
        bridge.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--out", type=Path, help="report file (default docs/performance.md)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan()
    out = args.out or (None if args.smoke else parts.ROOT / "docs" / "performance.md")
    results = run(plan, out, keep=args.keep)
    from benchmarks.report import table

    print(table(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
