"""The benchmark harness in its tiny mode, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def test_benchmark_harness_runs_end_to_end_in_smoke_mode(tmp_path):
    out = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    for heading in ("### Ack throughput", "### Ratios", "### Bridge figures", "Measured by"):
        assert heading in report
    for target in ("(a) stock receiver", "(b) bottle", "(c) (b) + append", "bridge, all plugins"):
        assert target in done.stdout
    assert "| 0 |" in report  # wrk counted no failed requests for at least one target
    assert "nan" not in report.split("### Bridge figures")[1], report
    # End to end says when each plugin was done, for every workload.
    done_rows = [line for line in report.splitlines() if "each plugin done" in line]
    assert len(done_rows) == 2, report
    for row in done_rows:
        for plugin in ("door_relay", "mqtt", "snapshots", "status", "syslog"):
            assert f" {plugin} " in row, row
    assert re.search(r"^- Creating a file in the work folder cost \d+ µs of CPU", report, re.M)
    # ... and what it cost in CPU, how busy the machine was, and what its cores allow.
    number = r"\d+\.\d"
    cpu = re.findall(rf"CPU an event.*\| ({number}) \+ ({number}) ms \(({number}) ms", report)
    assert len(cpu) == 2 and all(float(bridge) > 0 for bridge, _, _ in cpu), report
    assert len(re.findall(r"cores, first POST .*\| \d+% busy, \d+% taken", report)) == 2, report
    assert len(re.findall(r"at most, .*\| \d+ events/s \(\d\.\d\d × stock ack\)", report)) == 2, (
        report
    )
